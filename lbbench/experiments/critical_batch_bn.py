"""The critical-batch study on the second workload: the same MLP with BatchNorm (issue 22).

    python -m lbbench.sweep critical_batch_bn [--quick]

Everything is lbbench.experiments.critical_batch's — the search space, K = 32 trials drawn per batch
size, successive halving 32 → 10 → 3, the budget rule, the validation targets, 8 seeds per winner,
the analysis — except the model, `bn_mlp` (BatchNorm after each hidden layer, batch statistics over the
whole batch: no ghost batches), and the batch sizes, B = 32 … 4096. The range stops at 4096 because
B = 8192 and 16384 (168 and 334 epochs to reach 1,000 steps) cost two thirds of the MLP study's
compute, more than these two cores can give a second workload in one session; 4096 is above every
critical batch size the MLP study measured (BUILD_NOTES), so the bend the fit needs is inside the
range, and the report says where the range ends. Its re-runs are the BatchNorm population of the
sharpness-vs-gap correlation (issue 23).
"""

from lbbench.experiments import critical_batch as _study

NAME = "critical_batch_bn"
K, SEEDS = _study.K, _study.SEEDS  # read by lbbench-bench --what=study's projection
WORKLOAD = _study.Workload("bn_mlp", "tiny_bn_mlp", tuple(2**k for k in range(5, 13)))


def base_config(quick: bool):
    return _study.base_config(quick, WORKLOAD)


def grid(quick: bool) -> list[dict]:
    return _study.grid(quick, WORKLOAD)


def halving(quick: bool):
    return _study.halving(quick)


def rerun_extra(quick: bool) -> dict:
    return _study.rerun_extra(quick, WORKLOAD)


def followup(results: dict, quick: bool) -> list[dict]:
    return _study.followup(results, quick, WORKLOAD)


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    return _study.analyze(sweep_dir, results, quick, WORKLOAD)


def conclusions(summary: dict) -> list[str]:
    return _study.conclusions(summary)
