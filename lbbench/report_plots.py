"""Figures for sweep reports, on `matplotlib.figure.Figure` directly (no pyplot, no global backend).

Each function takes plain Python data (aggregated groups, analysis dicts) and returns a Figure, so
the same figure is saved as PNG and sent to TensorBoard (tensorboardX `add_figure`).
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure

REGION_COLOURS = {"perfect scaling": "#cfe8cf", "diminishing returns": "#f6e7c1",
                  "maximal data parallelism": "#f4cccc"}


def _figure(title: str, xlabel: str, ylabel: str, size=(5.5, 3.6)):
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _finish(fig, ax, legend: bool = True) -> Figure:
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def vs_batch_figure(arms: dict, metric: str, ylabel: str) -> Figure:
    """Metric (mean ± std over seeds) vs batch size on a log2 axis, one line per arm.

    `arms` maps an arm label to a list of aggregated groups (dicts with "batch_size" and
    "<metric>" = {"mean", "std", "n"}).
    """
    fig, ax = _figure(f"{ylabel} vs batch size", "batch size", ylabel)
    for label, groups in arms.items():
        pts = sorted((g["batch_size"], g[metric]["mean"], g[metric]["std"]) for g in groups
                     if g.get(metric) and g[metric]["mean"] is not None)
        if pts:
            xs, ys, es = zip(*pts)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label or "all")
    ax.set_xscale("log", base=2)
    return _finish(fig, ax)


def bars_figure(labels: list[str], groups: list[dict], metric: str, ylabel: str) -> Figure:
    """Metric per group as bars with std error bars (used when batch size does not vary)."""
    fig, ax = _figure(ylabel, "", ylabel, size=(max(4.0, 1.1 * len(labels) + 2), 3.6))
    means = [g[metric]["mean"] if g.get(metric) and g[metric]["mean"] is not None else math.nan for g in groups]
    stds = [g[metric]["std"] if g.get(metric) else 0.0 for g in groups]
    ax.bar(range(len(labels)), means, yerr=stds, capsize=3, color="#5b8bd0")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    return _finish(fig, ax, legend=False)


def curves_figure(runs: list[dict], key: str, ylabel: str) -> Figure:
    """Per-epoch `key` of each run (history), labelled by run name."""
    fig, ax = _figure(f"{ylabel} per epoch", "epoch", ylabel)
    for r in runs:
        h = r.get("history") or {}
        pts = [(e, v) for e, v in zip(h.get("epoch", []), h.get(key, [])) if v is not None]
        if pts:
            ax.plot(*zip(*pts), lw=1, label=r["config"]["run_name"])
    if len(runs) > 12:
        return _finish(fig, ax, legend=False)
    return _finish(fig, ax)


def interpolation_figure(curve: dict) -> Figure:
    """Keskar et al. 2017 Fig. 3: loss (left axis, log) and accuracy (right) along θ(α)."""
    fig, ax = _figure(f"1-D interpolation SB (α=0) → LB (α=1): {curve.get('model', '')}", "α",
                      "cross-entropy loss")
    a = curve["alphas"]
    ax.semilogy(a, curve["train_loss"], "b-", label="train loss")
    ax.semilogy(a, curve["test_loss"], "b--", label="test loss")
    ax2 = ax.twinx()
    ax2.plot(a, curve["train_accuracy"], "r-", label="train acc")
    ax2.plot(a, curve["test_accuracy"], "r--", label="test acc")
    ax2.set_ylabel("accuracy")
    for x in (0.0, 1.0):
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center")
    fig.tight_layout()
    return fig


def steps_to_target_figure(analysis: dict) -> Figure:
    """Shallue et al. 2019 Fig. 1: best steps-to-target vs batch size (log-log), with the perfect-
    scaling line, the scaling regions shaded and the measured noise scale B_simple (McCandlish
    et al. 2018) as a vertical line: the batch size beyond which returns should diminish."""
    fig, ax = _figure(f"steps to test accuracy {analysis['target']:g}", "batch size", "steps to target")
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
        ax.axvline(b, color="purple", ls="-.", label=f"B_simple ≈ {b:.0f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return _finish(fig, ax)


def density_overlay_figure(densities: dict) -> Figure:
    """Hessian spectral densities (SLQ, Ghorbani et al. 2019) of several runs, log density."""
    fig, ax = _figure("Hessian spectral density", "eigenvalue", "density (log)")
    for label, d in densities.items():
        ax.semilogy(d["grid"], [max(v, 1e-12) for v in d["values"]], lw=1, label=label)
    return _finish(fig, ax)
