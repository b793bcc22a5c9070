"""Differences between the arms of a tuned study, with Welch confidence intervals.

The experiments built on the study layer name each run `<arm>__t<trial>` (tuning trials) or
`<arm>__s<seed>` (re-runs of a winner; protocol.rerun_points), or just `<arm>` for an arm with a
single fixed configuration (a zero-shot transfer, a published recipe). `arm_of_run` recovers the
arm. `answer.answer_rows(..., arm=arm_of_run)` gives each arm's best trial re-run over fresh
seeds (its epoch-budget `values`); `difference` compares two arms' values with Welch's t interval
(bootstrap.difference_ci). With one value per arm (quick mode: the selection run alone) the
difference has no interval and no verdict.
"""

from __future__ import annotations

from lbbench.config import Config
from lbbench.study import bootstrap, protocol


def arm_of_run(cfg: dict) -> str:
    """The arm of a run: its run name up to the trial/seed suffix."""
    return cfg["run_name"].split(protocol.SEP)[0]


def epoch_values(row: dict | None) -> list | None:
    """The epoch-budget values (one per re-run seed) of an answer row, or None if it has no winner."""
    cell = (row or {}).get("epochs") or {}
    return cell.get("values") if cell.get("best") else None


def difference(by_arm: dict, a: str, b: str, confidence: float = 0.95) -> dict | None:
    """mean(a) − mean(b) over their re-run seeds at the epoch budget, with a Welch CI; None if either
    arm has no winner. `by_arm`: {arm: answer row}."""
    va, vb = epoch_values(by_arm.get(a)), epoch_values(by_arm.get(b))
    if not va or not vb:
        return None
    d = bootstrap.difference_ci(va, vb, confidence)
    return {**d, "a": a, "b": b, "n_a": len(va), "n_b": len(vb)}


def verdict(d: dict | None) -> str | None:
    """'below' / 'above' when the CI excludes 0, 'none' when it includes 0; None without a CI."""
    if not d or d["low"] is None:
        return None
    if d["high"] < 0:
        return "below"
    if d["low"] > 0:
        return "above"
    return "none"


GAP_MARGIN = 0.01  # one point of test accuracy: a smaller deficit counts as no deficit


def gap_verdict(d: dict | None, margin: float = GAP_MARGIN) -> str | None:
    """Does an arm close the gap to a reference? From the CI of (arm − reference):

    'closes' when the whole interval lies above −margin (a non-inferiority test: any deficit is
    smaller than `margin`), 'does not close' when it lies below 0, 'inconclusive' otherwise (the
    interval is too wide to tell: a CI that merely contains 0 is not evidence of no gap). None
    without a CI (fewer than 2 seeds on a side).
    """
    if not d or d["low"] is None:
        return None
    if d["low"] >= -margin:
        return "closes"
    return "does not close" if d["high"] < 0 else "inconclusive"


def closes_gap(d: dict | None, margin: float = GAP_MARGIN) -> bool | None:
    """True when `gap_verdict` says 'closes'; None without a CI."""
    v = gap_verdict(d, margin)
    return None if v is None else v == "closes"


def difference_markdown(title: str, items: list[tuple[str, dict | None]], note: str = "") -> str:
    """A table of labelled differences: mean, Welch 95 % CI, seeds on each side, what the CI says."""
    lines = (
        [f"### {title}", ""]
        + ([note, ""] if note else [])
        + ["| comparison | difference (test acc) [95% CI, Welch] | seeds | CI says |", "| --- | --- | --- | --- |"]
    )
    words = {None: "— (needs ≥ 2 seeds each)", "below": "negative", "above": "positive", "none": "no difference"}
    for label, d in items:
        if d is None:
            lines.append(f"| {label} | — (an arm has no result) | — | — |")
            continue
        ci = "" if d["low"] is None else f" [{d['low']:+.4f}, {d['high']:+.4f}]"
        lines.append(f"| {label} | {d['diff']:+.4f}{ci} | {d['n_a']} vs {d['n_b']} | {words[verdict(d)]} |")
    return "\n".join(lines) + "\n"


def winner_settings(rows: list[dict], results: dict) -> dict:
    """{arm: the epoch-budget winner's settings}, with the learning rate it actually trained at
    (Config.scaled_learning_rate: the base rate × the scaling rule's factor at its batch size) —
    the answer table's lr column is the base rate, which hides what a scaling rule did."""
    out = {}
    for r in rows:
        cell = r.get("epochs") or {}
        name = cell.get("best")
        if not name or name not in results:
            continue
        raw = results[name]["config"]
        try:
            cfg = Config.from_dict(raw)
            lr, beta2 = cfg.scaled_learning_rate, cfg.scaled_beta2
        except (TypeError, ValueError, KeyError):
            lr, beta2 = None, raw.get("beta2")
        out[r["arm"]] = {
            "run": name,
            "batch_size": raw.get("batch_size"),
            "optimizer": raw.get("optimizer"),
            "learning_rate": lr,
            "base_learning_rate": raw.get("learning_rate"),
            "lr_scaling": raw.get("lr_scaling"),
            "momentum": raw.get("momentum"),
            "beta2": beta2,
            "warmup_epochs": raw.get("warmup_epochs"),
            "weight_decay": raw.get("weight_decay"),
            "epochs": raw.get("epochs"),
        }
    return out


def winner_markdown(settings: dict) -> str:
    """The winners' settings as a table (effective learning rate first)."""
    if not settings:
        return ""

    def f(x, spec=".3g"):
        return "—" if x is None else format(x, spec)

    lines = [
        "### Each arm's winner (epoch budget, chosen on seed 0)",
        "",
        "| arm | B | optimizer | learning rate trained at | base rate (scaling) | momentum / β1 | β2 "
        "| warmup epochs | weight decay | epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, s in settings.items():
        lines.append(
            f"| {arm} | {s['batch_size']} | {s['optimizer']} | {f(s['learning_rate'])} "
            f"| {f(s['base_learning_rate'])} ({s['lr_scaling']}) | {f(s['momentum'], '.4g')} "
            f"| {f(s['beta2'], '.4g') if s['optimizer'] in ('adam', 'adamw', 'lamb') else '—'} "
            f"| {f(s['warmup_epochs'], '.2g')} | {f(s['weight_decay'], '.2g')} | {s['epochs']} |"
        )
    return "\n".join(lines) + "\n"
