"""Steps-to-target and best-within-budget on hand-made histories with known answers."""

import pytest

from lbbench.study import targets


def run(acc, status="completed", batch=128, steps_per_epoch=10, noise=None):
    n = len(acc)
    return {
        "status": status,
        "config": {"batch_size": batch},
        "history": {
            "epoch": list(range(1, n + 1)),
            "step": [steps_per_epoch * e for e in range(1, n + 1)],
            "test_accuracy": acc,
            "noise_b_simple": noise or [None] * n,
        },
    }


def test_first_crossing_is_exact_not_the_best_or_last():
    r = run([0.2, 0.69, 0.7, 0.65, 0.9])
    hit = targets.first_crossing(r, 0.7)
    assert hit["step"] == 30 and hit["epoch"] == 3 and hit["examples"] == 30 * 128 and hit["index"] == 2
    assert targets.steps_to_target(r, 0.66) == 20 and targets.steps_to_target(r, 0.695) == 30
    assert targets.steps_to_target(r, 0.9) == 50
    assert targets.examples_to_target(r, 0.2) == 10 * 128


def test_none_never_and_diverged():
    assert targets.steps_to_target(run([None, 0.5, None, 0.8]), 0.75) == 40  # None entries skipped
    assert targets.steps_to_target(run([0.1, 0.2]), 0.5) is None  # never
    assert targets.steps_to_target(run([0.1, 0.9], status="diverged"), 0.5) is None
    assert targets.steps_to_target(run([0.1, 0.9], status="failed"), 0.5) is None
    assert targets.steps_to_target(None, 0.5) is None
    assert targets.steps_to_target(run([float("nan"), 0.6]), 0.5) == 20


def test_best_within_epoch_and_step_budgets():
    r = run([0.3, 0.8, 0.7, 0.95], steps_per_epoch=7)
    assert targets.best_within(r, epochs=3) == 0.8
    assert targets.best_within(r, epochs=4) == 0.95
    assert targets.best_within(r, steps=20) == 0.8  # evaluations at steps 7, 14 (21 > 20)
    assert targets.best_within(r, steps=6) is None  # no evaluation inside the budget
    assert targets.best_within(run([0.3, 0.9], status="diverged"), epochs=2) is None
    assert targets.covers_budget(r, epochs=4) and not targets.covers_budget(r, epochs=5)
    assert targets.covers_budget(r, steps=28) and not targets.covers_budget(r, steps=29)
    with pytest.raises(ValueError):
        targets.best_within(r)


def test_b_simple_at_the_crossing():
    r = run([0.1, 0.8, 0.9], noise=[100.0, 250.0, None])
    assert targets.b_simple_at(r, targets.first_crossing(r, 0.5)["index"]) == 250.0
    assert targets.b_simple_at(r, 2) is None and targets.b_simple_at(r, None) is None


def test_mid_epoch_evaluations_refine_the_first_crossing():
    from lbbench.study.targets import first_crossing

    result = {
        "status": "completed",
        "config": {"batch_size": 32},
        "history": {"step": [100, 200], "epoch": [1, 2], "test_accuracy": [0.5, 0.9], "noise_b_simple": [10.0, 20.0]},
        "evals": {"step": [25, 50, 75, 125, 150, 175], "test_accuracy": [0.1, 0.2, 0.3, 0.6, 0.85, 0.95]},
    }
    hit = first_crossing(result, 0.8)
    assert (hit["step"], hit["epoch"], hit["examples"], hit["index"]) == (150, 1.5, 4800, 1)
    assert first_crossing(result, 0.5)["step"] == 100  # the epoch's own evaluation, not a later mid-epoch one
    assert first_crossing(result, 0.92)["step"] == 175
    del result["evals"]
    assert first_crossing(result, 0.8)["step"] == 200
