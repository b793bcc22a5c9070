"""Differences between the arms of a tuned study, with Welch confidence intervals.

The experiments built on the study layer name each run `<arm>__t<trial>` (tuning trials) or
`<arm>__s<seed>` (re-runs of a winner; protocol.rerun_points), or just `<arm>` for an arm with a
single fixed configuration (a zero-shot transfer, a published recipe). `arm_of_run` recovers the
arm. `answer.answer_rows(..., arm=arm_of_run)` gives each arm's best trial re-run over fresh
seeds (its epoch-budget `values`); `difference` compares two arms' values with Welch's t interval
(bootstrap.difference_ci) and `judge` gives a family of differences their verdicts (study.verdicts,
the one rule every study uses). With one value per arm (quick mode: the selection run alone) the
difference has no interval and no verdict.
"""

from __future__ import annotations

from lbbench.config import Config
from lbbench.study import bootstrap, protocol, verdicts


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
    ca, cb = ((by_arm.get(x) or {}).get("epochs") for x in (a, b))
    d = cell_difference(ca, cb, confidence)
    return None if d is None else {**d, "a": a, "b": b}


def cell_difference(a: dict | None, b: dict | None, confidence: float = 0.95) -> dict | None:
    """The difference of two answer cells' re-run values (Welch, clipped to [−1, 1]); None if either has no
    winner. `split` when either arm's seeds split (some learn, some stay at chance or diverge): the verdict
    rule then gives no verdict, because a mean over learners and non-learners describes neither
    (study.verdicts.split). An arm whose seeds all fail is not split: it is compared, and is worse."""
    if not (a or {}).get("best") or not (b or {}).get("best"):
        return None
    d = bootstrap.difference_ci(a["values"], b["values"], confidence, bounds=(-1.0, 1.0))
    return {**d, "split": any((c.get("split") or {}).get("bimodal") for c in (a, b))}


def judge(diffs: dict, margin: float = verdicts.MARGIN) -> dict:
    """The differences {label: difference dict or None} of one family, each with its verdict (study.verdicts:
    symmetric non-inferiority, Holm within the family) merged in; None entries stay None."""
    judged = verdicts.family({k: d for k, d in diffs.items() if d is not None}, margin)
    return {k: None if d is None else {**d, **judged[k], "margin": margin} for k, d in diffs.items()}


def closes_gap(d: dict | None) -> bool | None:
    """Whether a judged difference (arm − reference) says the arm is no worse than the reference by more
    than the margin ('non-inferior' or 'better'); None without a verdict."""
    v = (d or {}).get("verdict")
    return None if v is None else v in ("non-inferior", "better")


NO_VERDICT = "no verdict (an arm diverged, split across seeds, or has fewer than 2 seeds)"


def verdict_sentence(what: str, judged: dict) -> str:
    """One sentence listing a judged family ({label: judged difference, or its verdict string}) by outcome —
    the form every study's conclusions take, so the prose can only say what the verdicts say."""
    groups = {"non-inferior or better": [], "worse": [], "inconclusive": [], NO_VERDICT: []}
    for label, d in sorted(judged.items(), key=lambda kv: _order(kv[0])):
        v = d if isinstance(d, str) or d is None else d.get("verdict")
        key = {"non-inferior": "non-inferior or better", "better": "non-inferior or better"}.get(v, v or NO_VERDICT)
        groups[key].append(str(label))
    tested = len(judged) - len(groups[NO_VERDICT])
    if not groups[NO_VERDICT]:
        del groups[NO_VERDICT]
    body = "; ".join(f"{k}: {', '.join(v) if v else 'none'}" for k, v in groups.items())
    return f"{what}: {body} (margin {verdicts.MARGIN:g}, Holm over {tested} comparisons)."


def conclusions_markdown(lines: list[str]) -> str:
    """The generated conclusions, first in a study's answer.md."""
    return "### Conclusions (generated from the verdicts below)\n\n" + "".join(f"- {c}\n" for c in lines) + "\n"


def _order(label):
    try:
        return (0, float(label), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(label))


def difference_markdown(title: str, items: list[tuple[str, dict | None]], note: str = "") -> str:
    """A table of labelled differences, judged as one family: mean, Welch 95 % CI, seeds on each side,
    Holm-adjusted p of the direction the data point to, and the verdict."""
    judged = judge(dict(items))
    margin = verdicts.MARGIN
    lines = (
        [f"### {title}", ""]
        + ([note, ""] if note else [])
        + [
            f"Verdict (margin {margin:g} of accuracy, Holm over the {len(items)} comparisons of this table): "
            "better (CI above +margin), non-inferior (above −margin), worse (below −margin), "
            "inconclusive (straddles −margin).",
            "",
            "Power, at the observed spread and before Holm (study.verdicts.power): the chance of a "
            "non-inferior verdict if the two arms were truly equal, and the deficit the test calls worse "
            "with 80 % probability.",
            "",
            "| comparison | difference (test acc) [95% CI, Welch] | seeds | p (Holm) | verdict "
            "| power if equal | deficit detected at 80 % |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
    )
    for label, _ in items:
        d = judged[label]
        if d is None:
            lines.append(f"| {label} | — (an arm has no result) | — | — | — | — | — |")
            continue
        ci = "" if d["low"] is None else f" [{d['low']:+.4f}, {d['high']:+.4f}]"
        p = "—" if d["p_holm"] is None else f"{d['p_holm']:.3g}"
        seeds = f"{d['n_a']} vs {d['n_b']}" if "n_a" in d else "—"
        pw = verdicts.power(d, margin)
        power_cells = "— | —" if pw is None else f"{pw['if_equal']:.0%} | {pw['detectable_deficit']:.4f}"
        lines.append(
            f"| {label} | {d['diff']:+.4f}{ci} | {seeds} | {p} | {d['verdict'] or '— (needs ≥ 2 seeds each)'} "
            f"| {power_cells} |"
        )
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
            "warmup_steps": raw.get("warmup_steps", -1),
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
        "| warmup | weight decay | epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, s in settings.items():
        lines.append(
            f"| {arm} | {s['batch_size']} | {s['optimizer']} | {f(s['learning_rate'])} "
            f"| {f(s['base_learning_rate'])} ({s['lr_scaling']}) | {f(s['momentum'], '.4g')} "
            f"| {f(s['beta2'], '.4g') if s['optimizer'] in ('adam', 'adamw', 'lamb') else '—'} "
            f"| {_warmup(s)} | {f(s['weight_decay'], '.2g')} | {s['epochs']} |"
        )
    return "\n".join(lines) + "\n"


def _warmup(s: dict) -> str:
    steps = s.get("warmup_steps")
    if steps is not None and steps >= 0:
        return f"{steps} steps"
    return "—" if s.get("warmup_epochs") is None else f"{s['warmup_epochs']:.2g} epochs"
