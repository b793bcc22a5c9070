"""The local critical batch study's write-up (lbbench/experiments/local_critical_batch.py): its
sentences, each computed from the summary, and answer.md's tables."""

from __future__ import annotations

import math

from lbbench.study import compare
from lbbench.study import local_critical_batch as lcb

RULES = {
    "examples": "a factor 2 in examples (this study's tolerance)",
    "merrill_eps": "Merrill et al.'s fixed ε = 0.01 in validation loss",
}


def _bound(value, censored) -> str:
    if value is None:
        return "—"
    return {"below": "≤ ", "above": "≥ "}.get(censored, "") + f"{value:,.0f}"


def conclusions(summary: dict) -> list[str]:
    """The study's sentences, each computed from `summary` (tests check the committed prose against it)."""
    points = "; ".join(
        f"{c['fraction']:.1%}: {_bound(c['local_critical_batch'], c['censored'])} "
        f"(ε rule {_fmt(c['merrill_eps'])}) vs {_fmt(c['b_simple'])}"
        for c in summary["checkpoints"]
    )
    out = [
        f"Local critical batch size (branches of {summary['window_examples']:,} examples, a factor 2 in examples "
        f"as the tolerance; Merrill et al.'s fixed ε = 0.01 rule in brackets) vs B_simple at each checkpoint "
        f"(share of the reference run): {points}."
    ]
    for rule, label in RULES.items():
        out += _rule_sentences(summary["rules"][rule], label, summary["smallest_batch"])
    w = summary.get("half_window_ratio")
    if w:
        out.append(
            f"Doubling the window (E/2 → E) multiplies the uncensored estimates by {w['low']:.2g}–{w['high']:.2g} "
            f"(median {w['median']:.2g}, {w['n']} checkpoints): 1 = a property of the checkpoint, 2 = set by the "
            "window."
        )
    return out


def _rule_sentences(r: dict, label: str, b_min: int) -> list[str]:
    t, shape = r["tracking"], r["shape"]
    if t["verdict"] == "too few points":
        out = [f"With {label}: too few checkpoints ({t['n']}) to judge whether B_simple tracks it."]
    else:
        rho = "undefined" if t["rho"] is None else f"{t['rho']:.2f}"
        out = [
            f"With {label}, B_simple {t['verdict']} the local critical batch size (rule: Spearman ρ ≥ "
            f"{lcb.RHO_MIN:g} and the ratio within a factor {lcb.RATIO_SPAN:g}): ρ = {rho} over {t['n']} checkpoints, "
            f"local / B_simple from {t['ratio_low']:.2g} to {t['ratio_high']:.2g}."
        ]
    if shape["reproduced"] is not None:
        keys = ("near_zero_at_init", "rising", "plateau")
        parts = ", ".join(f"{k.replace('_', ' ')}: {'yes' if shape[k] else 'no'}" for k in keys)
        out.append(
            f"With {label}, Merrill et al.'s shape (near 0 at initialisation — at most {lcb.NEAR_ZERO:g} × B = "
            f"{b_min} —, rising ≥ {lcb.RISE:g}×, then a plateau within ×{lcb.PLATEAU:g}) "
            f"{'reproduced' if shape['reproduced'] else 'did not reproduce'} ({parts})."
        )
    return out


def answer_markdown(summary: dict, rows: list[dict], p: dict, window: int, ref_batch: int) -> str:
    """answer.md: the conclusions, the per-checkpoint table, the branch matrix and the rate-edge note
    (`p`: the study's plan; `window`: E in examples)."""
    lines = [
        compare.conclusions_markdown(summary["conclusions"]),
        "### The local critical batch size over training",
        "",
        f"Reference: B = {ref_batch}, momentum SGD, constant rate, {p['ref_epochs']} epochs of {p['subset']:,} "
        f"examples. Branches from each checkpoint at B = {', '.join(map(str, p['batches']))}, each for "
        f"E = {window:,} examples at the √-scaled rate × {', '.join(f'{m:g}' for m in p['multipliers'])}, "
        "best of the grid on validation loss. A branch at B *recovers* if its validation loss after E examples is "
        "at most what the best smaller batch reached after E/2 (study/local_critical_batch.py); the local critical "
        "batch is the largest B that recovers, interpolated in log2 B (≤ : no batch above the smallest recovered, "
        "an upper bound; ≥ : every batch did, a lower bound). B_simple: the gradient noise scale at the "
        "checkpoint's parameters, from "
        f"{p['noise_epochs'] * (p['subset'] // p['noise_batch'])} steps of {p['noise_groups']} sub-batches at a "
        "frozen rate.",
        "",
        "| step | share of training | ref. val loss | local critical batch | discrete | window E/2 "
        "| Merrill ε = 0.01 | B_simple | ratio | ref. in-training B_simple (EMA) "
        "| smallest B's 2nd-half progress (log) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r, c in zip(rows, summary["checkpoints"]):
        w = r["window"] or {}
        value, bs = c["local_critical_batch"], c["b_simple"]
        ratio = f"{value / bs:.2g}" if value and bs else "—"
        lines.append(
            f"| {r['step']:,} | {r['fraction']:.1%} | {_fmt(r['reference_val_loss'])} "
            f"| {_bound(value, c['censored'])} | {_fmt(c['discrete'])}{'' if w.get('contiguous', True) else ' (gaps)'} "
            f"| {_bound(c['half_window'], c['half_window_censored'])} | {_fmt(c['merrill_eps'])} | {_fmt(bs)} "
            f"| {ratio} "
            f"| {_fmt(r['b_simple_reference_ema'])} | {_fmt(w.get('reference_progress'))} |"
        )
    lines += ["", *branch_matrix(rows, p["batches"]), "", edge_note(rows, p["multipliers"])]
    return "\n".join(lines) + "\n"


def edge_note(rows: list[dict], multipliers) -> str:
    """How often the winning rate sat at an edge of the grid (a better rate may lie beyond it): at the
    top, a branch that needed a larger rate is under-tuned, which biases its B's verdict towards ✗."""
    cells = [(r["step"], b, m) for r in rows for b, m in r["winning_multiplier"].items() if m is not None]
    top = [(s, b) for s, b, m in cells if m == max(multipliers)]
    bottom = [(s, b) for s, b, m in cells if m == min(multipliers)]
    where = ", ".join(f"B = {b} at step {s:,}" for s, b in top) or "none"
    return (
        f"Winning rate at the top of the grid (×{max(multipliers):g}) in {len(top)} of {len(cells)} (checkpoint, B) "
        f"cells ({where}); at the bottom (×{min(multipliers):g}) in {len(bottom)}."
    )


def branch_matrix(rows: list[dict], batches) -> list[str]:
    """Per checkpoint and B: the best branch loss after E over its target (✓ recovers: ≤ 1), and the
    winning rate multiplier (an edge of the grid flags a rate the grid may have cut short)."""
    lines = [
        "#### Branch outcomes: loss after E / target (✓ recovers), winning rate multiplier",
        "",
        "| step | " + " | ".join(f"B = {b}" for b in batches) + " |",
        "| --- | " + " | ".join("---" for _ in batches) + " |",
    ]
    for r in rows:
        w = r["window"] or {}
        cells = []
        for b in batches:
            loss, target = (w.get("loss") or {}).get(b), (w.get("target") or {}).get(b)
            if loss is None or target is None or not math.isfinite(target):
                cells.append("—")
                continue
            mark = "✓" if w["recovers"][b] else "✗"
            ratio = "diverged" if not math.isfinite(loss) else f"{loss / target:.3f}"
            cells.append(f"{mark} {ratio} (×{r['winning_multiplier'].get(b) or 0:g})")
        lines.append(f"| {r['step']:,} | " + " | ".join(cells) + " |")
    return lines


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4g}"
