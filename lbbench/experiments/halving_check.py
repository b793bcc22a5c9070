"""Does successive halving find the winner full-budget search finds? The critical-batch study's K = 32
trials at two batch sizes, tuned both ways.

    lbbench-sweep halving_check --workdir sweeps                               # halved
    lbbench-sweep halving_check --workdir sweeps_full --full_search            # every trial to the end
    python -m lbbench.report.halving_vs_full sweeps/halving_check sweeps_full/halving_check --out DIR

Issue 19 item 2. The grid is exactly critical_batch's at B ∈ {256, 1024} (same trials, same run
names, same halving declaration: rungs at 1/9 and 1/3 of the epochs, the top third promoted on
validation accuracy). Each sweep's winner — the best validation accuracy at the end of the budget,
and the fewest steps to validation accuracy 0.90, both among full-budget trials — is re-run with
seeds 1–4, so "the same winner, or one within the seed noise" is answered by the two winners' seed
means and 95 % t-intervals (validation accuracy; test is not read). A promoted trial is the same
trial as in the full search, bit-identical while it trains in programs of the same size; in programs
of another size XLA's rounding differs and training amplifies it, so a near-tie between two trials
can fall either way in the two searches — the seed re-runs settle it.

Quick mode: critical_batch's quick grid (tiny MLP, 3 trials per batch size, 2 epochs).
"""

from lbbench.experiments import critical_batch
from lbbench.study import answer, protocol, targets

NAME = "halving_check"
CHECK = (256, 1024)
TARGET = 0.90
SEEDS = (1, 2, 3, 4)
base_config = critical_batch.base_config
halving = critical_batch.halving


def grid(quick: bool) -> list[dict]:
    keep = critical_batch.batches(True) if quick else CHECK
    return [p for p in critical_batch.grid(quick) if p["batch_size"] in keep]


def _target(quick: bool) -> float:
    return critical_batch.QUICK_TARGETS[0] if quick else TARGET


def winners(results: dict, quick: bool) -> dict:
    """{batch size: {"at_budget": run name | None, "to_target": run name | None}} among full-budget trials."""
    out = {}
    for b, trials in answer.group(results, answer.by_batch).items():
        picks = {}
        for kind, score in (
            ("at_budget", lambda r: targets.at_budget(r, epochs=r["config"]["epochs"])),
            ("to_target", targets.steps_score(_target(quick))),
        ):
            key = answer.best_trial(trials, score, 0)
            picks[kind] = answer.tuning_run(trials[key], 0)[0] if key is not None else None
        out[b] = picks
    return out


def followup(results: dict, quick: bool) -> list[dict]:
    names = {n for picks in winners(results, quick).values() for n in picks.values() if n}
    return protocol.rerun_points(results, names, base_config(quick), SEEDS[:2] if quick else SEEDS)


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    """The winners and each winner's seeds (read by lbbench.report.halving_vs_full)."""
    picks = winners({k: v for k, v in results.items() if protocol.SEP + "s" not in k}, quick)
    seeds = {}
    for name in {n for p in picks.values() for n in p.values() if n}:
        runs = [r for k, r in results.items() if k.startswith(name + protocol.SEP + "s")]
        seeds[name] = {
            "val_accuracy": [r["final"]["val_accuracy"] for r in runs if r.get("status") == "completed"],
            "steps_to_target": [targets.steps_to_target(r, _target(quick)) for r in runs],
        }
    return {"winners": {str(b): p for b, p in picks.items()}, "seeds": seeds, "target": _target(quick)}
