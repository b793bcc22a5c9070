"""Every figure lbbench draws, on `matplotlib.figure.Figure` directly (no pyplot, no global backend).

Each function takes plain Python data (aggregated groups, answer rows, analysis dicts) and returns a
Figure; `save` writes one. Sweep reports (report/write.py) and the studies' analyses
(lbbench/experiments) draw with these. What every figure does the same way, because a reader
compares them side by side:
- one style per arm at any number of arms (colour × line style × marker; `styles`), and every
  point has a marker, so a one-epoch curve is still visible;
- the legend sits outside the axes (never on the data), one entry per arm, not per seed, at most
  MAX_LEGEND entries (the rest summarised as "+N more") with labels cut to LABEL_CHARS, so a sweep
  of 130 configurations still gives a legend a reader can scan;
- report figures have a fixed size (WIDTH × HEIGHT inches, saved at REPORT_DPI; side-by-side panels
  at most twice as wide): a long label never stretches the image or squeezes the axes;
- batch-size axes are log2 with a tick labelled at every batch size used (6000 too), in the
  reports' number format (lbbench/report/numfmt.py); other axes are log when their values span
  more than LOG_SPAN (epochs 1–334 would press every short run against the y axis);
- error bars are the 95 % t interval of the mean over seeds (lbbench.study.bootstrap.mean_ci, the
  interval of the study answers), clipped to the metric's valid range, drawn when n ≥ 3; with two
  seeds each seed is drawn as a dot; the title says which.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lbbench.report.numfmt import whole

LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CI_NOTE = "mean over seeds; bars: 95% t interval (n ≥ 3); dots: the seeds (n = 2)"
MIN_SEEDS_FOR_BARS = 3
MAX_LEGEND = 12  # legend entries per figure, a "+N more" summary included
LABEL_CHARS = 48  # longer legend labels are cut with "…"
WIDTH, HEIGHT = 8.0, 4.6  # inches; report figures are saved at this size (REPORT_DPI), never grown to fit
REPORT_DPI = 110
LOG_SPAN = 30  # an axis whose positive values span more than this factor is drawn log
NEVER_LEARNED = "never learned (left out of the mean)"
OTHERS = "other configurations (seed means)"
RATIO_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)  # log ratio axes


def styles(labels) -> dict:
    """{label: {"color", "linestyle", "marker"}}, distinct for any number of labels (order kept)."""
    labels = list(dict.fromkeys(labels))
    n = len(labels)
    if n <= 10:
        colours = [colormaps["tab10"](i) for i in range(n)]
    elif n <= 20:
        colours = [colormaps["tab20"](i) for i in range(n)]
    else:
        colours = [colormaps["turbo"](0.05 + 0.9 * i / (n - 1)) for i in range(n)]
    return {
        lab: {
            "color": colours[i],
            "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)] if n > 10 else "-",
            "marker": MARKERS[i % len(MARKERS)],
        }
        for i, lab in enumerate(labels)
    }


def _figure(title: str, xlabel: str, ylabel: str, size=(WIDTH, HEIGHT), panels: int = 1):
    """A fixed-size figure of `panels` side-by-side axes (constrained layout), at most 2 × WIDTH wide."""
    width = min(size[0] + 3.0 * (panels - 1), 2 * WIDTH)
    fig = Figure(figsize=(width, size[1]), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.suptitle(title, fontsize=9)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    return fig, axes


def short(label: str, chars: int = LABEL_CHARS) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"


def labelled(labels: list[str], cap: int = MAX_LEGEND) -> set:
    """Which of `labels` (in order) get a legend entry: all if they fit in `cap`, else cap − 1 spread
    evenly over the order (first and last included), the "+N more" entry taking the last place."""
    if len(labels) <= cap:
        return set(labels)
    idx = np.unique(np.linspace(0, len(labels) - 1, cap - 1).round().astype(int))
    return {labels[i] for i in idx}


def figure_legend(fig, ax, hidden: int = 0) -> None:
    """The axes' legend below the plot, across the figure (≤ MAX_LEGEND entries, labels cut to
    LABEL_CHARS); `hidden` lines without an entry are summarised as "+N more"."""
    handles, labels = ax.get_legend_handles_labels()
    if hidden:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"+{hidden} more (unlabelled, in between)")
    if handles:
        labels = [short(x) for x in labels]
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(handles)), fontsize=7, frameon=False)


def legend_outside(ax, below: bool = False) -> None:
    """The axes' legend outside the plot area (right, or below for side-by-side panels), 20 a column."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if below:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    else:
        ax.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0,
            ncol=1 + (len(handles) - 1) // 20,
            frameon=False,
        )


def batch_axis(ax, batches) -> None:
    """Log2 x axis with a labelled tick at each batch size used (e.g. 256, 6000), no others."""
    batches = sorted({int(b) for b in batches})
    ax.set_xscale("log", base=2)
    if batches:
        ax.set_xticks(batches)
        ax.set_xticklabels([whole(b) for b in batches], rotation=45 if len(batches) > 6 else 0, fontsize=7)
        ax.minorticks_off()
        lo, hi = batches[0], batches[-1]
        ax.set_xlim(lo / 1.3, hi * 1.3)


def auto_log(ax, values) -> bool:
    """Log x when the positive values span more than LOG_SPAN (e.g. epochs 1–334), linear otherwise."""
    xs = [v for v in values if v is not None and v > 0]
    if xs and max(xs) / min(xs) > LOG_SPAN:
        ax.set_xscale("log")
        return True
    return False


def ci_errors(stats: list[dict], valid=(None, None)):
    """(lower, upper) error-bar lengths of each stat's 95 % interval, cut at the valid range."""
    lo, hi = valid
    lower = [s["mean"] - max(s["low"], lo) if lo is not None else s["mean"] - s["low"] for s in stats]
    upper = [min(s["high"], hi) - s["mean"] if hi is not None else s["high"] - s["mean"] for s in stats]
    return [max(v, 0.0) for v in lower], [max(v, 0.0) for v in upper]


def _draw_series(ax, points, style, label, valid):
    """points: [(x, stat)] with stat {"mean", "low", "high", "n", "values"}: a line through the means,
    95 % interval bars where n ≥ MIN_SEEDS_FOR_BARS, the seeds as dots where n = 2."""
    points = sorted((x, s) for x, s in points if s and s.get("mean") is not None)
    if not points:
        return
    ax.plot([x for x, _ in points], [s["mean"] for _, s in points], label=label, lw=1.3, ms=5, **style)
    bars = [(x, s) for x, s in points if s["n"] >= MIN_SEEDS_FOR_BARS and s.get("low") is not None]
    if bars:
        lower, upper = ci_errors([s for _, s in bars], valid)
        ax.errorbar(
            [x for x, _ in bars],
            [s["mean"] for _, s in bars],
            yerr=[lower, upper],
            fmt="none",
            ecolor=style["color"],
            capsize=3,
            lw=1,
        )
    for x, s in points:
        if 1 < s["n"] < MIN_SEEDS_FOR_BARS:
            ax.scatter([x] * len(s["values"]), s["values"], s=12, color=style["color"], alpha=0.6, zorder=3)


def _draw_extras(ax, others, never, st) -> None:
    """Other configurations as faint grey dots; runs at chance as crosses in their series' colour."""
    if others:
        ax.scatter(*zip(*others), s=9, color="0.6", alpha=0.5, zorder=1, label=OTHERS)
    drawn = False
    for label, pts in (never or {}).items():
        if pts:
            ax.scatter(*zip(*pts), marker="x", s=30, color=st[label]["color"] if label in st else "grey", zorder=3)
            drawn = True
    if drawn:
        ax.scatter([], [], marker="x", color="grey", label=NEVER_LEARNED)


def vs_batch_figure(series: dict, ylabel: str, title: str, valid=(None, None), others=None, never=None) -> Figure:
    """A metric (mean over seeds, 95 % interval) against batch size, one line per series.

    series: {label: [(batch size, stat)]}; others: [(batch size, mean)] of the configurations no series
    draws; never: {label: [(batch size, value)]} of runs at chance."""
    one = {label: {"": pts} for label, pts in series.items()}
    return vs_batch_panels(one, [("", ylabel, others, never)], title, valid)


def vs_batch_panels(series: dict, panels: list, title: str, valid=(None, None)) -> Figure:
    """Several metrics side by side (one panel each), one legend below: series = {label: {metric:
    [(batch, stat)]}}; panels = [(metric, ylabel, others, never)] as in vs_batch_figure."""
    fig, axes = _figure(f"{title}\n{CI_NOTE}", "batch size (log2)", "", panels=len(panels))
    st = styles(series)
    extras = any(p[2] for p in panels) + any(any((p[3] or {}).values()) for p in panels)
    shown = labelled(list(series), MAX_LEGEND - extras)
    for ax, (metric, ylabel, others, never) in zip(axes, panels):
        ax.set_ylabel(ylabel)
        batches = [x for x, _ in others or []]
        for label, by_metric in series.items():
            pts = by_metric.get(metric, [])
            batches += [x for x, _ in pts]
            _draw_series(ax, pts, st[label], label if label in shown else None, valid)
        _draw_extras(ax, others, never, st)
        batch_axis(ax, batches)
    figure_legend(fig, axes[-1], len(series) - len(shown))
    return fig


def bars_figure(labels: list[str], stats: list[dict], ylabel: str, title: str = "", valid=(None, None)) -> Figure:
    """A metric per group as bars with their 95 % interval (n ≥ 3) or seed dots (n = 2); used when batch
    size does not vary. Labels are the x tick labels (cut to LABEL_CHARS)."""
    fig, (ax,) = _figure(f"{title or ylabel}\n{CI_NOTE}", "", ylabel)
    st = styles(labels)
    for i, (label, s) in enumerate(zip(labels, stats)):
        if not s or s.get("mean") is None:
            continue
        ax.bar(i, s["mean"], color=st[label]["color"], alpha=0.85)
        if s["n"] >= MIN_SEEDS_FOR_BARS and s.get("low") is not None:
            lower, upper = ci_errors([s], valid)
            ax.errorbar([i], [s["mean"]], yerr=[lower, upper], fmt="none", ecolor="black", capsize=3)
        elif s["n"] > 1:
            ax.scatter([i] * len(s["values"]), s["values"], s=12, color="black", zorder=3)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([short(x, 40) for x in labels], rotation=30, ha="right", fontsize=7)
    return fig


def curves_figure(curves: list[tuple[str, dict]], ylabel: str, title: str = "") -> Figure:
    """A per-epoch metric against epochs (left) and examples seen (right), one line per curve: `curves`
    = [(label, {"epoch", "examples", "mean", "low", "high"})] (data.mean_curve), the 95 % interval
    shaded where a curve has ≥ 3 seeds. Both axes are log when the epochs span more than LOG_SPAN
    (one decision, so the two panels read alike)."""
    fig, axes = _figure(f"{title}\nmean over seeds; band: 95% t interval (n ≥ 3)", "", ylabel, panels=2)
    st = styles(label for label, _ in curves)
    shown = labelled([label for label, _ in curves])
    epochs = []
    for ax, xkey in zip(axes, ("epoch", "examples")):
        for label, c in curves:
            xs = _draw_curve(ax, c, xkey, st[label], label if label in shown and xkey == "epoch" else None)
            epochs += xs if xkey == "epoch" else []
    log = auto_log(axes[0], epochs)
    for ax, xlabel in zip(axes, ("epoch", "training examples seen")):
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel + (" (log)" if log else ""))
    if not log:
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure_legend(fig, axes[0], len(curves) - len(shown))
    return fig


def _draw_curve(ax, c: dict, xkey: str, style: dict, label) -> list:
    """One mean curve against `xkey` with its interval band; returns the x values drawn."""
    pts = [(x, m, lo, hi) for x, m, lo, hi in zip(c[xkey], c["mean"], c["low"], c["high"]) if None not in (x, m)]
    if not pts:
        return []
    xs, ms, lows, highs = zip(*pts)
    ax.plot(xs, ms, lw=1.1, ms=2.5, markevery=max(1, len(xs) // 12), alpha=0.9, label=label, **style)
    band = [(x, lo, hi) for x, lo, hi in zip(xs, lows, highs) if lo is not None]
    if band:
        ax.fill_between(*zip(*band), color=style["color"], alpha=0.15, lw=0)
    return list(xs)


def interpolation_figure(curve: dict) -> Figure:
    """Keskar et al. 2017 Fig. 3: loss (left axis, log) and accuracy (right) along θ(α)."""
    fig, (ax,) = _figure(
        f"1-D interpolation between the small-batch (α=0) and large-batch (α=1) solutions: {curve.get('model', '')}",
        "α",
        f"{curve.get('loss', 'cross_entropy').replace('_', '-')} loss",  # runs before --loss: cross-entropy
    )
    a = curve["alphas"]
    ax.semilogy(a, curve["train_loss"], "b-", marker=".", label="train loss")
    ax.semilogy(a, curve["test_loss"], "b--", marker=".", label="test loss")
    ax2 = ax.twinx()
    ax2.plot(a, curve["train_accuracy"], "r-", marker=".", label="train acc")
    ax2.plot(a, curve["test_accuracy"], "r--", marker=".", label="test acc")
    ax2.set_ylabel("accuracy")
    for x in (0.0, 1.0):
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1.0), frameon=False)
    return fig


def density_panels(by_model: dict) -> Figure:
    """Hessian spectral densities (SLQ, Ghorbani et al. 2019), one panel per model (their eigenvalue
    scales differ), one styled line per arm: `by_model` = {model: {label: density}}."""
    models = sorted(by_model)
    fig, axes = _figure(
        "Hessian spectral density at the end of training (SLQ), one panel per model",
        "eigenvalue",
        "density (log)",
        panels=len(models),
    )
    for ax, model in zip(axes, models):
        ax.set_title(model, fontsize=8)
        st = styles(by_model[model])
        for label, d in by_model[model].items():
            s = {k: v for k, v in st[label].items() if k != "marker"}
            ax.semilogy(d["grid"], [max(v, 1e-12) for v in d["values"]], lw=1, label=label, **s)
        legend_outside(ax, below=len(models) > 1)
    return fig


# ---------------------------------------------------------------------------- edge of stability


RATIO_COLUMNS = 3  # panels a row: five side by side are too narrow to read


def ratio_figure(panels: list[dict], band: float) -> Figure:
    """Curvature / its stability threshold vs step, one panel each ({"title", "curves": [(label, xs, ys)],
    "halves": steps where each run's second half begins}), RATIO_COLUMNS a row; the threshold at 1 and
    a ±band shaded."""
    cols = max(1, min(RATIO_COLUMNS, len(panels)))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.9 * cols, 3.4 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        ax.axhspan(1 - band, 1 + band, color="0.85", zorder=0, label=f"±{band * 100:g} %")
        ax.axhline(1.0, color="k", lw=1, ls="--", label="threshold")
        for half in panel["halves"]:
            ax.axvline(half, color="0.5", lw=0.8, ls=":")  # second half of training: right of this
        for label, xs, ys in panel["curves"]:
            if xs:
                ax.plot(xs, ys, lw=1.2, marker=".", ms=3, label=label)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylim(0, max(2.0, ax.get_ylim()[1]))
        ax.legend(fontsize=7)
    for row in grid:
        row[0].set_ylabel("ratio to the stability threshold")
    return fig


def gd_figure(runs: list[dict], loss_name: str = "cross-entropy", log_loss: bool = False) -> Figure:
    """Cohen et al. 2021 Fig. 1 layout: GD train loss and lambda_max vs step, 2/eta dashed; `runs` =
    [{"label", "loss": (steps, values), "lambda_max": (steps, values), "threshold", "eval_examples"}],
    all trained on the loss `loss_name` (the left panel's axis label), on a log axis with `log_loss`
    (a catapult in the first steps would flatten the rest of a linear one)."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_lam = fig.subplots(1, 2)
    for i, r in enumerate(runs):
        ax_loss.plot(*r["loss"], color=f"C{i}", lw=1, label=r["label"])
        ax_lam.plot(*r["lambda_max"], color=f"C{i}", lw=1.2, marker=".", ms=3, label=r["label"])
        ax_lam.axhline(r["threshold"], color=f"C{i}", ls="--", lw=1)
    n_eval = runs[0]["eval_examples"] if runs else None
    ax_loss.set(
        title=f"full-batch GD: train loss (on {n_eval} of the training examples)", xlabel="step", ylabel=loss_name
    )
    if log_loss:
        ax_loss.set_yscale("log")
    ax_lam.set(title="λ_max of the training loss; dashed: 2/η", xlabel="step", ylabel="λ_max")
    for ax in (ax_loss, ax_lam):
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------- study figures


def _geo(vals):
    v = [x for x in vals if x is not None and math.isfinite(x)]
    return float(np.exp(np.mean(np.log(v)))) if v and len(v) == len(vals) else None


def steps_figure(
    summary: list[dict], ci: dict | None = None, target: float | None = None, b_simple: float | None = None
) -> Figure:
    """summary: answer.steps_summary rows (arm = batch size); ci: bootstrap.residual_fit_ci output (the
    fit, B_crit's interval and the 20 %-overhead batch 0.2·B_crit); b_simple: the equilibrated B_simple."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for row in summary:  # every tuning trial, faint
        ys = [s for s in row["tuning_steps"].values() if s is not None]
        ax.scatter([row["arm"]] * len(ys), ys, s=10, color="0.75", zorder=1)
    pts = [(row["arm"], _geo(row["seed_steps"]), row["seed_steps"]) for row in summary if row["seed_steps"]]
    pts = [(b, s, ss) for b, s, ss in pts if s is not None]
    if pts:
        b, s = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
        lo = np.maximum(s - np.array([min(p[2]) for p in pts]), 0)
        hi = np.maximum(np.array([max(p[2]) for p in pts]) - s, 0)
        ax.errorbar(b, s, yerr=[lo, hi], fmt="o", color="C0", zorder=3, label="best trial (geo. mean of seeds)")
        grid = np.geomspace(b.min(), b.max(), 200)
        if ci and ci["fit"]["identified"]:
            f = ci["fit"]
            ax.plot(grid, f["s_min"] * (1 + f["b_crit"] / grid), color="C1", label=f"fit: B_crit={f['b_crit']:.3g}")
            ax.plot(grid, f["s_min"] * f["b_crit"] / grid, "--", color="0.4", label="perfect scaling (fit)")
    if ci and not ci["fit"]["identified"]:
        ax.text(
            0.02,
            0.02,
            "B_crit not identified: no bend in the measured range",
            transform=ax.transAxes,
            fontsize=8,
            color="C1",
        )
    elif ci:
        bc = ci["b_crit"]
        ax.axvspan(bc["low"], bc["high"], color="C1", alpha=0.12, label="B_crit 95% CI (residual bootstrap)")
        b20 = ci["b_overhead_fit"]["estimate"]
        ax.axvline(b20, color="C2", ls="-.", label=f"20% over perfect scaling: B={b20:.3g}")
    if b_simple:
        ax.axvline(b_simple, color="C3", ls=":", label=f"B_simple at target (equilibrated) ≈ {b_simple:.3g}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target" + (f" (validation acc ≥ {target:g})" if target is not None else ""))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def accuracy_figure(rows: list[dict]) -> Figure:
    """rows: answer.answer_rows with numeric arms (batch sizes)."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for kind, color in (("epochs", "C0"), ("steps", "C1")):
        xs, ys, lo, hi = [], [], [], []
        for r in rows:
            c = r.get(kind)
            if not c or not c.get("best") or c["accuracy"]["mean"] is None:
                continue
            a = c["accuracy"]
            xs.append(r["arm"])
            ys.append(a["mean"])
            lo.append(max(a["mean"] - (a["low"] if a["low"] is not None else a["mean"]), 0.0))
            hi.append(max((a["high"] if a["high"] is not None else a["mean"]) - a["mean"], 0.0))
        if xs:
            budget = next(r[kind]["budget"] for r in rows if r.get(kind))
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=color, capsize=3, label=f"best-tuned, {budget:g} {kind}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("test accuracy (mean, 95% CI over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def arms_figure(rows: list[dict], reference: str | None = None) -> Figure:
    """Best-tuned test accuracy (mean, 95 % CI over seeds) per arm at the epoch budget."""
    rows = [r for r in rows if r.get("epochs") and r["epochs"].get("best")]
    fig = Figure(figsize=(6.4, 0.9 + 0.35 * max(len(rows), 1)))
    ax = fig.add_subplot()
    clipped = False
    for i, r in enumerate(rows):
        a = r["epochs"]["accuracy"]
        # an accuracy lies in [0, 1]: a t interval reaching past it (bimodal seeds) is drawn clipped
        low = min(max(a["low"], 0.0), a["mean"]) if a["low"] is not None else a["mean"]
        high = max(min(a["high"], 1.0), a["mean"]) if a["high"] is not None else a["mean"]
        clipped |= a["low"] is not None and (a["low"] < 0.0 or a["high"] > 1.0)
        ax.errorbar(
            [a["mean"]],
            [i],
            xerr=[[a["mean"] - low], [high - a["mean"]]],
            fmt="o",
            capsize=3,
            color="C1" if r["arm"] == reference else "C0",
        )
        if r["arm"] == reference:
            ax.axvline(a["mean"], color="C1", ls="--", lw=0.8, label=f"reference: {reference}")
    ax.set_yticks(range(len(rows)), [str(r["arm"]) for r in rows], fontsize=7)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("best-tuned test accuracy\n(mean, 95% CI over seeds" + (", clipped to [0, 1])" if clipped else ")"))
    if reference:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def series_figure(
    series: dict,
    reference: tuple[str, dict] | None = None,
    xlabel: str = "batch size B",
    ylabel: str = "best-tuned test accuracy (mean, 95% CI over seeds)",
) -> Figure:
    """Several arms' accuracy (answer-row `accuracy` dicts: mean, low, high) against batch size.

    series: {label: [(batch size, accuracy dict), ...]}; reference: (label, accuracy dict) drawn as a
    horizontal line with its CI band (e.g. the tuned small-batch baseline)."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    if reference and reference[1] and reference[1].get("mean") is not None:
        label, a = reference
        ax.axhline(a["mean"], color="0.3", ls="--", lw=0.9, label=label)
        if a.get("low") is not None:
            ax.axhspan(a["low"], a["high"], color="0.3", alpha=0.1)
    for k, (label, pts) in enumerate(series.items()):
        pts = sorted((x, a) for x, a in pts if a and a.get("mean") is not None)
        if not pts:
            continue
        xs = [x for x, _ in pts]
        ys = [a["mean"] for _, a in pts]
        lo = [max(a["mean"] - (a["low"] if a["low"] is not None else a["mean"]), 0.0) for _, a in pts]
        hi = [max((a["high"] if a["high"] is not None else a["mean"]) - a["mean"], 0.0) for _, a in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=f"C{k}", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _checkpoint_ticks(ax, rows: list[dict]) -> None:
    ax.set_xticks(range(len(rows)), [f"{r['step']:,}\n{r['fraction']:.1%}" for r in rows], fontsize=7)
    ax.set_xlabel("checkpoint: reference step / share of its training")


def _spaced_ticks(lo: float, hi: float, per_axis: int = 10) -> list[float]:
    """RATIO_TICKS inside [lo, hi], 1 always, the others at least 1/per_axis of the log range apart."""
    gap = math.log(hi / lo) / per_axis
    kept = [1.0]
    for t in sorted(RATIO_TICKS, key=lambda t: abs(math.log(t))):
        if lo <= t <= hi and all(abs(math.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def local_critical_batch_figure(rows: list[dict]) -> Figure:
    """rows: experiments/local_critical_batch.checkpoint_analysis per checkpoint. Left: the local
    critical batch (window E, and E/2 faint; a censored value as a triangle pointing where the true
    value lies), the same by Merrill et al.'s fixed-ε rule, and B_simple at each checkpoint. Right:
    each checkpoint's branch losses after E over their targets against B (≤ 1: the branch recovers)."""
    fig, (left, right) = _figure("Local critical batch size by branching, and B_simple", "", "batch size", panels=2)
    marker = {None: "o", "below": "v", "above": "^"}
    for key, label, alpha in (("window", "local critical batch (window E)", 1.0), ("half_window", "window E/2", 0.35)):
        pts = [(i, r[key]) for i, r in enumerate(rows) if r[key] and r[key].get("defined")]
        if pts:
            xs, ys = [i for i, _ in pts], [w["interpolated"] for _, w in pts]
            left.plot(xs, ys, "-", color="C0", alpha=alpha, label=label)
            for i, w in pts:
                left.scatter(i, w["interpolated"], marker=marker[w["censored"]], color="C0", alpha=alpha, zorder=3)
    eps = [(i, r["merrill_eps"]) for i, r in enumerate(rows) if r.get("merrill_eps")]
    if eps:
        left.plot(*zip(*eps), "s--", color="C2", alpha=0.8, label="Merrill et al.'s fixed ε = 0.01 rule (discrete)")
    for key, label, style in (("b_simple", "B_simple at the checkpoint", "D-"), ("b_simple_reference_ema", None, "x")):
        pts = [(i, r[key]) for i, r in enumerate(rows) if r.get(key)]
        if pts:
            left.plot(*zip(*pts), style, color="C3", label=label or "reference's in-training EMA (trajectory avg.)")
    sizes = sorted({b for r in rows if r["window"] for b in r["window"]["batch_sizes"]})
    if sizes:
        left.axhspan(sizes[0] / 4, sizes[0], color="0.85", zorder=0, label="outside the branched batch sizes")
        left.axhspan(sizes[-1], sizes[-1] * 4, color="0.85", zorder=0)
    left.set_yscale("log", base=2)
    lo, hi = left.get_ylim()
    ticks = [2**k for k in range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1)]
    left.set_yticks(ticks, [whole(t) for t in ticks], fontsize=7)
    left.minorticks_off()
    _checkpoint_ticks(left, rows)
    legend_outside(left, below=True)
    st = styles([r["step"] for r in rows])
    for r in rows:
        w = r["window"]
        if not w:
            continue
        pts = [(b, w["loss"][b] / w["target"][b]) for b in w["batch_sizes"] if math.isfinite(w["loss"][b])]
        if pts:
            right.plot(*zip(*pts), **st[r["step"]], label=f"step {r['step']:,}")
    right.axhline(1.0, color="0.3", ls="--", lw=0.9)
    if sizes:
        batch_axis(right, sizes)
    right.set_yscale("log")  # ratios from 0.2 to 4 early, within a few % of 1 late
    ticks = _spaced_ticks(*right.get_ylim())
    right.set_yticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
    right.minorticks_off()
    right.set_xlabel("branch batch size B")
    right.set_ylabel("val loss after E / target (≤ 1 recovers)")
    legend_outside(right, below=True)
    return fig
