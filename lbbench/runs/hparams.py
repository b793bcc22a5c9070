"""What a run shows in TensorBoard's HParams tab, and how it is encoded so the tab is readable.

What TensorBoard (2.16–2.21) does, read from its source and checked in a browser:
- the tab ticks only the first 5 hyperparameters, after sorting those marked `differs` first and
  then by name; the rest are hidden until the user ticks them;
- numbers are printed with 5 significant digits (`4096.0`, `0.10000`), strings as they are;
- the experiment summary (columns, types, domains, metrics) of the first run it finds describes
  the whole logdir; without one it lists every scalar tag as a metric.

So each run records, when it ends, its session: the key hyperparameters (`KEY_HPARAMS`), every
other hyperparameter that differs from the defaults, the keys its sweep's grid varies, the learning
rate after scaling (`LR_scaled`) and how the run ended (`Status`). Those two are capitalised on
purpose: TensorBoard sorts names as Python does, capitals first, so each comes first in its group
(the columns whose values differ, then the rest) and is ticked whenever its group reaches the five.
The one experiment summary lives in the logdir itself
(`EXPERIMENT_FILE`, rewritten atomically by every run that ends there): the union of those keys
over the logdir's runs, `differs` where their values differ, the values as discrete domains, and
the curated `METRICS`. Integer values are written as their decimal string (`4096`), so the filter
is a list of checkboxes `64, 128, …, 8192`; floats stay numbers.
"""

from __future__ import annotations

import os

from lbbench.config import Config
from lbbench.config.sections import BOOKKEEPING
from lbbench.runs.reader import read_json

CORE_KEYS = ("batch_size", "optimizer", "learning_rate", "schedule", "epochs")
# Always shown: what a reader needs to read any row (the learning rate before and after scaling).
KEY_HPARAMS = (
    "batch_size",
    "optimizer",
    "learning_rate",
    "lr_scaling",
    "schedule",
    "warmup_epochs",
    "warmup_steps",
    "momentum",
    "epochs",
)
NOT_HPARAMS = ("run_name", "workdir", "data_dir")
STATUSES = ("completed", "diverged", "failed")
STATUS, SCALED_LR = "Status", "LR_scaled"  # capitalised: sorted (and so ticked) first by TensorBoard
EXPERIMENT_FILE = "events.out.tfevents.lbbench-hparams"  # in the logdir: TensorBoard's run "."

# The tab shows the first 5 metrics: accuracy, gap, the two sharpness measures (λ_max, then Keskar's
# ε-sharpness is inserted 4th by metric_tags) and the noise scale; the rest can be ticked.
METRICS = (
    "result/test_accuracy",
    "result/generalization_gap",
    "sharpness/lambda_max",
    "noise_scale/b_simple",
    "result/train_accuracy",
    "result/test_loss",
    "sharpness/hessian_trace",
    "result/val_accuracy",
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


def non_default_keys(config: dict) -> list[str]:
    """The hyperparameters (bookkeeping excluded; the seed kept) whose value differs from the default."""
    defaults = Config().to_dict()
    return [
        k
        for k, v in config.items()
        if k in defaults and (k == "seed" or k not in BOOKKEEPING) and _hashable(v) != _hashable(defaults[k])
    ]


def run_hparams(config: dict, status: str, varying=()) -> dict:
    """{key: encoded value} a run shows in HParams: KEY_HPARAMS, its non-default and `varying` keys, status."""
    varying = [k for k in varying if k == "seed" or k not in BOOKKEEPING]  # a grid's cadence is not a hyperparameter
    keys = list(dict.fromkeys([*KEY_HPARAMS, *varying, *non_default_keys(config)]))
    out = {STATUS: status}
    try:
        out[SCALED_LR] = float(Config.from_dict(config).scaled_learning_rate)
    except (TypeError, ValueError):
        pass
    return {**out, **select(config, [k for k in keys if k not in NOT_HPARAMS])}


def logdir_sessions(logdir: str) -> list[dict]:
    """run_hparams of the runs of `logdir`: a sweep's every grid point (from sweep.json, so a big sweep
    reads one file), else every finished run directly inside it."""
    grid = sweep_grid(logdir)
    if grid:
        varying = sorted({k for p in grid["grid"] for k in p})
        return [run_hparams({**grid["base"], **p}, "completed", varying) for p in grid["grid"]]
    out = []
    try:
        entries = sorted(e for e in os.listdir(logdir) if not e.startswith("."))
    except OSError:
        return out
    for name in entries:
        result = read_json(os.path.join(logdir, name, "result.json"))[0]
        if isinstance(result, dict) and isinstance(result.get("config"), dict):
            out.append(run_hparams(result["config"], str(result.get("status", "failed"))))
    return out


def columns(sessions: list[dict]) -> dict:
    """{key: (values in numeric-then-text order, differs)} over the sessions; `Status` lists every status."""
    out = {}
    for key in dict.fromkeys(k for s in sessions for k in s):
        values = {_hashable(s[key]) for s in sessions if s.get(key) is not None}
        if key == STATUS:
            values |= set(STATUSES)
        order = sorted(values, key=lambda v: _numeric_key(v))
        out[key] = (order, len({_hashable(s.get(key)) for s in sessions}) > 1)
    return out


def _numeric_key(v):
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))
