"""Steps to a target accuracy and the accuracy at a fixed budget, from one run's evaluations.

Data roles (STUDY_PROTOCOL.md §2; Shallue et al. 2019 §3.2, Zhang et al. 2024): targets, crossings
and selection read the **validation** metric (`SELECT`); the test metric (`REPORT`) is read once,
at the checkpoint rule fixed before the runs: **the last evaluation inside the budget** (the
budget's end), never the best of many test looks.

Steps to result: the validation metric crosses the target between two recorded evaluations; the
crossing step is interpolated linearly between them (the metric is roughly linear over one
evaluation interval), and the interval itself is kept as the crossing's quantisation. Runs evaluate
once per epoch (result.json `history`) and, with --eval_every_steps, between epochs (`evals`); both
are used. Examples to target is steps × batch size (McCandlish et al. 2018's E). A run with a batch-size
schedule (result.json `batch_phases`) counts each phase's steps at its own batch and epoch length.

Only completed runs count: a diverged or failed run reaches nothing (None), and a None entry in
the history (a non-finite value written as null) is never a crossing.
"""

from __future__ import annotations

import math

SELECT, REPORT = "val_accuracy", "test_accuracy"


def _ok(result: dict | None) -> bool:
    return bool(result) and result.get("status") == "completed" and bool(result.get("history"))


def _rows(result: dict, metric: str):
    """(history index or None, step, epoch, value) of every finite evaluation, in step order.

    Mid-epoch evaluations (`evals`) carry a fractional epoch (step / steps per epoch) and the index
    of the epoch they fall in (whose end-of-epoch B_simple they report); at an epoch's end both
    records exist and the history row is kept. A run without the metric (e.g. written before
    validation sets existed) has no rows: it never crosses and is never selected.
    """
    h = result["history"]
    rows = {}
    evals = result.get("evals") or {}
    if metric in evals and h.get("step") and h.get("epoch"):
        phases = _phases(result)
        for step, value in zip(evals["step"], evals[metric]):
            if step is not None and value is not None and math.isfinite(value):
                epoch_index = next((i for i, s in enumerate(h["step"]) if s is not None and s >= step), None)
                rows[int(step)] = (epoch_index, int(step), _epoch_at(phases, step), float(value))
    for i, (step, epoch, value) in enumerate(zip(h["step"], h["epoch"], h.get(metric) or ())):
        if step is None or value is None or not math.isfinite(value):
            continue
        rows[int(step)] = (i, int(step), epoch, float(value))
    yield from (rows[s] for s in sorted(rows))


def _phases(result: dict) -> list[dict]:
    """The run's phases (result.json `batch_phases`: batch_size, first_epoch, start_step,
    steps_per_epoch), or one phase from its first epoch's steps and its batch size."""
    if result.get("batch_phases"):
        return sorted(result["batch_phases"], key=lambda p: p["start_step"])
    h = result["history"]
    per_epoch = h["step"][0] / h["epoch"][0] if h.get("step") and h.get("epoch") and h["epoch"][0] else 1.0
    batch = int(result["config"]["batch_size"])
    return [{"batch_size": batch, "first_epoch": 1, "start_step": 0, "steps_per_epoch": per_epoch}]


def _phase_at(phases: list[dict], step: float) -> dict:
    return next((p for p in reversed(phases) if p["start_step"] <= step), phases[0])


def _epoch_at(phases: list[dict], step: float) -> float:
    """The fractional epoch at a global step (each phase's epochs have its own number of steps)."""
    p = _phase_at(phases, step)
    return p["first_epoch"] - 1 + (step - p["start_step"]) / p["steps_per_epoch"]


def _examples_at(phases: list[dict], step: float) -> float:
    """Examples trained by a global step: each phase's steps times its batch."""
    out = 0.0
    for p, nxt in zip(phases, [*phases[1:], None]):
        end = step if nxt is None else min(step, nxt["start_step"])
        out += max(0.0, end - p["start_step"]) * p["batch_size"]
    return out


def first_crossing(
    result: dict | None, target: float, metric: str = SELECT, higher_is_better: bool = True
) -> dict | None:
    """Where `metric` first reaches `target`: {"step" (interpolated), "recorded_step" (the first
    evaluation at or past it), "previous_step" (the one before, or None), "quantisation" (the
    interval between the two, relative to the step), "epoch", "examples", "index", "value"}.

    Before the first evaluation nothing is known, so a target met there is placed at that evaluation
    (quantisation 1: the crossing lies anywhere in [0, step]). None if the run is not completed or
    never reaches the target.
    """
    if not _ok(result):
        return None
    phases = _phases(result)
    sign = 1.0 if higher_is_better else -1.0
    prev = None
    for i, step, epoch, value in _rows(result, metric):
        if sign * (value - target) >= 0:
            if prev is None or sign * (value - prev[1]) <= 0:
                at, width = float(step), float(step - (prev[0] if prev else 0))
            else:
                at = prev[0] + (target - prev[1]) / (value - prev[1]) * (step - prev[0])
                width = float(step - prev[0])
            return {
                "step": at,
                "recorded_step": step,
                "previous_step": prev[0] if prev else None,
                "quantisation": width / at if at > 0 else 1.0,
                "epoch": epoch * at / step if step else epoch,
                "examples": _examples_at(phases, at),
                "index": i,
                "value": value,
            }
        prev = (step, value)
    return None


def steps_to_target(result: dict | None, target: float, metric: str = SELECT) -> float | None:
    hit = first_crossing(result, target, metric)
    return None if hit is None else hit["step"]


def steps_score(target: float, metric: str = SELECT):
    """A higher-is-better trial score for selection: −(steps to target), ties broken by the higher
    final validation accuracy (1e-6 weight: never outweighs a single step); None if never reached."""

    def score(result):
        s = steps_to_target(result, target, metric)
        return None if s is None else -s + 1e-6 * (at_budget(result, epochs=math.inf, metric=metric) or 0)

    return score


def examples_to_target(result: dict | None, target: float, metric: str = SELECT) -> float | None:
    hit = first_crossing(result, target, metric)
    return None if hit is None else hit["examples"]


def _inside(budget_epochs, budget_steps):
    if (budget_epochs is None) == (budget_steps is None):
        raise ValueError("give exactly one of epochs= or steps=")
    if budget_epochs is not None:
        return lambda step, epoch: epoch is not None and epoch <= budget_epochs + 1e-9
    return lambda step, epoch: step <= budget_steps


def at_budget(
    result: dict | None, *, epochs: float | None = None, steps: int | None = None, metric: str = SELECT
) -> float | None:
    """`metric` at the last evaluation inside the budget (epoch ≤ `epochs`, or step ≤ `steps`): the
    pre-declared checkpoint every study reads, for validation (selection) and test (report) alike.

    None if the run is not completed or no evaluation falls inside the budget (e.g. a step budget
    shorter than one evaluation interval). A budget the run did not reach is not filled in:
    `covers_budget` says whether it ran long enough.
    """
    inside = _inside(epochs, steps)
    if not _ok(result):
        return None
    vals = [v for _, step, epoch, v in _rows(result, metric) if inside(step, epoch)]
    return vals[-1] if vals else None


def best_within(
    result: dict | None, *, epochs: float | None = None, steps: int | None = None, metric: str = SELECT
) -> float | None:
    """The best `metric` among evaluations inside the budget. Never a reported number (that would be
    early stopping on whatever metric it reads): it only says whether a run ever learned."""
    inside = _inside(epochs, steps)
    if not _ok(result):
        return None
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
