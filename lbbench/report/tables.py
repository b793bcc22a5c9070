"""The report's tables: cells (mean and 95 % t interval over seeds, as in the study answers), the
configuration and per-run tables (each row names its runs, rows in the order of the varying keys),
the analysis as tables, runs.csv, and the scrubbing of machine paths out of report text."""

from __future__ import annotations

import csv
import re

from lbbench.config import Config
from lbbench.report import numfmt
from lbbench.report.data import ARM, _sort_key, _value, arm_of, flatten, run_state, varying_keys
from lbbench.runs import tags
from lbbench.runs.atomic import atomic_open
from lbbench.runs.reader import CHANCE_MARGIN

CONFIG_COLUMNS = (
    "dataset",
    "model",
    "optimizer",
    "batch_size",
    "learning_rate",
    "lr_scaling",
    "schedule",
    "warmup_epochs",
    "epochs",
    "ghost_batch_size",
    "trust_coefficient",
    "seed",
)
VALID = {
    "test_accuracy": (0.0, 1.0),
    "train_accuracy": (0.0, 1.0),
    "generalization_gap": (-1.0, 1.0),
    "lambda_max": (None, None),
    "hessian_trace": (None, None),
}
MEANS_NOTE = (
    "One row per configuration (the seeds of a setting together, whatever was measured on each). "
    "Each cell: the mean over the seeds that completed and learned (n) and, when n ≥ 3, its 95 % "
    "t interval [low, high] (the interval the study answers use); when n = 2, the two seeds' values "
    "(seeds …). Runs that never learned (final test accuracy ≤ 1/classes + {margin:g}), diverged "
    "or failed are left out of the means and listed below."
)


def eps_label(column: str) -> str:
    """'eps_sharpness_full_0.001' -> 'ε-sharpness full ε=0.001' (Keskar et al. 2017, Metric 2.1)."""
    space, eps = column[len("eps_sharpness_") :].rsplit("_", 1)
    return f"ε-sharpness {space}, ε={eps}"


def cell(stat: dict) -> str:
    """mean [95 % CI] for n ≥ 3; mean (seeds a, b) for n = 2; the value for n = 1; a dash for none."""
    if not stat or stat["mean"] is None:
        return numfmt.DASH
    if stat["n"] >= 3 and stat.get("low") is not None:
        return f"{numfmt.num(stat['mean'])} [{numfmt.num(stat['low'])}, {numfmt.num(stat['high'])}]"
    if stat["n"] >= 2:
        return f"{numfmt.num(stat['mean'])} (seeds {', '.join(numfmt.num(v) for v in stat['values'])})"
    return numfmt.num(stat["mean"])


def header(m: str) -> str:
    return eps_label(m) if m.startswith("eps_sharpness_") else tags.label(m)


def markdown_table(groups: list[dict], keys: list[str], metrics=None) -> list[str]:
    """Configuration table: the varying keys, n (learned runs), what happened to the others, the
    metrics, and the runs of the row by name."""
    if metrics is None:
        metrics = [m for m in groups[0] if isinstance(groups[0][m], dict) and "mean" in groups[0][m]] if groups else []
    metrics = [m for m in metrics if any(g.get(m, {}).get("n") for g in groups)]
    head = list(keys) + ["n", "left out"] + [header(m) for m in metrics] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        other = ", ".join(f"{n} {s}" for s, n in g["statuses"].items() if s != "completed") or "0"
        cells = [_value(g[k]) for k in keys] + [str(g["statuses"].get("completed", 0)), other]
        cells += [cell(g.get(m)) for m in metrics] + [", ".join(g.get("run_names", []))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def runs_table(rows: list[dict], keys: list[str], sharp: list[str]) -> list[str]:
    """Every run (each seed), with its state, test accuracy, gap and sharpness; trace ± its stderr."""
    cols = [m for m in sharp if m not in ("hessian_trace", "b_simple")]
    head = ["run", *keys, "seed", "state", "test acc", "gap"] + [header(m) for m in cols]
    if "hessian_trace" in sharp:
        head.append("Hessian trace ± stderr")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted_rows(rows, keys):
        cells = [
            row["run_name"],
            *(_value(row.get(k)) for k in keys),
            str(row.get("seed")),
            run_state(row),
            numfmt.num(row.get("test_accuracy")),
            numfmt.num(row.get("generalization_gap")),
        ]
        cells += [numfmt.num(row.get(m)) for m in cols]
        if "hessian_trace" in sharp:
            cells.append(numfmt.mean_sd(row.get("hessian_trace"), row.get("hessian_trace_stderr")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def sorted_rows(rows: list[dict], keys: list[str]) -> list[dict]:
    """Rows in the order of the varying keys (numbers numerically), then seed, then run name."""
    return sorted(
        rows, key=lambda r: (*(_sort_key(r.get(k)) for k in keys), _sort_key(r.get("seed")), str(r["run_name"]))
    )


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/`'\"|)]+/)*([^\s/`'\"|)]+)")


def scrub_paths(text: str) -> str:
    """Absolute machine paths out of report text: an interpreter becomes `python`, others `…/name`."""

    def repl(m):
        base = m.group(1)
        return "python" if re.fullmatch(r"python[\d.]*", base) else f"…/{base}"

    return _ABS_PATH.sub(repl, text)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _kv_table(d: dict) -> list[str]:
    lines = ["| quantity | value |", "|---|---|"]
    for k, v in d.items():
        lines.append(f"| {k} | {numfmt.num(v) if isinstance(v, (int, float)) else v} |")
    return lines


def _records_table(records: list[dict], index: str | None = None, index_values=None) -> list[str]:
    cols = list(dict.fromkeys(k for r in records for k, v in r.items() if _scalar(v)))
    head = [str(h) for h in ([index] if index is not None else []) + cols]  # JSON keys may be batch sizes
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(records):
        cells = [str(index_values[i])] if index is not None else []
        cells += [
            numfmt.num(r.get(c))
            if isinstance(r.get(c), (int, float))
            else (str(r.get(c)) if r.get(c) is not None else numfmt.DASH)
            for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def analysis_tables(analysis: dict | None) -> list[str]:
    """The experiment's analysis (analysis.json) as rounded tables; curves are left to the plots."""
    if not analysis:
        return []
    lines = ["", "## Analysis", ""]
    if "error" in analysis:
        return lines + [f"analyze() failed: {analysis['error']}"]
    body = analysis.get("summary", {k: v for k, v in analysis.items() if k != "interpolation"})
    if body.get("conclusions"):  # generated from the verdicts (study experiments): first, as sentences
        lines += ["**Conclusions**", ""] + [f"- {c}" for c in body["conclusions"]] + [""]
    scalars = {k: v for k, v in body.items() if _scalar(v)}
    if scalars:
        lines += _kv_table(scalars) + [""]
    nested = {k: v for k, v in body.items() if isinstance(v, dict)}
    if nested and all(all(_scalar(x) for x in v.values()) for v in nested.values()):
        lines += _records_table(list(nested.values()), "", list(nested)) + [""]  # e.g. one row per model
    else:
        for k, v in nested.items():
            lines += [f"**{k}**", ""] + analysis_tables({"summary": v})[3:]
    for k, v in body.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines += [f"**{k}**", ""] + _records_table(v) + [""]
    if analysis.get("interpolation"):
        lines += [f"1-D interpolation curves: {len(analysis['interpolation'])} (plotted below).", ""]
    return lines


def csv_columns(rows: list[dict], keys: list[str]) -> list[str]:
    """runs.csv columns: identity, every varying config key, CONFIG_COLUMNS, then metrics and timing."""
    config_keys = set().union(*(r.keys() for r in rows)) if rows else set()
    metric_like = [
        k
        for k in dict.fromkeys(k for row in rows for k in row)
        if k not in CONFIG_COLUMNS and k not in keys and k not in ("run_name", "status", "never_learned")
    ]
    cfg_fields = set(Config().to_dict())
    metric_like = [k for k in metric_like if k not in cfg_fields]
    return (
        ["run_name", "status", "never_learned", *dict.fromkeys([*keys, *CONFIG_COLUMNS]), *metric_like]
        if config_keys
        else []
    )


def write_csv(path: str, results: list[dict], keys: list[str] | None = None, margin: float = CHANCE_MARGIN) -> None:
    """One row per run, in the order of the varying keys: those keys (plus the usual ones), state and metrics."""
    keys = varying_keys(results) if keys is None else keys
    rows = sorted_rows([{**flatten(r, margin), ARM: arm_of(r)} for r in results], keys)
    columns = csv_columns(rows, keys)
    with atomic_open(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _value(v) if isinstance(v, tuple) else v for k, v in row.items()})
