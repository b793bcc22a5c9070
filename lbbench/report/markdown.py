"""Sweep report: `python -m lbbench.report SWEEP_DIR` writes report.md, runs.csv and PNG plots.

Runs are grouped by every config key that varies across the sweep except seed and run_name. Each
metric is the mean over the group's runs that *completed and learned*: a run whose final test
accuracy is at chance (≤ 1/num_classes + margin) "never learned" and is left out of the means, as
are diverged and failed runs; all are counted and listed. Cells show mean ± sample s.d. and n; with
n < 3 they show the per-seed values instead of a spread. The plots are the ones the large-batch
literature draws: accuracy, generalization gap and sharpness (λ_max, Hessian trace, Keskar's
ε-sharpness) vs batch size (Keskar et al. 2017, Hoffer et al. 2017, Goyal et al. 2017),
steps-to-target with the noise scale (Shallue et al. 2019; McCandlish et al. 2018), the 1-D
interpolation (Keskar Fig. 3) and the Hessian spectral density.

Figures go to TensorBoard only with `--tb_logdir DIR`, a folder the user names: TensorBoard reads
its logdir recursively, so anywhere inside (or beside) the sweep folder the report would appear as
one more "run" among the training runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys

from lbbench.report import numfmt
from lbbench.report import plots as rp
from lbbench.runs import reader as results_lib
from lbbench.report.data import (  # noqa: F401 - the data half of the report, re-exported for callers
    IGNORED_KEYS, _label_sort, _sort_key, _value, _warn, aggregate, arm_label, check_result, fixed_settings, flatten,
    load_sweep, mean_std, metric_columns, run_state, varying_keys)

CONFIG_COLUMNS = ("dataset", "model", "optimizer", "batch_size", "learning_rate", "lr_scaling", "schedule",
                  "warmup_epochs", "epochs", "ghost_batch_size", "trust_coefficient", "seed")
LABELS = {"test_accuracy": "test acc", "train_accuracy": "train acc", "generalization_gap": "gap (train − test acc)",
          "test_loss": "test loss", "total_s": "wall time (s)", "lambda_max": "λ_max",
          "hessian_trace": "Hessian trace", "b_simple": "B_simple (noise scale)"}
VALID = {"test_accuracy": (0.0, 1.0), "train_accuracy": (0.0, 1.0), "generalization_gap": (-1.0, 1.0),
         "lambda_max": (None, None), "hessian_trace": (None, None)}
MEANS_NOTE = ("Each cell: mean ± sample s.d. over the seeds of the runs that completed and learned (n); "
              "when n < 3, the mean followed by each seed's value in brackets. Runs that never learned "
              "(final test accuracy ≤ 1/classes + {margin:g}), diverged or failed are left out of the means "
              "and listed below.")


def eps_label(column: str) -> str:
    """'eps_sharpness_full_0.001' -> 'ε-sharpness full ε=0.001' (Keskar et al. 2017, Metric 2.1)."""
    space, eps = column[len("eps_sharpness_"):].rsplit("_", 1)
    return f"ε-sharpness {space}, ε={eps}"


# ---------------------------------------------------------------------------- formatting

def cell(stat: dict) -> str:
    """mean ± s.d. for n ≥ 3; mean [seed values] for n = 2; the value for n = 1; a dash for none."""
    if not stat or stat["mean"] is None:
        return numfmt.DASH
    if stat["n"] >= 3:
        return numfmt.mean_sd(stat["mean"], stat["std"])
    if stat["n"] == 2:
        return f"{numfmt.num(stat['mean'])} [{', '.join(numfmt.num(v) for v in stat['values'])}]"
    return numfmt.num(stat["mean"])


def _header(m: str) -> str:
    return eps_label(m) if m.startswith("eps_sharpness_") else LABELS.get(m, m)


def markdown_table(groups: list[dict], keys: list[str], metrics=None) -> list[str]:
    """Group table: the varying keys, n (learned runs), what happened to the others, the metrics."""
    if metrics is None:
        metrics = [m for m in groups[0] if isinstance(groups[0][m], dict) and "mean" in groups[0][m]] if groups else []
    metrics = [m for m in metrics if any(g.get(m, {}).get("n") for g in groups)]
    head = list(keys) + ["n", "left out"] + [_header(m) for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        other = ", ".join(f"{n} {s}" for s, n in g["statuses"].items() if s != "completed") or "0"
        cells = [_value(g[k]) for k in keys] + [str(g["statuses"].get("completed", 0)), other]
        cells += [cell(g.get(m)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def runs_table(rows: list[dict], keys: list[str], sharp: list[str]) -> list[str]:
    """Every run (each seed), with its state, test accuracy, gap and sharpness; trace ± its stderr."""
    cols = [m for m in sharp if m not in ("hessian_trace", "b_simple")]
    head = ["run", *keys, "seed", "state", "test acc", "gap"] + [_header(m) for m in cols]
    if "hessian_trace" in sharp:
        head.append("Hessian trace ± stderr")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["run_name"], *(_value(row.get(k)) for k in keys), str(row.get("seed")), run_state(row),
                 numfmt.num(row.get("test_accuracy")), numfmt.num(row.get("generalization_gap"))]
        cells += [numfmt.num(row.get(m)) for m in cols]
        if "hessian_trace" in sharp:
            cells.append(numfmt.mean_sd(row.get("hessian_trace"), row.get("hessian_trace_stderr")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/`'\"|)]+/)*([^\s/`'\"|)]+)")


def scrub_paths(text: str) -> str:
    """Absolute machine paths out of report text: an interpreter becomes `python`, others `…/name`."""
    def repl(m):
        base = m.group(1)
        return "python" if re.fullmatch(r"python[\d.]*", base) else f"…/{base}"
    return _ABS_PATH.sub(repl, text)


# ---------------------------------------------------------------------------- analysis

def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _kv_table(d: dict) -> list[str]:
    lines = ["| quantity | value |", "|---|---|"]
    for k, v in d.items():
        lines.append(f"| {k} | {numfmt.num(v) if isinstance(v, (int, float)) else v} |")
    return lines


def _records_table(records: list[dict], index: str | None = None, index_values=None) -> list[str]:
    cols = list(dict.fromkeys(k for r in records for k, v in r.items() if _scalar(v)))
    head = ([index] if index is not None else []) + cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(records):
        cells = [str(index_values[i])] if index is not None else []
        cells += [numfmt.num(r.get(c)) if isinstance(r.get(c), (int, float)) else
                  (str(r.get(c)) if r.get(c) is not None else numfmt.DASH) for c in cols]
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


# ---------------------------------------------------------------------------- figures

def _context(info: dict, fixed: dict) -> str:
    name = info.get("experiment") or "sweep"
    quick = " (quick smoke run)" if info.get("quick") else ""
    what = ", ".join(f"{fixed[k]}" for k in ("model", "dataset") if k in fixed)
    return f"{name}{quick}" + (f": {what}" if what else "")


def make_figures(results: list[dict], groups: list[dict], keys: list[str], analysis: dict | None,
                 info: dict | None = None, margin: float = results_lib.CHANCE_MARGIN) -> dict:
    """{name: Figure} for everything the sweep measured (runs that never learned left out)."""
    info = info or {}
    figs = {}
    ctx = _context(info, fixed_settings(results))
    rows = [flatten(r, margin) for r in results]
    _, sharp = metric_columns(rows)
    eps = [m for m in sharp if m.startswith("eps_sharpness_")]
    arm_keys = [k for k in keys if k != "batch_size"]
    singles = [(m, _header(m)) for m in ("test_accuracy", "generalization_gap", "lambda_max", "hessian_trace")
               if any((g.get(m) or {}).get("n") for g in groups)]
    if "batch_size" in keys:
        arms: dict = {}
        for g in groups:
            arms.setdefault(arm_label(g, arm_keys) or "all runs", []).append(g)
        for m, label in singles:
            figs[m + "_vs_batch"] = rp.vs_batch_figure(
                arms, m, label, f"{ctx} — final {label} vs batch size", VALID.get(m, (None, None)))
        if eps:
            figs["eps_sharpness_vs_batch"] = rp.vs_batch_panels(
                arms, [(m, _header(m)) for m in eps], f"{ctx} — Keskar ε-sharpness (%) vs batch size")
    elif groups:
        for m, label in singles + [(m, _header(m)) for m in eps]:
            measured = [g for g in groups if g[m]["n"]]  # a group with only diverged runs has no value
            if measured:
                figs[m] = rp.bars_figure([arm_label(g, arm_keys) or "all runs" for g in measured], measured, m,
                                         label, f"{ctx} — final {label} per arm", VALID.get(m, (0.0, None)))
    learned = [r for r, row in zip(results, rows) if run_state(row) == "completed"]
    if learned:
        label_keys = keys or ["batch_size"]
        runs = [(", ".join(f"{k}={_value(r['config'].get(k))}" for k in label_keys), r) for r in learned]
        runs.sort(key=lambda lr: tuple(_sort_key(lr[1]["config"].get(k)) for k in label_keys))
        figs["test_accuracy_curves"] = rp.curves_figure(
            runs, "test_accuracy", "test accuracy",
            f"{ctx} — test accuracy per epoch (runs that learned; seeds share a style)")
    by_model: dict = {}  # one line per arm and batch size: its lowest seed
    for r in sorted(learned, key=lambda r: (r["config"].get("seed") or 0)):
        if (r.get("sharpness") or {}).get("density"):
            label = ", ".join(f"{k}={_value(r['config'].get(k))}" for k in keys or ["batch_size"])
            by_model.setdefault(r["config"]["model"], {}).setdefault(
                label, (r["config"].get("seed"), r["sharpness"]["density"]))
    for model, lines in by_model.items():
        by_model[model] = {f"{label} (seed {seed})": d for label, (seed, d) in
                           sorted(lines.items(), key=lambda kv: _label_sort(kv[0]))}
    if by_model:
        figs["hessian_density"] = rp.density_panels(by_model)
    analysis = analysis or {}
    for curve in analysis.get("interpolation", []):
        figs[f"interpolation_{curve['model']}"] = rp.interpolation_figure(curve)
    if analysis.get("steps_to_target"):
        figs["steps_to_target"] = rp.steps_to_target_figure(analysis["steps_to_target"])
    return figs


def save_figures(sweep_dir: str, figs: dict, tb_logdir: str | None = None) -> list[str]:
    """PNG files beside report.md; the same figures to TensorBoard in `tb_logdir` if given."""
    names = []
    for name, fig in figs.items():
        fig.savefig(os.path.join(sweep_dir, f"{name}.png"), dpi=110, bbox_inches="tight")
        names.append(f"{name}.png")
    if tb_logdir:
        from tensorboardX import SummaryWriter

        tb = SummaryWriter(logdir=tb_logdir)
        for name, fig in figs.items():
            tb.add_figure(f"report/{name}", fig, 0, close=False)
        tb.close()
    return names


# ---------------------------------------------------------------------------- outputs

def csv_columns(rows: list[dict], keys: list[str]) -> list[str]:
    """runs.csv columns: identity, every varying config key, CONFIG_COLUMNS, then metrics and timing."""
    config_keys = set().union(*(r.keys() for r in rows)) if rows else set()
    metric_like = [k for k in dict.fromkeys(k for row in rows for k in row)
                   if k not in CONFIG_COLUMNS and k not in keys and k not in ("run_name", "status", "never_learned")]
    from lbbench.config import Config

    cfg_fields = set(Config().to_dict())
    metric_like = [k for k in metric_like if k not in cfg_fields]
    return ["run_name", "status", "never_learned", *dict.fromkeys([*keys, *CONFIG_COLUMNS]), *metric_like] \
        if config_keys else []


def write_csv(path: str, results: list[dict], keys: list[str] | None = None,
              margin: float = results_lib.CHANCE_MARGIN) -> None:
    """One row per run: every config key that varies (plus the usual ones), state and metrics."""
    rows = [flatten(r, margin) for r in results]
    keys = varying_keys(results) if keys is None else keys
    columns = csv_columns(rows, keys)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _value(v) if isinstance(v, tuple) else v for k, v in row.items()})


def title_of(info: dict, sweep_dir: str) -> str:
    name = info.get("experiment") or os.path.basename(os.path.normpath(sweep_dir))
    if info.get("quick"):
        return (f"# {name} — QUICK smoke run (tiny settings; checks the pipeline, not the science)")
    return f"# {name} — sweep report"


def write_report(sweep_dir: str, analysis: dict | None = None, tb_logdir: str | None = None,
                 margin: float = results_lib.CHANCE_MARGIN) -> str:
    """Write report.md, runs.csv and *.png for `sweep_dir`; returns report.md's path."""
    info, results, missing = load_sweep(sweep_dir)
    if analysis is None and os.path.exists(os.path.join(sweep_dir, "analysis.json")):
        try:
            with open(os.path.join(sweep_dir, "analysis.json")) as f:
                analysis = json.load(f)
        except (OSError, ValueError) as e:
            _warn(f"ignoring {os.path.join(sweep_dir, 'analysis.json')}: {e}")
            analysis = None
    keys = varying_keys(results)
    groups = aggregate(results, keys, margin)
    rows = [flatten(r, margin) for r in results]
    acc, sharp = metric_columns(rows)
    write_csv(os.path.join(sweep_dir, "runs.csv"), results, keys, margin)
    pngs = save_figures(sweep_dir, make_figures(results, groups, keys, analysis, info, margin), tb_logdir)
    states = {s: sum(run_state(r) == s for r in rows) for s in ("completed", "never learned", "diverged", "failed")}
    fixed = fixed_settings(results)
    lines = [title_of(info, sweep_dir), ""]
    if info.get("quick"):
        lines += ["> **Quick run.** Small settings (tiny model, few epochs, few seeds): these numbers test that the pipeline "
                  "works end to end. Do not read them as results; drop `--quick` for the study.", ""]
    lines += [f"- command: `{info.get('command', '?')}`", f"- git commit: {info.get('git_commit') or '?'}",
              f"- runs: {len(results)} with results ({states['completed']} learned, {states['never learned']} "
              f"never learned, {states['diverged']} diverged, {states['failed']} failed); "
              f"{len(missing)} missing (not run or interrupted)" + (f": {', '.join(missing)}" if missing else ""),
              f"- compared: {' × '.join(keys) or '(nothing varies)'}",
              "- held fixed: " + (", ".join(f"`{k}={_value(v)}`" for k, v in fixed.items()) or "—"),
              "", MEANS_NOTE.format(margin=margin), ""]
    if groups:
        lines += ["## Accuracy and generalization gap", ""] + markdown_table(groups, keys, acc)
        if sharp:
            lines += ["", "## Sharpness and gradient noise scale", "",
                      "λ_max: largest Hessian eigenvalue; Hessian trace: Hutchinson estimate; ε-sharpness: "
                      "Keskar et al. 2017 Metric 2.1, the % loss increase at the worst point of an ε-box "
                      "(full space or a random subspace); all on the same fixed training subset.", ""]
            lines += markdown_table(groups, keys, sharp)
    else:
        lines += ["(no results yet)"]
    left_out = [row for row in rows if run_state(row) != "completed"]
    if left_out:
        lines += ["", "## Runs left out of the means", ""]
        for row in left_out:
            why = (f"test accuracy {numfmt.num(row['test_accuracy'])}, chance {numfmt.num(row['chance_accuracy'])}"
                   if run_state(row) == "never learned" else (row.get("error") or ""))
            lines.append(f"- {row['run_name']}: {run_state(row)} ({why})")
    lines += analysis_tables(analysis)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    lines += ["", "## All runs", ""] + runs_table(rows, keys, sharp)
    lines += ["", "Training curves of every run: `tensorboard --logdir .` in this folder (Scalars: "
              "`by_epoch/` compares batch sizes per epoch; HParams: one row per run).", ""]
    path = os.path.join(sweep_dir, "report.md")
    with open(path, "w") as f:
        f.write(scrub_paths("\n".join(lines)))
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lbbench-report", description="Write report.md, runs.csv and PNG plots for a sweep folder.",
        epilog="example: lbbench-report sweeps/keskar-quick")
    p.add_argument("sweep_dir", help="a folder written by lbbench-sweep (or any folder of run folders)")
    p.add_argument("--tb_logdir", default=None,
                   help="also write the figures to TensorBoard here (keep it outside the sweep folder)")
    p.add_argument("--chance_margin", type=float, default=results_lib.CHANCE_MARGIN,
                   help="a run never learned if test accuracy ≤ 1/classes + this (default %(default)s)")
    return p.parse_args(argv[1:])


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not os.path.isdir(args.sweep_dir):
        print(f"lbbench.report: error: {args.sweep_dir!r} is not a directory", file=sys.stderr)
        return 2
    if args.tb_logdir and os.path.abspath(args.tb_logdir).startswith(os.path.abspath(args.sweep_dir) + os.sep):
        print("lbbench.report: error: --tb_logdir is inside the sweep folder, where TensorBoard would show the "
              "report as one more run; choose a folder outside it", file=sys.stderr)
        return 2
    print(f"lbbench.report: wrote {write_report(args.sweep_dir, tb_logdir=args.tb_logdir, margin=args.chance_margin)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
