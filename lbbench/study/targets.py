"""Steps to a target accuracy, and the best accuracy within a fixed budget, from one run's history.

Shallue et al. 2019 (§3.2) measure "steps to result": the first training step at which the
validation metric reaches a target. The first crossing is the first *recorded* evaluation with
test_accuracy ≥ target (no interpolation between evaluations: the step is a recorded fact). Runs
evaluate once per epoch (result.json `history`) and, with --eval_every_steps, also between epochs
(result.json `evals`); both are used, so the resolution is the finer of the two. Examples to target is
steps × batch size (McCandlish et al. 2018's E).

Only completed runs count: a diverged or failed run reaches nothing (None), and a None entry in
the history (a non-finite value written as null) is never a crossing.
"""

from __future__ import annotations

import math


def _ok(result: dict | None) -> bool:
    return bool(result) and result.get("status") == "completed" and bool(result.get("history"))


def _rows(result: dict, metric: str):
    """(history index or None, step, epoch, value) of every finite evaluation, in step order.

    Mid-epoch evaluations (`evals`) carry a fractional epoch (step / steps per epoch) and the index
    of the epoch they fall in (whose end-of-epoch B_simple they report); at an epoch's end both
    records exist and the history row is kept.
    """
    h = result["history"]
    rows = {}
    evals = result.get("evals") or {}
    if metric in evals and h.get("step") and h.get("epoch"):
        steps_per_epoch = h["step"][0] / h["epoch"][0]
        for step, value in zip(evals["step"], evals[metric]):
            if step is not None and value is not None and math.isfinite(value):
                epoch_index = next((i for i, s in enumerate(h["step"]) if s is not None and s >= step), None)
                rows[int(step)] = (epoch_index, int(step), step / steps_per_epoch, float(value))
    for i, (step, epoch, value) in enumerate(zip(h["step"], h["epoch"], h[metric])):
        if step is None or value is None or not math.isfinite(value):
            continue
        rows[int(step)] = (i, int(step), epoch, float(value))
    yield from (rows[s] for s in sorted(rows))


def first_crossing(
    result: dict | None, target: float, metric: str = "test_accuracy", higher_is_better: bool = True
) -> dict | None:
    """The first recorded evaluation reaching `target`: {"step", "epoch", "examples", "index", "value"}.

    None if the run is not completed or never reaches the target.
    """
    if not _ok(result):
        return None
    batch = int(result["config"]["batch_size"])
    for i, step, epoch, value in _rows(result, metric):
        if (value >= target) if higher_is_better else (value <= target):
            return {"step": step, "epoch": epoch, "examples": step * batch, "index": i, "value": value}
    return None


def steps_to_target(result: dict | None, target: float, metric: str = "test_accuracy") -> int | None:
    hit = first_crossing(result, target, metric)
    return None if hit is None else hit["step"]


def steps_score(target: float, metric: str = "test_accuracy"):
    """A higher-is-better trial score for selection: −(steps to target), ties broken by the higher
    best accuracy (1e-6 weight: never outweighs a single step); None if the target is never reached."""

    def score(result):
        s = steps_to_target(result, target, metric)
        return None if s is None else -s + 1e-6 * (best_within(result, epochs=math.inf, metric=metric) or 0)

    return score


def examples_to_target(result: dict | None, target: float, metric: str = "test_accuracy") -> int | None:
    hit = first_crossing(result, target, metric)
    return None if hit is None else hit["examples"]


def best_within(
    result: dict | None, *, epochs: float | None = None, steps: int | None = None, metric: str = "test_accuracy"
) -> float | None:
    """Best `metric` among evaluations at epoch ≤ `epochs` (or step ≤ `steps`); exactly one budget.

    None if the run is not completed, or no evaluation falls inside the budget (e.g. a step budget
    shorter than one epoch of a small batch). A budget the run did not reach is not filled in: the
    run is judged on what it recorded, and `covers_budget` says whether it ran long enough.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs= or steps=")
    if not _ok(result):
        return None

    def inside(step, epoch):
        return (epoch is not None and epoch <= epochs) if epochs is not None else step <= steps

    vals = [v for _, step, epoch, v in _rows(result, metric) if inside(step, epoch)]
    return max(vals) if vals else None


def covers_budget(result: dict | None, *, epochs: float | None = None, steps: int | None = None) -> bool:
    """Whether the run trained at least the budget (else its best-within-budget is not comparable)."""
    if not _ok(result):
        return False
    h = result["history"]
    last_epoch = max((e for e in h["epoch"] if e is not None), default=0)
    last_step = max((s for s in h["step"] if s is not None), default=0)
    return last_epoch >= epochs if epochs is not None else last_step >= steps


def b_simple_at(result: dict | None, index: int | None) -> float | None:
    """history.noise_b_simple at a history index (e.g. first_crossing()["index"]), else None."""
    if not result or index is None:
        return None
    col = (result.get("history") or {}).get("noise_b_simple") or []
    v = col[index] if index < len(col) else None
    return float(v) if v is not None and math.isfinite(v) else None
