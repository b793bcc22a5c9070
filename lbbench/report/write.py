"""`write_report(sweep_dir)`: report.md, runs.csv and PNG figures for a sweep folder (or any folder of runs).

Runs are grouped by every config key that varies across the sweep except seed and run_name. Each
metric is the mean over the group's runs that *completed and learned*: a run whose final test
accuracy is at chance (≤ 1/num_classes + margin) "never learned" and is left out of the means, as
are diverged and failed runs; all are counted and listed. Cells show mean ± sample s.d. and n; with
n < 3 they show the per-seed values instead of a spread. The figures are the ones the large-batch
literature draws: accuracy, generalization gap and sharpness (λ_max, Hessian trace, Keskar's
ε-sharpness) vs batch size (Keskar et al. 2017, Hoffer et al. 2017, Goyal et al. 2017), the
1-D interpolation (Keskar Fig. 3) and the Hessian spectral density.

Figures go to TensorBoard only with `tb_logdir`, a folder the user names: TensorBoard reads its
logdir recursively, so anywhere inside (or beside) the sweep folder the report would appear as one
more "run" among the training runs.
"""

from __future__ import annotations

import os

from tensorboardX import SummaryWriter

from lbbench.report import figures, numfmt
from lbbench.report.data import (
    _label_sort,
    _sort_key,
    _value,
    _warn,
    aggregate,
    arm_label,
    fixed_settings,
    flatten,
    load_sweep,
    metric_columns,
    run_state,
    varying_keys,
)
from lbbench.report.tables import (
    MEANS_NOTE,
    analysis_tables,
    header,
    markdown_table,
    runs_table,
    scrub_paths,
    write_csv,
)
from lbbench.runs import atomic
from lbbench.runs.reader import CHANCE_MARGIN, read_json

VALID = {
    "test_accuracy": (0.0, 1.0),
    "train_accuracy": (0.0, 1.0),
    "generalization_gap": (-1.0, 1.0),
    "lambda_max": (None, None),
    "hessian_trace": (None, None),
}


def _context(info: dict, fixed: dict) -> str:
    name = info.get("experiment") or "sweep"
    quick = " (quick smoke run)" if info.get("quick") else ""
    what = ", ".join(f"{fixed[k]}" for k in ("model", "dataset") if k in fixed)
    return f"{name}{quick}" + (f": {what}" if what else "")


def make_figures(
    results: list[dict],
    groups: list[dict],
    keys: list[str],
    analysis: dict | None,
    info: dict | None = None,
    margin: float = CHANCE_MARGIN,
) -> dict:
    """{name: Figure} for everything the sweep measured (runs that never learned left out)."""
    info = info or {}
    figs = {}
    ctx = _context(info, fixed_settings(results))
    rows = [flatten(r, margin) for r in results]
    _, sharp = metric_columns(rows)
    eps = [m for m in sharp if m.startswith("eps_sharpness_")]
    arm_keys = [k for k in keys if k != "batch_size"]
    singles = [
        (m, header(m))
        for m in ("test_accuracy", "generalization_gap", "lambda_max", "hessian_trace")
        if any((g.get(m) or {}).get("n") for g in groups)
    ]
    if "batch_size" in keys:
        arms: dict = {}
        for g in groups:
            arms.setdefault(arm_label(g, arm_keys) or "all runs", []).append(g)
        for m, label in singles:
            figs[m + "_vs_batch"] = figures.vs_batch_figure(
                arms, m, label, f"{ctx} — final {label} vs batch size", VALID.get(m, (None, None))
            )
        if eps:
            figs["eps_sharpness_vs_batch"] = figures.vs_batch_panels(
                arms, [(m, header(m)) for m in eps], f"{ctx} — Keskar ε-sharpness (%) vs batch size"
            )
    elif groups:
        for m, label in singles + [(m, header(m)) for m in eps]:
            measured = [g for g in groups if g[m]["n"]]  # a group with only diverged runs has no value
            if measured:
                figs[m] = figures.bars_figure(
                    [arm_label(g, arm_keys) or "all runs" for g in measured],
                    measured,
                    m,
                    label,
                    f"{ctx} — final {label} per arm",
                    VALID.get(m, (0.0, None)),
                )
    learned = [r for r, row in zip(results, rows) if run_state(row) == "completed"]
    if learned:
        label_keys = keys or ["batch_size"]
        runs = [(", ".join(f"{k}={_value(r['config'].get(k))}" for k in label_keys), r) for r in learned]
        runs.sort(key=lambda lr: tuple(_sort_key(lr[1]["config"].get(k)) for k in label_keys))
        figs["test_accuracy_curves"] = figures.curves_figure(
            runs,
            "test_accuracy",
            "test accuracy",
            f"{ctx} — test accuracy per epoch (runs that learned; seeds share a style)",
        )
    by_model: dict = {}  # one line per arm and batch size: its lowest seed
    for r in sorted(learned, key=lambda r: r["config"].get("seed") or 0):
        if (r.get("sharpness") or {}).get("density"):
            label = ", ".join(f"{k}={_value(r['config'].get(k))}" for k in keys or ["batch_size"])
            by_model.setdefault(r["config"]["model"], {}).setdefault(
                label, (r["config"].get("seed"), r["sharpness"]["density"])
            )
    for model, lines in by_model.items():
        by_model[model] = {
            f"{label} (seed {seed})": d for label, (seed, d) in sorted(lines.items(), key=lambda kv: _label_sort(kv[0]))
        }
    if by_model:
        figs["hessian_density"] = figures.density_panels(by_model)
    analysis = analysis or {}
    for curve in analysis.get("interpolation", []):
        figs[f"interpolation_{curve['model']}"] = figures.interpolation_figure(curve)
    if analysis.get("steps_to_target"):
        figs["steps_to_target"] = figures.steps_to_target_figure(analysis["steps_to_target"])
    return figs


def save_figures(sweep_dir: str, figs: dict, tb_logdir: str | None = None) -> list[str]:
    """PNG files beside report.md; the same figures to TensorBoard in `tb_logdir` if given."""
    names = []
    for name, fig in figs.items():
        fig.savefig(os.path.join(sweep_dir, f"{name}.png"), dpi=110, bbox_inches="tight")
        names.append(f"{name}.png")
    if tb_logdir:
        tb = SummaryWriter(logdir=tb_logdir)
        for name, fig in figs.items():
            tb.add_figure(f"report/{name}", fig, 0, close=False)
        tb.close()
    return names


def title_of(info: dict, sweep_dir: str) -> str:
    name = info.get("experiment") or os.path.basename(os.path.normpath(sweep_dir))
    if info.get("quick"):
        return f"# {name} — QUICK smoke run (tiny settings; checks the pipeline, not the science)"
    return f"# {name} — sweep report"


def write_report(
    sweep_dir: str, analysis: dict | None = None, tb_logdir: str | None = None, margin: float = CHANCE_MARGIN
) -> str:
    """Write report.md, runs.csv and *.png for `sweep_dir`; returns report.md's path."""
    info, results, missing = load_sweep(sweep_dir)
    if analysis is None:
        analysis, problem = read_json(os.path.join(sweep_dir, "analysis.json"))
        if problem and problem != "missing":
            _warn(f"ignoring {os.path.join(sweep_dir, 'analysis.json')}: {problem}")
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
        lines += [
            "> **Quick run.** Small settings (tiny model, few epochs, few seeds): these numbers test that the pipeline "
            "works end to end. Do not read them as results; drop `--quick` for the study.",
            "",
        ]
    lines += [
        f"- command: `{info.get('command', '?')}`",
        f"- git commit: {info.get('git_commit') or '?'}",
        f"- runs: {len(results)} with results ({states['completed']} learned, {states['never learned']} "
        f"never learned, {states['diverged']} diverged, {states['failed']} failed); "
        f"{len(missing)} missing (not run or interrupted)" + (f": {', '.join(missing)}" if missing else ""),
        f"- compared: {' × '.join(keys) or '(nothing varies)'}",
        "- held fixed: " + (", ".join(f"`{k}={_value(v)}`" for k, v in fixed.items()) or "—"),
        "",
        MEANS_NOTE.format(margin=margin),
        "",
    ]
    if groups:
        lines += ["## Accuracy and generalization gap", ""] + markdown_table(groups, keys, acc)
        if sharp:
            lines += [
                "",
                "## Sharpness and gradient noise scale",
                "",
                "λ_max: largest Hessian eigenvalue; Hessian trace: Hutchinson estimate; ε-sharpness: "
                "Keskar et al. 2017 Metric 2.1, the % loss increase at the worst point of an ε-box "
                "(full space or a random subspace); all on the same fixed training subset.",
                "",
            ]
            lines += markdown_table(groups, keys, sharp)
    else:
        lines += ["(no results yet)"]
    left_out = [row for row in rows if run_state(row) != "completed"]
    if left_out:
        lines += ["", "## Runs left out of the means", ""]
        for row in left_out:
            why = (
                f"test accuracy {numfmt.num(row['test_accuracy'])}, chance {numfmt.num(row['chance_accuracy'])}"
                if run_state(row) == "never learned"
                else (row.get("error") or "")
            )
            lines.append(f"- {row['run_name']}: {run_state(row)} ({why})")
    lines += analysis_tables(analysis)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    lines += ["", "## All runs", ""] + runs_table(rows, keys, sharp)
    lines += [
        "",
        "Training curves of every run: `tensorboard --logdir .` in this folder (Scalars: "
        "`by_epoch/` compares batch sizes per epoch; HParams: one row per run).",
        "",
    ]
    path = os.path.join(sweep_dir, "report.md")
    atomic.write_text(path, scrub_paths("\n".join(lines)))
    return path
