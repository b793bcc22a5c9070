"""Figures for sweep reports, on `matplotlib.figure.Figure` directly (no pyplot, no global backend).

Each function takes plain Python data (aggregated groups, analysis dicts) and returns a Figure.
What every figure does the same way, because a reader compares them side by side:
- one style per arm at any number of arms (colour × line style × marker; `styles`), and every
  point has a marker, so a one-epoch curve is still visible;
- the legend sits outside the axes (never on the data), one entry per arm, not per seed;
- batch-size axes are log2 with a tick labelled at every batch size used (6000 too), in the
  reports' number format (lbbench/numfmt.py);
- error bars are ±1 sample s.d. over seeds, clipped to the metric's valid range, drawn only when
  n ≥ 3; with fewer seeds each seed is drawn as a dot; the title says which.
"""

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lbbench.report.numfmt import num, whole

REGION_COLOURS = {"perfect scaling": "#cfe8cf", "diminishing returns": "#f6e7c1",
                  "maximal data parallelism": "#f4cccc"}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
ERROR_NOTE = "error bars ±1 s.d. over seeds (n ≥ 3); dots = single seeds (n < 3)"
MIN_SEEDS_FOR_BARS = 3


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
    return {lab: {"color": colours[i], "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)] if n > 10 else "-",
                  "marker": MARKERS[i % len(MARKERS)]} for i, lab in enumerate(labels)}


def _figure(title: str, xlabel: str, ylabel: str, size=(7.0, 4.0), panels: int = 1):
    fig = Figure(figsize=(size[0] + 2.6 * (panels - 1), size[1]), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.suptitle(title, fontsize=9)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    return fig, axes


def legend_outside(ax, below: bool = False) -> None:
    """The axes' legend outside the plot area (right, or below for side-by-side panels), 20 a column."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if below:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18),
                  ncol=2, frameon=False)
    else:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0, ncol=1 + (len(handles) - 1) // 20, frameon=False)


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


def clipped_errors(means, sds, valid):
    """Asymmetric ±sd error bars cut at the valid range (lo, hi), so no bar leaves it."""
    lo, hi = valid
    lower = [min(s, m - lo) if lo is not None else s for m, s in zip(means, sds)]
    upper = [min(s, hi - m) if hi is not None else s for m, s in zip(means, sds)]
    return [max(v, 0.0) for v in lower], [max(v, 0.0) for v in upper]


NEVER_LEARNED = "never learned (left out of the mean)"


def _draw_never_learned(ax, arms: dict, metric: str, st: dict) -> None:
    """Runs at chance drawn as crosses in their arm's colour, so a missing mean is explained."""
    drawn = False
    for label, groups in arms.items():
        for g in groups:
            values = (g.get("never_learned") or {}).get(metric) or []
            if values:
                ax.scatter([g["batch_size"]] * len(values), values, marker="x", s=30, color=st[label]["color"],
                           zorder=3)
                drawn = True
    if drawn:
        ax.scatter([], [], marker="x", color="grey", label=NEVER_LEARNED)


def _draw_arm(ax, points, style, label, valid):
    """points: [(batch, stat)] with stat {"mean", "std", "n", "values"}; line through the means."""
    points = sorted((b, s) for b, s in points if s and s.get("mean") is not None)
    if not points:
        return
    xs = [b for b, _ in points]
    means = [s["mean"] for _, s in points]
    ax.plot(xs, means, label=label, lw=1.3, ms=5, **style)
    bars = [(b, s) for b, s in points if s["n"] >= MIN_SEEDS_FOR_BARS]
    if bars:
        lower, upper = clipped_errors([s["mean"] for _, s in bars], [s["std"] for _, s in bars], valid)
        ax.errorbar([b for b, _ in bars], [s["mean"] for _, s in bars], yerr=[lower, upper], fmt="none",
                    ecolor=style["color"], capsize=3, lw=1)
    for b, s in points:
        if 1 < s["n"] < MIN_SEEDS_FOR_BARS:
            ax.scatter([b] * len(s["values"]), s["values"], s=12, color=style["color"], alpha=0.6, zorder=3)


def vs_batch_figure(arms: dict, metric: str, ylabel: str, title: str = "", valid=(None, None)) -> Figure:
    """`metric` (mean over seeds) vs batch size, one styled line per arm, legend outside.

    `arms` maps an arm label to its aggregated groups (dicts with "batch_size" and
    "<metric>" = {"mean", "std", "n", "values"}).
    """
    fig, (ax,) = _figure(f"{title or ylabel + ' vs batch size'}\n{ERROR_NOTE}", "batch size (log2)", ylabel)
    st = styles(arms)
    for label, groups in arms.items():
        _draw_arm(ax, [(g["batch_size"], g.get(metric)) for g in groups], st[label], label or "all", valid)
    _draw_never_learned(ax, arms, metric, st)
    batch_axis(ax, [g["batch_size"] for gs in arms.values() for g in gs])
    legend_outside(ax)
    return fig


def vs_batch_panels(arms: dict, metrics: list, title: str, valid=(0.0, None)) -> Figure:
    """Several metrics (e.g. each ε-sharpness) side by side, one panel each: [(metric, ylabel)]."""
    fig, axes = _figure(f"{title}\n{ERROR_NOTE}", "batch size (log2)", "", panels=len(metrics))
    st = styles(arms)
    for ax, (metric, ylabel) in zip(axes, metrics):
        ax.set_ylabel(ylabel)
        for label, groups in arms.items():
            _draw_arm(ax, [(g["batch_size"], g.get(metric)) for g in groups], st[label], label or "all", valid)
        _draw_never_learned(ax, arms, metric, st)
        batch_axis(ax, [g["batch_size"] for gs in arms.values() for g in gs])
    legend_outside(axes[-1])
    return fig


def bars_figure(labels: list[str], groups: list[dict], metric: str, ylabel: str, title: str = "",
                valid=(None, None)) -> Figure:
    """Metric per group as bars with clipped ±1 s.d. bars (n ≥ 3) or seed dots (used when batch size
    does not vary)."""
    fig, (ax,) = _figure(f"{title or ylabel}\n{ERROR_NOTE}", "", ylabel,
                         size=(max(4.0, 0.9 * len(labels) + 2), 4.0))
    st = styles(labels)
    for i, (label, g) in enumerate(zip(labels, groups)):
        s = g.get(metric) or {}
        if s.get("mean") is None:
            continue
        ax.bar(i, s["mean"], color=st[label]["color"], alpha=0.85)
        if s["n"] >= MIN_SEEDS_FOR_BARS:
            lower, upper = clipped_errors([s["mean"]], [s["std"]], valid)
            ax.errorbar([i], [s["mean"]], yerr=[lower, upper], fmt="none", ecolor="black", capsize=3)
        elif s["n"] > 1:
            ax.scatter([i] * len(s["values"]), s["values"], s=12, color="black", zorder=3)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    return fig


def curves_figure(runs: list[tuple[str, dict]], key: str, ylabel: str, title: str = "") -> Figure:
    """Per-epoch `key` of each run; `runs` is [(arm label, result)]: seeds of one arm share a style
    and one legend entry."""
    fig, (ax,) = _figure(title or f"{ylabel} per epoch", "epoch", ylabel)
    st = styles(label for label, _ in runs)
    seen = set()
    for label, r in runs:
        h = r.get("history") or {}
        pts = [(e, v) for e, v in zip(h.get("epoch", []), h.get(key, [])) if v is not None]
        if pts:
            ax.plot(*zip(*pts), lw=1, ms=3, alpha=0.85, label=None if label in seen else label, **st[label])
            seen.add(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(ax)
    return fig


def interpolation_figure(curve: dict) -> Figure:
    """Keskar et al. 2017 Fig. 3: loss (left axis, log) and accuracy (right) along θ(α)."""
    fig, (ax,) = _figure(f"1-D interpolation between the small-batch (α=0) and large-batch (α=1) solutions: "
                         f"{curve.get('model', '')}", "α", "cross-entropy loss")
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


def steps_to_target_figure(analysis: dict) -> Figure:
    """Shallue et al. 2019 Fig. 1: best steps-to-target vs batch size (log-log), with the perfect-
    scaling line, the scaling regions shaded and the measured noise scale B_simple (McCandlish
    et al. 2018) as a vertical line: the batch size beyond which returns should diminish."""
    fig, (ax,) = _figure(f"Steps to reach test accuracy {analysis['target']:g}, best learning rate per batch size",
                         "batch size (log2)", "steps to target")
    best = [b for b in analysis["best"] if b["steps"] is not None]
    if best:
        xs, ys = [b["batch_size"] for b in best], [b["steps"] for b in best]
        ax.plot(xs, ys, "o-", label="best over learning rates")
        ax.plot(xs, [ys[0] * xs[0] / x for x in xs], "k--", lw=0.8, label="ideal: steps ∝ 1/B")
    for seg in analysis.get("regions", []):
        ax.axvspan(seg["from"], seg["to"], color=REGION_COLOURS.get(seg["region"], "#eeeeee"), alpha=0.6,
                   lw=0)
    for name, colour in REGION_COLOURS.items():
        if any(s["region"] == name for s in analysis.get("regions", [])):
            ax.plot([], [], color=colour, lw=6, label=name)
    b = analysis.get("noise_scale_b_simple")
    if b:
        ax.axvline(b, color="purple", ls="-.", label=f"B_simple ≈ {num(b)}")
    ax.set_yscale("log")
    batch_axis(ax, [x["batch_size"] for x in analysis["best"]])
    legend_outside(ax)
    return fig


def density_panels(by_model: dict) -> Figure:
    """Hessian spectral densities (SLQ, Ghorbani et al. 2019), one panel per model (their eigenvalue
    scales differ), one styled line per arm: `by_model` = {model: {label: density}}."""
    models = sorted(by_model)
    fig, axes = _figure("Hessian spectral density at the end of training (SLQ), one panel per model",
                        "eigenvalue", "density (log)", panels=len(models))
    for ax, model in zip(axes, models):
        ax.set_title(model, fontsize=8)
        st = styles(by_model[model])
        for label, d in by_model[model].items():
            s = {k: v for k, v in st[label].items() if k != "marker"}
            ax.semilogy(d["grid"], [max(v, 1e-12) for v in d["values"]], lw=1, label=label, **s)
        legend_outside(ax, below=len(models) > 1)
    return fig
