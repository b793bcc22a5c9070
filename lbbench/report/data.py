"""Sweep results as data: loading result.json files (skipping unreadable ones with a warning),
flattening them to rows, and grouping runs by what the sweep varies (mean ± s.d. over the runs that
completed and learned). The report (lbbench.report) formats what this module computes."""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

from lbbench.config import Config
from lbbench.report import numfmt
from lbbench.runs import reader as results_lib
from lbbench.runs.reader import read_checked, read_json

# Shown in the "held fixed" header when constant, whatever their value; other constant keys only
# when they differ from the Config default.
HEADER_KEYS = (
    "dataset",
    "model",
    "optimizer",
    "batch_size",
    "learning_rate",
    "lr_scaling",
    "base_batch_size",
    "schedule",
    "warmup_epochs",
    "epochs",
    "momentum",
    "weight_decay",
    "ghost_batch_size",
)
IGNORED_KEYS = ("seed", "run_name", "workdir", "data_dir", "overwrite")
NOT_SETTINGS = (
    "run_name",
    "workdir",
    "data_dir",
    "seed",
    "coordinator_address",
    "num_processes",
    "process_id",
    "wandb_project",
    "save_params",
)
ACCURACY_METRICS = ("test_accuracy", "train_accuracy", "generalization_gap", "test_loss", "total_s")
SHARPNESS_METRICS = ("lambda_max", "hessian_trace")  # + every eps_sharpness_* column, + b_simple


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return numfmt.num(v)
    return str(v)


# ---------------------------------------------------------------------------- loading


def _warn(msg: str) -> None:
    print(f"lbbench.report: warning: {msg}", file=sys.stderr)


def load_sweep(sweep_dir: str) -> tuple[dict, list[dict], list[str]]:
    """(sweep.json or {}, results of the runs that have a usable one, run names without one).

    A truncated or malformed sweep.json, and result.json files that cannot be parsed or lack
    what the report needs, are skipped with a warning naming the file; they never stop the report.
    """
    path = os.path.join(sweep_dir, "sweep.json")
    info, problem = read_json(path)
    if problem and problem != "missing":
        _warn(f"ignoring {path}: {problem}")
    info = info or {}
    try:
        points = list(info.get("grid") or []) + list(info.get("followup") or [])
        names = list(dict.fromkeys(str(p["run_name"]) for p in points))
    except (TypeError, KeyError, AttributeError):
        _warn(f"ignoring the grid in {path}: malformed")
        names = []
    if not names:
        names = sorted(
            os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(sweep_dir, "*", "result.json"))
        )
    results, missing = [], []
    for name in names:
        if os.path.basename(name) != name or name in (".", ".."):
            _warn(f"skipping run name {name!r} from {path}: not a folder name")
            continue
        result, problem = read_checked(os.path.join(sweep_dir, name))
        if problem and problem != "no result.json":
            _warn(f"skipping {os.path.join(sweep_dir, name, 'result.json')}: {problem}")
        if result is None:
            missing.append(name)
        else:
            results.append(result)
    return info, results, missing


def flatten(result: dict, margin: float = results_lib.CHANCE_MARGIN) -> dict:
    """One row of every config key, status, never_learned, final metrics, sharpness, noise, timing."""
    return results_lib.flatten(result, margin)


# ---------------------------------------------------------------------------- aggregation


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def varying_keys(results: list[dict]) -> list[str]:
    """Config keys taking more than one value across the runs (seed/run_name/workdir excluded)."""
    keys = sorted({k for r in results for k in r["config"]} - set(IGNORED_KEYS))
    return [k for k in keys if len({_hashable(r["config"].get(k)) for r in results}) > 1]


def fixed_settings(results: list[dict]) -> dict:
    """The settings every run shares: HEADER_KEYS always, other keys when not at their default."""
    if not results:
        return {}
    defaults = Config().to_dict()
    varying = set(varying_keys(results))
    cfg = results[0]["config"]
    out = {}
    for k, v in cfg.items():
        if k in varying or k in NOT_SETTINGS:
            continue
        if k in HEADER_KEYS or (k in defaults and _hashable(defaults[k]) != _hashable(v)):
            out[k] = v
    return dict(
        sorted(
            out.items(),
            key=lambda kv: (kv[0] not in HEADER_KEYS, HEADER_KEYS.index(kv[0]) if kv[0] in HEADER_KEYS else 0, kv[0]),
        )
    )


def mean_std(values) -> dict:
    """{"mean", "std" (ddof=1, 0 for one value), "n", "values"} of the non-None values."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0, "values": []}
    a = np.asarray(xs)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size), "values": xs}


def metric_columns(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(accuracy metrics, sharpness metrics incl. each ε-sharpness column and B_simple) present in rows."""
    eps = sorted({k for row in rows for k in row if k.startswith("eps_sharpness_")})
    sharp = [*SHARPNESS_METRICS, *eps, "b_simple"]
    present = lambda m: any(row.get(m) is not None for row in rows)  # noqa: E731
    return [m for m in ACCURACY_METRICS if present(m)], [m for m in sharp if present(m)]


def run_state(row: dict) -> str:
    """completed (and learned), never learned, diverged or failed."""
    if row["status"] == "completed" and row["never_learned"]:
        return "never learned"
    return row["status"]


def aggregate(results: list[dict], keys: list[str], margin: float = results_lib.CHANCE_MARGIN) -> list[dict]:
    """One dict per distinct value of `keys`: those values, run states, metric stats over learned runs."""
    groups: dict = {}
    for r in results:
        groups.setdefault(tuple(_hashable(r["config"].get(k)) for k in keys), []).append(r)
    all_rows = [flatten(r, margin) for r in results]
    acc, sharp = metric_columns(all_rows)
    out = []
    for values, members in groups.items():
        rows = [flatten(r, margin) for r in members]
        learned = [row for row in rows if run_state(row) == "completed"]
        g = dict(zip(keys, values))
        g["batch_size"] = members[0]["config"].get("batch_size")
        g["runs"] = len(rows)
        g["statuses"] = {s: sum(run_state(row) == s for row in rows) for s in sorted({run_state(r) for r in rows})}
        g.update({m: mean_std([row.get(m) for row in learned]) for m in (*acc, *sharp)})
        stuck = [row for row in rows if run_state(row) == "never learned"]
        g["never_learned"] = {m: [row[m] for row in stuck if row.get(m) is not None] for m in (*acc, *sharp)}
        out.append(g)
    return sorted(out, key=lambda g: tuple(_sort_key(g[k]) for k in keys))


def _label_sort(label: str) -> tuple:
    """Sort 'batch_size=256, x=1' labels by their values, numbers numerically."""
    out = []
    for part in label.split(", "):
        v = part.split("=", 1)[-1].split(" ")[0].replace(",", "")
        try:
            out.append((0, float(v), ""))
        except ValueError:
            out.append((1, 0.0, v))
    return tuple(out)


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def arm_label(group: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={_value(group[k])}" for k in keys if k != "batch_size")
