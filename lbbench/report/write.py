"""`write_report(sweep_dir)`: report.md, runs.csv and PNG figures for a sweep folder (or any folder of runs).

Runs form one configuration per combination of the config keys that vary across the sweep,
bookkeeping excluded (data.BOOKKEEPING: seed, sharpness, eval_every_steps, workdir, …), so a
winner's tuning run and its seed re-runs share a row. Each metric is the mean over the
configuration's runs that *completed and learned*: a run whose final test accuracy is at chance
(≤ 1/num_classes + margin) "never learned" and is left out of the means, as are diverged and failed
runs; all are counted and listed by name. Cells show the mean and its 95 % t interval (n ≥ 3) or the
seeds' values (n = 2). Figures are grouped by one key (`group_by`: the arm of a study, else batch
size; never a bookkeeping key): per group value (and batch size) they draw one configuration, the
one with the most seeds (a study's re-run winner; ties: best validation accuracy), the others as
faint dots. The figures are the ones the large-batch
literature draws: accuracy, generalization gap and sharpness (λ_max, Hessian trace, Keskar's
ε-sharpness) vs batch size (Keskar et al. 2017, Hoffer et al. 2017, Goyal et al. 2017), the
1-D interpolation (Keskar Fig. 3) and the Hessian spectral density.

Figures go to TensorBoard only with `tb_logdir`, a folder the user names: TensorBoard reads its
logdir recursively, so anywhere inside (or beside) the sweep folder the report would appear as one
more "run" among the training runs.
"""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from tensorboardX import SummaryWriter

from lbbench.report import curvature_figures, figures, numfmt
from lbbench.report.data import (
    ARM,
    BOOKKEEPING,
    _sort_key,
    _value,
    _warn,
    aggregate,
    arm_family,
    arm_of,
    cell_label,
    default_group_by,
    fixed_settings,
    flatten,
    group_choices,
    lead_configurations,
    load_sweep,
    mean_curve,
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
from lbbench.runs.atomic import atomic_open
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


def cell_keys(groups: list[dict], keys: list[str], group_by: str | None) -> list[str]:
    """What one drawn point or curve stands for: the group value, and the batch size when a group
    value spans several (an arm named after its batch size needs no second label)."""
    if not group_by:
        return []
    spans: dict = {}
    for g in groups:
        spans.setdefault(g[group_by], set()).add(g["batch_size"])
    several = "batch_size" in keys and any(len(b) > 1 for b in spans.values())
    return [group_by] + (["batch_size"] if several and group_by != "batch_size" else [])


def _ordered(leads: dict) -> list[tuple]:
    return sorted(leads.items(), key=lambda kv: tuple(_sort_key(v) for v in kv[0]))


def _lead_note(groups: list[dict], leads: dict, what: str = "point") -> str:
    if len(groups) == len(leads):
        return ""
    grey = "; grey: the other configurations" if what == "point" else ""
    return f"\neach {what}: the configuration with the most seeds (ties: best validation accuracy){grey}"


def _series_name(g: dict, k: tuple, cells: list[str]) -> str:
    """The line a drawn configuration belongs to in a figure against batch size."""
    if cells[0] == ARM:
        return arm_family(g[ARM], g["batch_size"])
    return "mean over seeds" if cells[0] == "batch_size" else cell_label(k[:1], cells[:1])


def _as_bars(leads: dict, keys: list[str], cells: list[str]) -> bool:
    """Bars per group value when batch size does not vary, or when many lines would share a few
    batch sizes (lines through 2 or 3 x positions stack their points on one another)."""
    if "batch_size" not in keys:
        return True
    lines = {_series_name(g, k, cells) for k, g in leads.items()}
    return len(lines) > figures.MAX_LEGEND // 2 and len({g["batch_size"] for g in leads.values()}) <= 3


def _metric_figures(groups, keys, group_by, metrics, eps, ctx) -> dict:
    """<metric>_vs_batch (one line per group value) when batch size varies, else one bar per group
    value named <metric> (see _as_bars)."""
    cells = cell_keys(groups, keys, group_by)
    if not cells:
        return {}
    leads = lead_configurations(groups, cells)
    if _as_bars(leads, keys, cells):
        labelled = [(cell_label(k, cells), g) for k, g in _ordered(leads)]
        return {
            m: figures.bars_figure(
                [lab for lab, _ in labelled],
                [g.get(m) for _, g in labelled],
                label,
                f"{ctx} — final {label} by {group_by}{_lead_note(groups, leads, 'bar')}",
                VALID.get(m, (0.0, None)),
            )
            for m, label in metrics + eps
        }
    series: dict = {}
    for k, g in _ordered(leads):
        series.setdefault(_series_name(g, k, cells), []).append(g)
    lead_ids = {id(g) for g in leads.values()}
    rest = [g for g in groups if id(g) not in lead_ids]

    def panel(m, label):
        pts = {name: [(g["batch_size"], g.get(m)) for g in gs] for name, gs in series.items()}
        others = [(g["batch_size"], g[m]["mean"]) for g in rest if (g.get(m) or {}).get("mean") is not None]
        never = {
            name: [(g["batch_size"], v) for g in gs for v in g["never_learned"].get(m, [])]
            for name, gs in series.items()
        }
        return pts, (m, label, others, never)

    by = f", by {group_by}" if cells[0] != "batch_size" else ""
    figs = {}
    for m, label in metrics:
        pts, (_, _, others, never) = panel(m, label)
        figs[m + "_vs_batch"] = figures.vs_batch_figure(
            pts,
            label,
            f"{ctx} — final {label} vs batch size{by}{_lead_note(groups, leads)}",
            VALID.get(m, (None, None)),
            others,
            never,
        )
    if eps:
        made = [panel(m, label) for m, label in eps]
        merged = {name: {m: made[i][0][name] for i, (m, _) in enumerate(eps)} for name in series}
        figs["eps_sharpness_vs_batch"] = figures.vs_batch_panels(
            merged,
            [p for _, p in made],
            f"{ctx} — Keskar ε-sharpness (%) vs batch size{by}{_lead_note(groups, leads)}",
            (0.0, None),
        )
    return figs


def _curve_figure(groups, keys, group_by, ctx):
    """Test accuracy per epoch and per example seen, one curve per group value (and batch size)."""
    cells = cell_keys(groups, keys, group_by)
    leads = lead_configurations(groups, cells)
    curves = [
        (cell_label(k, cells) or "all runs", mean_curve(g["learned_members"], "test_accuracy"))
        for k, g in _ordered(leads)
        if g["learned_members"]
    ]
    if not curves:
        return None
    return figures.curves_figure(
        curves, "test accuracy", f"{ctx} — test accuracy during training{_lead_note(groups, leads, 'curve')}"
    )


def _density_figure(groups, keys, group_by):
    """Hessian spectral density of each drawn configuration's lowest seed, one panel per model."""
    cells = cell_keys(groups, keys, group_by)
    by_model: dict = {}
    for k, g in _ordered(lead_configurations(groups, cells)):
        run = min(
            (r for r in g["learned_members"] if (r.get("sharpness") or {}).get("density")),
            key=lambda r: r["config"].get("seed") or 0,
            default=None,
        )
        if run is not None:
            label = f"{cell_label(k, cells) or 'all runs'} (seed {run['config'].get('seed')})"
            by_model.setdefault(run["config"]["model"], {})[label] = run["sharpness"]["density"]
    return curvature_figures.density_panels(by_model) if by_model else None


def make_figures(
    results: list[dict],
    groups: list[dict],
    keys: list[str],
    analysis: dict | None,
    info: dict | None = None,
    margin: float = CHANCE_MARGIN,
    group_by: str | None = None,
) -> dict:
    """{name: Figure} for everything the sweep measured (runs that never learned left out), each
    configuration drawn by its seed mean and 95 % interval, grouped by `group_by`."""
    ctx = _context(info or {}, fixed_settings(results))
    _, sharp = metric_columns([flatten(r, margin) for r in results])
    measured = lambda m: any((g.get(m) or {}).get("n") for g in groups)  # noqa: E731
    metrics = [
        (m, header(m)) for m in ("test_accuracy", "generalization_gap", "lambda_max", "hessian_trace") if measured(m)
    ]
    eps = [(m, header(m)) for m in sharp if m.startswith("eps_sharpness_") and measured(m)]
    figs = _metric_figures(groups, keys, group_by, metrics, eps, ctx) if groups else {}
    extra = {
        "test_accuracy_curves": _curve_figure(groups, keys, group_by, ctx) if groups else None,
        "hessian_density": _density_figure(groups, keys, group_by) if groups else None,
    }
    figs.update({k: v for k, v in extra.items() if v is not None})
    analysis = analysis or {}
    for curve in analysis.get("interpolation", []):
        figs[f"interpolation_{curve['model']}"] = curvature_figures.interpolation_figure(curve)
    return figs


def save_figures(out_dir: str, figs: dict, tb_logdir: str | None = None) -> list[str]:
    """PNG files beside report.md, each at its figure's fixed size; the same figures to TensorBoard in
    `tb_logdir` if given."""
    names = []
    for name, fig in figs.items():
        FigureCanvasAgg(fig)
        with atomic_open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
            fig.savefig(f, format="png", dpi=figures.REPORT_DPI)
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


def _summary_lines(info: dict, results, missing, rows, keys, group_by) -> list[str]:
    """The header bullets; a field the folder does not record (a plain folder of runs) is left out."""
    states = {st: sum(run_state(r) == st for r in rows) for st in ("completed", "never learned", "diverged", "failed")}
    fixed = fixed_settings(results)
    lines = [f"- command: `{info['command']}`"] if info.get("command") else []
    lines += [f"- git commit: {info['git_commit']}"] if info.get("git_commit") else []
    lines += [
        f"- runs: {len(results)} with results ({states['completed']} learned, {states['never learned']} "
        f"never learned, {states['diverged']} diverged, {states['failed']} failed); "
        f"{len(missing)} missing (not run or interrupted)" + (f": {', '.join(missing)}" if missing else ""),
        f"- compared: {' × '.join(k for k in keys if k != ARM) or '(nothing varies)'}",
        "- held fixed: " + (", ".join(f"`{k}={_value(v)}`" for k, v in fixed.items()) or "—"),
    ]
    if group_by:
        lines.append(f"- figures grouped by: {group_by} (`lbbench-report --group_by KEY` to change)")
    return lines


def _left_out_lines(rows: list[dict]) -> list[str]:
    left_out = [row for row in rows if run_state(row) != "completed"]
    lines = ["", "## Runs left out of the means", ""] if left_out else []
    for row in left_out:
        why = (
            f"test accuracy {numfmt.num(row['test_accuracy'])}, chance {numfmt.num(row['chance_accuracy'])}"
            if run_state(row) == "never learned"
            else (row.get("error") or "")
        )
        lines.append(f"- {row['run_name']}: {run_state(row)}" + (f" ({why})" if why else ""))
    return lines


def resolve_group_by(results: list[dict], group_by: str | None) -> str | None:
    """`group_by` checked against what the runs allow (ValueError naming the choices), or the default."""
    if group_by is None:
        return default_group_by(results, varying_keys(results))
    choices = group_choices(results)
    if group_by not in choices:
        why = "is bookkeeping, never a grouping key" if group_by in BOOKKEEPING else "is not a key of these runs"
        raise ValueError(f"--group_by {group_by!r} {why}; choose one of: {', '.join(choices)}")
    return group_by


def write_report(
    sweep_dir: str,
    analysis: dict | None = None,
    tb_logdir: str | None = None,
    margin: float = CHANCE_MARGIN,
    group_by: str | None = None,
    out_dir: str | None = None,
) -> str:
    """Write report.md, runs.csv and *.png for `sweep_dir` into `out_dir` (default: the sweep folder);
    returns report.md's path. ValueError for a `group_by` the runs do not allow."""
    out_dir = out_dir or sweep_dir
    info, results, missing = load_sweep(sweep_dir)
    if analysis is None:
        analysis, problem = read_json(os.path.join(sweep_dir, "analysis.json"))
        if problem and problem != "missing":
            _warn(f"ignoring {os.path.join(sweep_dir, 'analysis.json')}: {problem}")
    group_by = resolve_group_by(results, group_by)
    keys = ([ARM] if group_by == ARM else []) + varying_keys(results)
    groups = aggregate(results, keys, margin)
    rows = [{**flatten(r, margin), ARM: arm_of(r)} for r in results]
    acc, sharp = metric_columns(rows)
    write_csv(os.path.join(out_dir, "runs.csv"), results, keys, margin)
    pngs = save_figures(out_dir, make_figures(results, groups, keys, analysis, info, margin, group_by), tb_logdir)
    lines = [title_of(info, sweep_dir), ""]
    if info.get("quick"):
        lines += [
            "> **Quick run.** Small settings (tiny model, few epochs, few seeds): these numbers test that the pipeline "
            "works end to end. Do not read them as results; drop `--quick` for the study.",
            "",
        ]
    lines += _summary_lines(info, results, missing, rows, keys, group_by)
    lines += ["", MEANS_NOTE.format(margin=margin), ""]
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
    lines += _left_out_lines(rows)
    lines += analysis_tables(analysis)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    lines += ["", "## All runs", ""] + runs_table(rows, keys, sharp)
    lines += [
        "",
        "Training curves of every run: `tensorboard --logdir .` in the sweep folder (Scalars: "
        "`per_epoch/` compares batch sizes per epoch; HParams: one row per run).",
        "",
    ]
    path = os.path.join(out_dir, "report.md")
    atomic.write_text(path, scrub_paths("\n".join(lines)))
    return path
