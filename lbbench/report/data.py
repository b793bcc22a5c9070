"""Sweep results as data: loading result.json files (skipping unreadable ones with a warning),
flattening them to rows, and grouping runs by what the sweep varies (mean, s.d. and the 95 % t
interval over the seeds that completed and learned — the interval the study answers use,
lbbench.study.bootstrap.mean_ci). The report (lbbench.report) formats what this module computes.

Bookkeeping keys (BOOKKEEPING: the seed, where a run is written, what is measured and how often,
how processes connect) never define a configuration: a winner's tuning run (measured without
sharpness) and its seed re-runs (with it) are one configuration, one row, one point."""

from __future__ import annotations

import glob
import os
import re
import sys

import numpy as np

from lbbench.config import Config
from lbbench.config.sections import BOOKKEEPING
from lbbench.report import numfmt
from lbbench.runs import reader as results_lib
from lbbench.runs.reader import read_checked, read_json
from lbbench.study.bootstrap import mean_ci
from lbbench.study.protocol import SEP

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
ARM = "arm"  # a study's arm: the run name up to its `__t<trial>` / `__s<seed>` suffix
ACCURACY_BOUNDS = {"test_accuracy": (0.0, 1.0), "train_accuracy": (0.0, 1.0), "generalization_gap": (-1.0, 1.0)}
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
    """(sweep.json or {}, results of the runs that have a usable one, run names without one); for a
    run folder (one holding a usable result.json), that one run.

    A truncated or malformed sweep.json, and result.json files that cannot be parsed or lack
    what the report needs, are skipped with a warning naming the file; they never stop the report.
    """
    own, problem = read_checked(sweep_dir)
    if own is not None:  # a run folder: that one run
        return {}, [named(own, os.path.basename(os.path.abspath(sweep_dir)))], []
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
            results.append(named(result, name))
    return info, results, missing


def named(result: dict, folder_name: str) -> dict:
    """`result` with config.run_name filled from its folder when the run recorded none."""
    if result["config"].get("run_name"):
        return result
    return {**result, "config": {**result["config"], "run_name": folder_name}}


def flatten(result: dict, margin: float = results_lib.CHANCE_MARGIN) -> dict:
    """One row of every config key, status, never_learned, final metrics, sharpness, noise, timing."""
    return results_lib.flatten(result, margin)


# ---------------------------------------------------------------------------- aggregation


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def key_order(key: str) -> tuple:
    """Batch size first, then the header keys in their order, then the rest alphabetically."""
    if key in ("batch_size", ARM):
        return (-1, key != "batch_size", key)
    return (0, HEADER_KEYS.index(key), key) if key in HEADER_KEYS else (1, 0, key)


def varying_keys(results: list[dict]) -> list[str]:
    """Config keys taking more than one value across the runs, bookkeeping excluded, batch size first."""
    keys = sorted({k for r in results for k in r["config"]} - BOOKKEEPING, key=key_order)
    return [k for k in keys if len({_hashable(r["config"].get(k)) for r in results}) > 1]


def arm_of(result: dict) -> str:
    """A study run's arm (its run name before the first `__`); a plain run's whole name."""
    return str(result["config"].get("run_name") or "").split(SEP)[0]


def arm_family(arm: str, batch_size) -> str:
    """An arm's name without its batch-size token ('linear_warmup_b2048' at B = 2048 -> 'linear_warmup'),
    so the arms of one rule at several batch sizes draw as one line against batch size."""
    return re.sub(rf"(^|_)b{batch_size}(?=_|$)", "", arm).strip("_") or "all arms"


def value_of(result: dict, key: str):
    """The run's value of `key`: a config key, or ARM."""
    return arm_of(result) if key == ARM else _hashable(result["config"].get(key))


def is_study(results: list[dict]) -> bool:
    """Whether run names carry the study layer's `<arm>__t<trial>` / `__s<seed>` suffixes."""
    return any(SEP in str(r["config"].get("run_name") or "") for r in results)


def default_group_by(results: list[dict], keys: list[str]) -> str | None:
    """The arm for a study whose arms are more than its batch sizes; else batch size if it varies;
    else the first varying key (None when nothing varies)."""
    if is_study(results):
        arms = {arm_of(r) for r in results}
        if "batch_size" not in keys or len(arms) > len({r["config"].get("batch_size") for r in results}):
            return ARM
    if "batch_size" in keys:
        return "batch_size"
    return keys[0] if keys else None


def group_choices(results: list[dict]) -> list[str]:
    """What a report can be grouped by: every non-bookkeeping config key, and the arm of a study."""
    keys = sorted({k for r in results for k in r["config"]} - BOOKKEEPING, key=key_order)
    return ([ARM] if is_study(results) else []) + keys


def fixed_settings(results: list[dict]) -> dict:
    """The settings every run shares: HEADER_KEYS always, other keys when not at their default."""
    if not results:
        return {}
    defaults = Config().to_dict()
    varying = set(varying_keys(results))
    cfg = results[0]["config"]
    out = {}
    for k, v in cfg.items():
        if k in varying or k in BOOKKEEPING:
            continue
        if k in HEADER_KEYS or (k in defaults and _hashable(defaults[k]) != _hashable(v)):
            out[k] = v
    return dict(
        sorted(
            out.items(),
            key=lambda kv: (kv[0] not in HEADER_KEYS, HEADER_KEYS.index(kv[0]) if kv[0] in HEADER_KEYS else 0, kv[0]),
        )
    )


def mean_std(values, bounds: tuple[float, float] | None = None) -> dict:
    """{"mean", "std" (ddof=1, 0 for one value), "n", "values", "low", "high"} of the non-None values:
    low/high the 95 % t interval of the mean (None when n < 2), clipped to `bounds`."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0, "values": [], "low": None, "high": None}
    a = np.asarray(xs)
    ci = mean_ci(xs, bounds=bounds)
    sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": float(a.mean()), "std": sd, "n": int(a.size), "values": xs, "low": ci["low"], "high": ci["high"]}


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
        groups.setdefault(tuple(value_of(r, k) for k in keys), []).append(r)
    acc, sharp = metric_columns([flatten(r, margin) for r in results])
    out = [
        _group(dict(zip(keys, values)), members, (*acc, *sharp, "val_accuracy"), margin)
        for values, members in groups.items()
    ]
    return sorted(out, key=lambda g: tuple(_sort_key(g[k]) for k in keys))


def _group(g: dict, members: list[dict], metrics, margin: float) -> dict:
    """One configuration: its key values, run names (sorted), run states and metric statistics."""
    rows = sorted((flatten(r, margin) for r in members), key=lambda row: str(row["run_name"]))
    learned = [row for row in rows if run_state(row) == "completed"]
    g["batch_size"] = members[0]["config"].get("batch_size")
    g[ARM] = arm_of(members[0])
    g["runs"] = len(rows)
    g["run_names"] = [str(row["run_name"]) for row in rows]
    g["members"] = members
    g["learned_members"] = [r for r in members if run_state(flatten(r, margin)) == "completed"]
    g["statuses"] = {s: sum(run_state(row) == s for row in rows) for s in sorted({run_state(r) for r in rows})}
    g.update({m: mean_std([row.get(m) for row in learned], ACCURACY_BOUNDS.get(m)) for m in metrics})
    stuck = [row for row in rows if run_state(row) == "never learned"]
    g["never_learned"] = {m: [row[m] for row in stuck if row.get(m) is not None] for m in metrics}
    return g


def lead_configurations(groups: list[dict], keys: list[str]) -> dict:
    """{values of `keys`: the configuration drawn for them}: the one with the most learned seeds (a
    study re-runs its winner over seeds), ties broken by mean validation accuracy (test accuracy when
    the runs held out no validation set). The others (tuning trials) are drawn faintly or not at all."""
    cells: dict = {}
    for g in groups:
        cells.setdefault(tuple(_hashable(g[k]) for k in keys), []).append(g)
    return {k: max(gs, key=_selection_score) for k, gs in cells.items()}


def _selection_score(g: dict) -> tuple:
    score = (g.get("val_accuracy") or {}).get("mean")
    if score is None:
        score = (g.get("test_accuracy") or {}).get("mean")
    return ((g.get("test_accuracy") or {}).get("n", 0), -1.0 if score is None else score)


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
    """Numbers numerically, before text; text in natural order ('b128' before 'b1024')."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, ())
    return (1, 0, tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(v)) if t))


def arm_label(group: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={_value(group[k])}" for k in keys if k != "batch_size")


def examples_seen(result: dict) -> list:
    """Training examples seen at each history entry: step × batch size (None where unknown)."""
    h = result.get("history") or {}
    b = result["config"].get("batch_size")
    steps = h.get("step") or [None] * len(h.get("epoch", []))
    return [s * b if s is not None and b else None for s in steps]


def mean_curve(results: list[dict], key: str) -> dict:
    """Per-epoch mean of history `key` over runs (seeds), with the 95 % t interval where ≥ 3 runs have
    the epoch: {"epoch", "examples", "mean", "low", "high", "n"} lists, one entry per epoch."""
    by_epoch: dict = {}
    for r in results:
        h = r.get("history") or {}
        for e, x, v in zip(h.get("epoch", []), examples_seen(r), h.get(key, [])):
            slot = by_epoch.setdefault(e, {"examples": x, "values": []})
            if v is not None:
                slot["values"].append(v)
    out: dict = {k: [] for k in ("epoch", "examples", "mean", "low", "high", "n")}
    for e in sorted(by_epoch):
        slot = by_epoch[e]
        ci = mean_ci(slot["values"], bounds=ACCURACY_BOUNDS.get(key)) if len(slot["values"]) >= 3 else None
        out["epoch"].append(e)
        out["examples"].append(slot["examples"])
        out["mean"].append(float(np.mean(slot["values"])) if slot["values"] else None)
        out["low"].append(ci["low"] if ci else None)
        out["high"].append(ci["high"] if ci else None)
        out["n"].append(len(slot["values"]))
    return out


def short_key(key: str) -> str:
    return {"batch_size": "B", "learning_rate": "lr"}.get(key, key)


def cell_label(values: tuple, keys: list[str]) -> str:
    """'B=256' / 'optimizer=lars, B=4096' / an arm's name as it is."""
    return ", ".join(str(v) if k == ARM else f"{short_key(k)}={_value(v)}" for k, v in zip(keys, values))
