"""The studies' own figures (lbbench/experiments): steps to target against B with the fitted curve,
accuracy against B, arms against a reference, learning-rate series and the local critical batch size
over training. The style they share with every report figure is lbbench.report.figures'."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from lbbench.report import figures
from lbbench.report.numfmt import whole

RATIO_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)  # log ratio axes


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
    fig, (left, right) = figures.new_figure(
        "Local critical batch size by branching, and B_simple", "", "batch size", panels=2
    )
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
    figures.legend_outside(left, below=True)
    st = figures.styles([r["step"] for r in rows])
    for r in rows:
        w = r["window"]
        if not w:
            continue
        pts = [(b, w["loss"][b] / w["target"][b]) for b in w["batch_sizes"] if math.isfinite(w["loss"][b])]
        if pts:
            right.plot(*zip(*pts), **st[r["step"]], label=f"step {r['step']:,}")
    right.axhline(1.0, color="0.3", ls="--", lw=0.9)
    if sizes:
        figures.batch_axis(right, sizes)
    right.set_yscale("log")  # ratios from 0.2 to 4 early, within a few % of 1 late
    ticks = _spaced_ticks(*right.get_ylim())
    right.set_yticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
    right.minorticks_off()
    right.set_xlabel("branch batch size B")
    right.set_ylabel("val loss after E / target (≤ 1 recovers)")
    figures.legend_outside(right, below=True)
    return fig
