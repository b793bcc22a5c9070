"""The critical-batch study's write-up (lbbench/experiments/critical_batch.py, and critical_batch_bn):
its sentences, each computed from the summary, and answer.md's verdict and steps-to-target tables."""

from __future__ import annotations

from lbbench.study import compare, critical_batch


def conclusions(summary: dict) -> list[str]:
    """The study's conclusions as sentences, each computed from a verdict or fit in `summary` (and only
    from there: tests/experiments check the committed prose against the committed analysis.json)."""
    out = []
    for kind, label in (("epochs", "epochs"), ("steps", "steps")):
        d = (summary.get("degradation") or {}).get(kind)
        if not d:
            continue
        budget = summary["budgets"][kind]
        out.append(
            compare.verdict_sentence(
                f"At an equal budget of {budget} {label}, test accuracy of B against B = {d['reference']}",
                d["comparisons"],
            )
        )
    for t in summary.get("targets", []):
        if not t["b_crit_identified"]:
            out.append(f"Validation target {t['target']:g}: B_crit is not identified in the measured range.")
            continue
        lo, hi = t["b_crit_ci_residual"]
        cuts = critical_batch.fitted_regimes(t["b_crit"])
        perfect, maximal = critical_batch.PERFECT_SLOPE, critical_batch.MAXIMAL_SLOPE
        out.append(
            f"Validation target {t['target']:g}: B_crit = {t['b_crit']:,.0f} [{lo:,.0f}, {hi:,.0f}] (residual "
            f"bootstrap); on the fitted curve each doubling of B cuts the steps by at least {_cut(perfect):.0%} up "
            f"to B ≈ {cuts['perfect_below']:,.0f} (perfect scaling) and by at most {_cut(maximal):.0%} beyond "
            f"B ≈ {cuts['maximal_above']:,.0f} (maximal data parallelism); the 20 %-overhead batch is "
            f"{t['b_overhead_20']:,.0f}."
        )
    return out


def _cut(slope: float) -> float:
    """The fraction of steps one doubling of B saves at a local slope −dlog S/dlog B = slope."""
    return 1 - 2**-slope


def degradation_markdown(judged: dict) -> str:
    """`degradation`'s families as tables (difference_markdown judges each again, with the same result)."""
    parts = []
    for kind, label in (("epochs", "an equal number of epochs"), ("steps", "an equal number of steps")):
        d = judged.get(kind)
        if not d:
            continue
        items = [(f"B = {b} − B = {d['reference']}", v) for b, v in sorted(d["comparisons"].items())]
        parts.append(compare.difference_markdown(f"Does accuracy degrade at {label}?", items))
    return "\n".join(parts)


def critical_batch_markdown(t: dict) -> str:
    lines = [
        f"### Steps to validation accuracy ≥ {t['target']:g} and the critical batch size",
        "",
        "| B | steps, winner (seeds) | quantisation | share of run | tuning trials reaching target "
        "| B_simple at target | regime (fit) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in t["steps"]:
        reach = sum(s is not None for s in r["tuning_steps"].values())
        c = t["crossings"].get(r["arm"]) or {}
        bs, seeds = _b_simple_cell(c), ", ".join(_fmt(s) for s in r["seed_steps"])
        lines.append(
            f"| {r['arm']} | {_fmt(critical_batch.geomean(r['seed_steps']))} ({seeds}) "
            f"| {_pct(c.get('quantisation'))} | {_pct(c.get('fraction_of_run'))} | {reach}/{len(r['tuning_steps'])} "
            f"| {bs} | {t['regimes']['by_batch'].get(r['arm'], '—')} |"
        )
    lines.append("")
    for label, ci in (
        ("residual bootstrap (headline: scatter around the fit, tuning granularity included)", t["fit_residual"]),
        ("over tuning trials (best of resampled K)", t["fit_trials"]),
        ("over seeds of the winners only (seed noise alone: too narrow)", t["fit_seeds"]),
    ):
        if not ci:
            lines.append(f"- B_crit, {label}: too few batch sizes reached the target.")
            continue
        f = ci["fit"]
        lines.append(
            f"- B_crit, {label}: {_ci(ci['b_crit'])}"
            f"{'' if f['identified'] else ' (NOT identified: no bend in the measured range)'}; "
            f"S_min = {f['s_min']:.4g}."
        )
    fit = t["fit_residual"]
    if fit and fit["fit"]["identified"]:
        cuts = t["regimes"]["fitted"]
        lines.append(
            f"- 20 %-overhead batch (Zhang et al. 2024, relative to the fitted perfect-scaling asymptote, "
            f"= 0.2·B_crit): {_ci(fit['b_overhead_fit'])}. Regimes from the fit: perfect scaling below "
            f"B ≈ {cuts['perfect_below']:.4g}, maximal data parallelism above B ≈ {cuts['maximal_above']:.4g}."
        )
    slopes = ", ".join(f"{r['from']}→{r['to']}: {r['slope']:.2f}" for r in t["regimes"]["local_slopes"])
    if slopes:
        lines.append(f"- Measured local slopes −Δlog S/Δlog B (data; 1 = perfect scaling): {slopes}.")
    if t["b_simple_equilibrated"]:
        lines.append(
            f"- Gradient noise scale B_simple at the crossing, where its EMA had equilibrated (≥ "
            f"{critical_batch.EQUILIBRATED_STEPS} steps in): {t['b_simple_equilibrated']:.4g} "
            "(McCandlish et al.'s proxy for "
            "B_crit; Merrill et al. 2025 question whether it predicts the measured one). The end-of-run "
            "`noise_scale.b_simple` is a trajectory average, not the value at any one point."
        )
    return "\n".join(lines) + "\n"


def _b_simple_cell(c: dict) -> str:
    """B_simple at the crossing, or why there is none: the re-runs measured no noise scale (a BatchNorm
    workload: rerun_extra), or measured it without an estimate there; "not equilibrated" where it is too early."""
    if not c:
        return "—"
    if c.get("b_simple") is None:
        return "— (noise scale off in the re-runs)" if not c.get("noise_scale_measured", True) else "— (no estimate)"
    return _fmt(c["b_simple"]) + ("" if c.get("equilibrated") else " (not equilibrated)")


def _fmt(x):
    return "—" if x is None else f"{x:.4g}"


def _pct(x):
    return "—" if x is None else f"{x:.1%}"


def _ci(d):
    high = "unbounded" if d.get("unbounded") else _fmt(d["high"])
    return f"{_fmt(d['estimate'])} [{_fmt(d['low'])}, {high}]"
