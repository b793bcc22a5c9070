"""Which configuration keys a run shows in TensorBoard's HParams tab, and how they are encoded.

HParams is only readable when it shows the few keys that define the experiment: a sweep's varying
keys plus the five that always matter (`CORE_KEYS`). A sweep knows its varying keys (the keys of its
grid points) and passes them; a single CLI run shows the core keys. Values keep their type: integers
are written as numbers and marked integer-valued, so TensorBoard can show `4096`, not `4096.0`.
"""

from __future__ import annotations

import json
import os

CORE_KEYS = ("batch_size", "optimizer", "learning_rate", "schedule", "epochs")
NOT_HPARAMS = ("run_name", "workdir", "data_dir")

METRICS = ("final/test_accuracy", "final/train_accuracy", "final/generalization_gap", "final/test_loss",
           "sharpness/lambda_max", "sharpness/hessian_trace", "noise_scale/b_simple")


def experiment_keys(varying=()) -> list[str]:
    """CORE_KEYS followed by the other `varying` keys (output locations excluded), no repeats."""
    return list(dict.fromkeys([*CORE_KEYS, *(k for k in varying if k not in NOT_HPARAMS)]))


def grid_keys(sweep_dir: str) -> list[str]:
    """The keys a sweep's grid varies, read from `<sweep_dir>/sweep.json` ([] if there is none)."""
    try:
        with open(os.path.join(sweep_dir, "sweep.json")) as f:
            grid = json.load(f).get("grid") or []
    except (OSError, ValueError):
        return []
    return sorted({k for point in grid for k in point})


def metric_tags(config: dict) -> list[str]:
    """METRICS plus the epsilon-sharpness tags this config will write (Keskar's own metric)."""
    tags = list(METRICS)
    if config.get("sharpness", True):
        for e in config.get("epsilons") or ():
            tags.append(f"sharpness/eps_full_{float(e):g}")
            if config.get("eps_subspace_dim", 0):
                tags.append(f"sharpness/eps_subspace_{float(e):g}")
    return tags


def encode(value):
    """An HParams value: bool/int/float/str as they are, sequences as "a,b", None dropped."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def select(config: dict, keys) -> dict:
    """{key: encoded value} for the `keys` present in `config`, in that order."""
    return {k: encode(config[k]) for k in keys if k in config and config[k] is not None}
