"""Every figure lbbench draws, on `matplotlib.figure.Figure` directly (no pyplot, no global backend).

Each function takes plain Python data (aggregated groups, answer rows, analysis dicts) and returns a
Figure; `save` writes one. Sweep reports (report/write.py) and the studies' analyses
(lbbench/experiments) draw with these. What every figure does the same way, because a reader
compares them side by side:
- one style per arm at any number of arms (colour × line style × marker; `styles`), and every
  point has a marker, so a one-epoch curve is still visible;
- the legend sits outside the axes (never on the data), one entry per arm, not per seed;
- batch-size axes are log2 with a tick labelled at every batch size used (6000 too), in the
  reports' number format (lbbench/report/numfmt.py);
- error bars are ±1 sample s.d. over seeds, clipped to the metric's valid range, drawn only when
  n ≥ 3; with fewer seeds each seed is drawn as a dot; the title says which. Study figures draw
  95 % CIs over seeds, clipped to [0, 1] for accuracies.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lbbench.report.numfmt import whole

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
    return {
        lab: {
            "color": colours[i],
            "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)] if n > 10 else "-",
            "marker": MARKERS[i % len(MARKERS)],
        }
        for i, lab in enumerate(labels)
    }


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
                ax.scatter(
                    [g["batch_size"]] * len(values), values, marker="x", s=30, color=st[label]["color"], zorder=3
                )
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
        ax.errorbar(
            [b for b, _ in bars],
            [s["mean"] for _, s in bars],
            yerr=[lower, upper],
            fmt="none",
            ecolor=style["color"],
            capsize=3,
            lw=1,
        )
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


def bars_figure(
    labels: list[str], groups: list[dict], metric: str, ylabel: str, title: str = "", valid=(None, None)
) -> Figure:
    """Metric per group as bars with clipped ±1 s.d. bars (n ≥ 3) or seed dots (used when batch size
    does not vary)."""
    fig, (ax,) = _figure(f"{title or ylabel}\n{ERROR_NOTE}", "", ylabel, size=(max(4.0, 0.9 * len(labels) + 2), 4.0))
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
    fig, (ax,) = _figure(
        f"1-D interpolation between the small-batch (α=0) and large-batch (α=1) solutions: {curve.get('model', '')}",
        "α",
        "cross-entropy loss",
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


def ratio_figure(panels: list[dict], band: float) -> Figure:
    """Curvature / its stability threshold vs step, one panel each ({"title", "curves": [(label, xs, ys)],
    "halves": steps where each run's second half begins}); the threshold at 1 and a ±band shaded."""
    fig = Figure(figsize=(3.5 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
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
    axes[0].set_ylabel("ratio to the stability threshold")
    return fig


def gd_figure(runs: list[dict]) -> Figure:
    """Cohen et al. 2021 Fig. 1 layout: GD train loss and lambda_max vs step, 2/eta dashed; `runs` =
    [{"label", "loss": (steps, values), "lambda_max": (steps, values), "threshold", "eval_examples"}]."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_lam = fig.subplots(1, 2)
    for i, r in enumerate(runs):
        ax_loss.plot(*r["loss"], color=f"C{i}", lw=1, label=r["label"])
        ax_lam.plot(*r["lambda_max"], color=f"C{i}", lw=1.2, marker=".", ms=3, label=r["label"])
        ax_lam.axhline(r["threshold"], color=f"C{i}", ls="--", lw=1)
    n_eval = runs[0]["eval_examples"] if runs else None
    ax_loss.set(
        title=f"full-batch GD: train loss (on {n_eval} of the training examples)", xlabel="step", ylabel="cross-entropy"
    )
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
