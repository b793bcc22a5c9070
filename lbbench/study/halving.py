"""Successive halving, declared before the runs (Jamieson & Talwalkar 2016; Li et al. 2018, Hyperband
Alg. 1's inner loop; Li et al. 2020, ASHA without the asynchrony).

A bracket (e.g. one batch size's K trials) trains every trial to the first rung, a fraction of its
budget; ranks them on a validation metric read at that rung; keeps the top ⌊n · keep⌋ (at least one)
and continues only those — from their own state, not from scratch — to the next rung, and so on to
the full budget. Only trials that ran the full budget reach the study's comparison. The metric
must be a validation one: selection never reads the test set (STUDY_PROTOCOL.md §2).

This module is the pure part: the spec, the rung epochs of a trial, the metric at a rung, the
promotion rule, and the ladder's table. lbbench/sweep/halving.py runs it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from lbbench.config import Config

METRICS = {"val_accuracy": True, "val_loss": False}  # name: larger is better


@dataclasses.dataclass(frozen=True)
class Halving:
    """What an experiment file fixes in advance (its `halving(quick)` returns one, or None).

    rungs: increasing fractions of each trial's epochs, the last 1.0; keep: the fraction promoted at
    each rung (Li et al.'s 1/η); metric: the validation metric ranked at a rung; bracket: a point's
    Config → the key of the bracket it competes in (None: not halved, trained at its full budget).
    """

    rungs: tuple[float, ...] = (1 / 9, 1 / 3, 1.0)
    keep: float = 1 / 3
    metric: str = "val_accuracy"
    bracket: Callable[[Config], object] = dataclasses.field(default=lambda cfg: cfg.batch_size)

    def __post_init__(self):
        rungs = tuple(self.rungs)
        if not rungs or rungs[-1] != 1.0 or any(not a < b for a, b in zip((0.0, *rungs), rungs)):
            raise ValueError(f"halving rungs must increase within (0, 1] and end at 1.0, got {rungs}")
        if not 0 < self.keep < 1:
            raise ValueError(f"halving keep must lie in (0, 1), got {self.keep}")
        if self.metric not in METRICS:
            raise ValueError(
                f"halving ranks on a validation metric ({', '.join(METRICS)}), never a test one; got {self.metric!r}"
            )

    def rung_epochs(self, epochs: int) -> list[int]:
        """The epochs after which a trial of `epochs` epochs is ranked, then its full budget: rounded,
        at least 1, without repeats (short runs have fewer rungs)."""
        out: list[int] = []
        for frac in self.rungs:
            e = epochs if frac == 1.0 else min(max(1, round(frac * epochs)), epochs)
            if not out or e > out[-1]:
                out.append(e)
        return out

    def to_dict(self) -> dict:
        return {"rungs": list(self.rungs), "keep": self.keep, "metric": self.metric}


def metric_at(result: dict | None, epoch: int, metric: str) -> float | None:
    """The trial's `metric` at the end of `epoch` from its result.json history; None if it did not
    get there (diverged, failed) or the value is not finite."""
    hist = (result or {}).get("history") or {}
    epochs, values = hist.get("epoch") or [], hist.get(metric) or []
    for e, v in zip(epochs, values):
        if e == epoch:
            return float(v) if v is not None and math.isfinite(v) else None
    return None


def promote(values: dict[str, float | None], keep: float, larger_is_better: bool) -> list[str]:
    """The names kept: the top max(1, ⌊n · keep⌋) by value (ties by name); trials without a value
    (diverged, failed) are never kept, and none is kept if no trial has a value."""
    n = len(values)
    ranked = rank(values, larger_is_better)
    scored = [name for name in ranked if values[name] is not None]
    return scored[: max(1, math.floor(n * keep + 1e-9))] if scored else []


def rank(values: dict[str, float | None], larger_is_better: bool) -> list[str]:
    """Names best first; those without a value last (by name)."""
    sign = -1.0 if larger_is_better else 1.0
    return sorted(values, key=lambda k: (values[k] is None, sign * (values[k] or 0.0), k))


def ladder_markdown(ladder: dict, spec: Halving) -> str:
    """The whole ladder: per bracket, each trial's metric at every rung it reached and where it stopped."""
    lines = [
        "## Successive halving: the ladder",
        "",
        f"Declared in the experiment file before the runs: rungs at {', '.join(f'{r:.3g}' for r in spec.rungs)} "
        f"of each trial's epochs, the top ⌊n × {spec.keep:.3g}⌋ (at least one) of each bracket promoted at "
        f"each rung on {spec.metric} (validation; the test set is never read), promoted trials continued "
        "from their own checkpoint. Only trials that ran the full budget enter the study's comparisons.",
        "",
    ]
    for b in ladder.values():
        head = " | ".join(f"epoch {e}" for e in b["rung_epochs"])
        lines += [f"**{b['label']}** ({len(b['trials'])} trials)", "", f"| trial | {head} | outcome |"]
        lines.append("| --- |" + " --- |" * (len(b["rung_epochs"]) + 1))
        for name, t in b["trials"].items():
            cells = [_cell(t["values"].get(str(e))) for e in b["rung_epochs"]]
            lines.append(f"| {name} | {' | '.join(cells)} | {t['outcome']} |")
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return "—" if value is None else f"{value:.4f}"
