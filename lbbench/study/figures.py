"""Figures for the study (matplotlib `Figure` API, no pyplot state; see lbbench/plots.py).

`steps_figure`: steps to target vs batch size on log-log axes, as in Shallue et al. 2019 Fig. 1,
with the perfect-scaling line through the smallest batch, the fitted S(B) = S_min(1 + B_crit/B)
(McCandlish et al. 2018 Eq. 2.11), B_crit with its bootstrap CI, Zhang et al.'s 20 %-overhead
batch, and the gradient noise scale B_simple (McCandlish App. A) read where the target is reached —
the proxy whose agreement with the measured critical batch Merrill et al. 2025 question.
`accuracy_figure`: best-tuned test accuracy with its CI vs batch size, at both budgets.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure


def _geo(vals):
    v = [x for x in vals if x is not None and math.isfinite(x)]
    return float(np.exp(np.mean(np.log(v)))) if v and len(v) == len(vals) else None


def steps_figure(summary: list[dict], fit: dict | None = None, ci: dict | None = None,
                 target: float | None = None) -> Figure:
    """summary: answer.steps_summary rows (arm = batch size); fit/ci: bootstrap.fit_ci output."""
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
        ax.plot(grid, s[0] * b[0] / grid, "--", color="0.4", label="perfect scaling")
        if fit and fit["fit"]["identified"]:
            f = fit["fit"]
            ax.plot(grid, f["s_min"] * (1 + f["b_crit"] / grid), color="C1",
                    label=f"fit: S_min={f['s_min']:.3g}, B_crit={f['b_crit']:.3g}")
    if ci and not ci["fit"]["identified"]:
        ax.text(0.02, 0.02, "B_crit not identified: no bend in the measured range", transform=ax.transAxes,
                fontsize=8, color="C1")
    elif ci:
        bc = ci["b_crit"]
        if bc["low"] is not None and bc["high"] is not None:
            ax.axvspan(bc["low"], bc["high"], color="C1", alpha=0.12, label="B_crit 95% CI")
        ax.axvline(bc["estimate"], color="C1", lw=0.8)
        b20 = ci["b_overhead_measured"]["estimate"]
        if b20:
            ax.axvline(b20, color="C2", ls="-.", label=f"20% overhead: B={b20:.3g}")
    bs = [row["b_simple_at_target"] for row in summary if row.get("b_simple_at_target")]
    if bs:
        ax.axvline(float(np.mean(bs)), color="C3", ls=":", label=f"B_simple at target ≈ {np.mean(bs):.3g}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target" + (f" (test acc ≥ {target:g})" if target is not None else ""))
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
            xs.append(r["arm"]); ys.append(a["mean"])
            lo.append(max(a["mean"] - (a["low"] if a["low"] is not None else a["mean"]), 0.0))
            hi.append(max((a["high"] if a["high"] is not None else a["mean"]) - a["mean"], 0.0))
        if xs:
            budget = next(r[kind]["budget"] for r in rows if r.get(kind))
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=color, capsize=3,
                        label=f"best-tuned, {budget:g} {kind}")
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
        ax.errorbar([a["mean"]], [i], xerr=[[a["mean"] - low], [high - a["mean"]]], fmt="o", capsize=3,
                    color="C1" if r["arm"] == reference else "C0")
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def series_figure(series: dict, reference: tuple[str, dict] | None = None, xlabel: str = "batch size B",
                  ylabel: str = "best-tuned test accuracy (mean, 95% CI over seeds)") -> Figure:
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
