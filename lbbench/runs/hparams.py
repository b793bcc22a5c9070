"""What a run shows in TensorBoard's HParams tab, and how it is encoded so the tab is readable.

What TensorBoard (2.16–2.21) does, read from its source and checked in a browser:
- the tab ticks only the first 5 hyperparameters, after sorting those marked `differs` first and
  then by name; the rest are hidden until the user ticks them;
- numbers are printed with 5 significant digits (`4096.0`, `0.10000`), strings as they are;
- the experiment summary of the first run it finds describes the whole logdir (types, domains).

So a run records only the keys that define the experiment (`CORE_KEYS` plus the keys its sweep's
grid varies), marks the grid's varying keys `differs` so they are the ones shown, and writes
integer values as their decimal string (`4096`) with the grid's values, in numeric order, as the
discrete domain, so the filter is a list of checkboxes `64, 128, …, 8192`. Floats stay numbers.
"""

from __future__ import annotations

import os

from lbbench.runs.reader import read_json

CORE_KEYS = ("batch_size", "optimizer", "learning_rate", "schedule", "epochs")
NOT_HPARAMS = ("run_name", "workdir", "data_dir")

# The tab shows the first 5 metrics: accuracy, gap, the two sharpness measures (λ_max, then Keskar's
# ε-sharpness is inserted 4th by metric_tags) and the noise scale; the rest can be ticked.
METRICS = (
    "final/test_accuracy",
    "final/generalization_gap",
    "sharpness/lambda_max",
    "noise_scale/b_simple",
    "final/train_accuracy",
    "final/test_loss",
    "sharpness/hessian_trace",
    "final/val_accuracy",
)


def experiment_keys(varying=()) -> list[str]:
    """CORE_KEYS followed by the other `varying` keys (output locations excluded), no repeats."""
    return list(dict.fromkeys([*CORE_KEYS, *(k for k in varying if k not in NOT_HPARAMS)]))


def sweep_grid(sweep_dir: str) -> dict | None:
    """{"grid": [override dicts], "base": base config dict} from `<sweep_dir>/sweep.json`, or None."""
    info = read_json(os.path.join(sweep_dir, "sweep.json"))[0]
    if not info or not info.get("grid"):
        return None
    return {"grid": info["grid"], "base": info.get("base_config") or {}}


def grid_keys(sweep_dir: str) -> list[str]:
    """The keys a sweep's grid sets, read from `<sweep_dir>/sweep.json` ([] if there is none)."""
    grid = sweep_grid(sweep_dir)
    return sorted({k for point in grid["grid"] for k in point}) if grid else []


def grid_domains(grid: dict | None, keys) -> dict:
    """{key: sorted distinct values over the sweep} for `keys` (grid value, else the base config's)."""
    if not grid:
        return {}
    out = {}
    for k in keys:
        values = {_hashable(p.get(k, grid["base"].get(k))) for p in grid["grid"]}
        values.discard(None)
        if values:
            out[k] = sorted(
                values, key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v))
            )
    return out


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def metric_tags(config: dict) -> list[str]:
    """METRICS plus the epsilon-sharpness tags this config will write (Keskar's own metric)."""
    eps = []
    if config.get("sharpness", True):
        for e in config.get("epsilons") or ():
            eps.append(f"sharpness/eps_full_{float(e):g}")
            if config.get("eps_subspace_dim", 0):
                eps.append(f"sharpness/eps_subspace_{float(e):g}")
    return [*METRICS[:3], *eps[:1], *METRICS[3:], *eps[1:]]


def encode(value):
    """An HParams value: integers as their decimal string (TensorBoard would print 4096 as 4096.0),
    bool/float/str as they are, sequences as "a,b", None dropped."""
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def select(config: dict, keys) -> dict:
    """{key: encoded value} for the `keys` present in `config`, in that order."""
    return {k: encode(config[k]) for k in keys if k in config and config[k] is not None}
