"""Every figure lbbench draws, on `matplotlib.figure.Figure` directly (no pyplot, no global backend).

Each function takes plain Python data (aggregated groups, answer rows, analysis dicts) and returns a
Figure; `save` writes one. This module holds the shared style and the sweep reports' figures
(report/write.py); the studies' own figures are in study_figures.py and the curvature ones in
curvature_figures.py, drawn with the helpers here. What every figure does the same way, because a reader
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


def new_figure(title: str, xlabel: str, ylabel: str, size=(WIDTH, HEIGHT), panels: int = 1):
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
    fig, axes = new_figure(f"{title}\n{CI_NOTE}", "batch size (log2)", "", panels=len(panels))
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
    fig, (ax,) = new_figure(f"{title or ylabel}\n{CI_NOTE}", "", ylabel)
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
    fig, axes = new_figure(f"{title}\nmean over seeds; band: 95% t interval (n ≥ 3)", "", ylabel, panels=2)
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


# ---------------------------------------------------------------------------- edge of stability


# ---------------------------------------------------------------------------- study figures


def save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path
