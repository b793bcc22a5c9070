"""Steps to a validation target (interpolated) and the budget-end checkpoint, on hand-made histories."""

import pytest

from lbbench.study import targets


def run(acc, status="completed", batch=128, steps_per_epoch=10, noise=None, test=None):
    n = len(acc)
    return {
        "status": status,
        "config": {"batch_size": batch},
        "history": {
            "epoch": list(range(1, n + 1)),
            "step": [steps_per_epoch * e for e in range(1, n + 1)],
            "val_accuracy": acc,
            "test_accuracy": test or [None if a is None else a - 0.05 for a in acc],
            "noise_b_simple": noise or [None] * n,
        },
    }


def test_first_crossing_is_interpolated_between_the_evaluations_around_it():
    r = run([0.2, 0.6, 0.8, 0.65, 0.9])
    hit = targets.first_crossing(r, 0.7)
    # 0.6 at step 20, 0.8 at step 30: 0.7 is crossed half-way, at step 25
    assert hit["step"] == pytest.approx(25.0) and hit["recorded_step"] == 30 and hit["previous_step"] == 20
    assert hit["quantisation"] == pytest.approx(10 / 25) and hit["epoch"] == pytest.approx(2.5)
    assert hit["examples"] == pytest.approx(25 * 128) and hit["index"] == 2 and hit["value"] == 0.8
    assert targets.steps_to_target(r, 0.8) == pytest.approx(30.0)  # met exactly at an evaluation
    assert targets.steps_to_target(r, 0.85) == pytest.approx(40 + 10 * 0.2 / 0.25)  # after the dip at 40
    # met at the first evaluation: nothing is known before it, so the crossing stays there, quantisation 1
    first = targets.first_crossing(r, 0.1)
    assert first["step"] == 10 and first["previous_step"] is None and first["quantisation"] == 1.0


def test_interpolation_is_exact_on_a_linear_curve():
    """A metric that is linear in the step between evaluations: interpolation recovers the crossing exactly."""
    slope = 0.9 / 1000
    r = run([slope * s for s in range(7, 1001, 7)], steps_per_epoch=7)
    for goal in (0.1, 0.333, 0.5, 0.77):
        assert targets.steps_to_target(r, goal) == pytest.approx(goal / slope, rel=1e-9)


def test_crossings_read_validation_not_test():
    r = run([0.2, 0.6, 0.8], test=[0.9, 0.9, 0.9])  # the test set would say: crossed at once
    assert targets.steps_to_target(r, 0.7) == pytest.approx(25.0)
    assert targets.steps_to_target(r, 0.7, metric=targets.REPORT) == 10
    del r["history"]["val_accuracy"]  # a result without a validation set is never selected
    assert targets.steps_to_target(r, 0.7) is None and targets.at_budget(r, epochs=3) is None


def test_none_never_and_diverged():
    assert targets.steps_to_target(run([None, 0.5, None, 0.8]), 0.75) == pytest.approx(20 + 20 * 0.25 / 0.3)
    assert targets.steps_to_target(run([0.1, 0.2]), 0.5) is None  # never
    assert targets.steps_to_target(run([0.1, 0.9], status="diverged"), 0.5) is None
    assert targets.steps_to_target(run([0.1, 0.9], status="failed"), 0.5) is None
    assert targets.steps_to_target(None, 0.5) is None
    assert targets.steps_to_target(run([float("nan"), 0.6]), 0.5) == 20


def test_the_budget_end_checkpoint_is_the_last_evaluation_inside_it_not_the_best():
    r = run([0.3, 0.8, 0.7, 0.95], steps_per_epoch=7)
    assert targets.at_budget(r, epochs=3) == 0.7  # the best inside would be 0.8: early stopping
    assert targets.best_within(r, epochs=3) == 0.8
    assert targets.at_budget(r, epochs=4) == 0.95
    assert targets.at_budget(r, steps=20) == 0.8  # evaluations at steps 7, 14 (21 > 20)
    assert targets.at_budget(r, steps=6) is None  # no evaluation inside the budget
    assert targets.at_budget(r, epochs=3, metric=targets.REPORT) == pytest.approx(0.65)
    assert targets.at_budget(run([0.3, 0.9], status="diverged"), epochs=2) is None
    assert targets.covers_budget(r, epochs=4) and not targets.covers_budget(r, epochs=5)
    assert targets.covers_budget(r, steps=28) and not targets.covers_budget(r, steps=29)
    with pytest.raises(ValueError):
        targets.at_budget(r)


def test_b_simple_at_the_crossing():
    r = run([0.1, 0.8, 0.9], noise=[100.0, 250.0, None])
    assert targets.b_simple_at(r, targets.first_crossing(r, 0.5)["index"]) == 250.0
    assert targets.b_simple_at(r, 2) is None and targets.b_simple_at(r, None) is None


def test_mid_epoch_evaluations_refine_the_first_crossing():
    result = {
        "status": "completed",
        "config": {"batch_size": 32},
        "history": {"step": [100, 200], "epoch": [1, 2], "val_accuracy": [0.5, 0.9], "noise_b_simple": [10.0, 20.0]},
        "evals": {"step": [25, 50, 75, 125, 150, 175], "val_accuracy": [0.1, 0.2, 0.3, 0.6, 0.85, 0.95]},
    }
    hit = targets.first_crossing(result, 0.8)
    assert hit["step"] == pytest.approx(125 + 25 * 0.2 / 0.25) and hit["recorded_step"] == 150
    assert (hit["examples"], hit["index"]) == (pytest.approx(hit["step"] * 32), 1)
    assert targets.first_crossing(result, 0.5)["step"] == pytest.approx(100)  # the epoch's own evaluation
    assert targets.first_crossing(result, 0.92)["step"] == pytest.approx(150 + 25 * 0.07 / 0.1)
    del result["evals"]
    assert targets.first_crossing(result, 0.8)["step"] == pytest.approx(100 + 100 * 0.3 / 0.4)


def test_a_batch_schedule_counts_each_phases_steps_at_its_own_batch_and_epoch_length():
    # 1 epoch at B = 512 (117 steps), then 1 at 1024 (58 steps): a mid-epoch evaluation at step 146
    # lies halfway through epoch 2, and examples count 117 steps of 512 and the rest at 1024
    phases = [
        {"batch_size": 512, "epochs": 1, "first_epoch": 1, "start_step": 0, "steps_per_epoch": 117},
        {"batch_size": 1024, "epochs": 1, "first_epoch": 2, "start_step": 117, "steps_per_epoch": 58},
    ]
    result = {
        "status": "completed",
        "config": {"batch_size": 1024},
        "batch_phases": phases,
        "history": {"step": [117, 175], "epoch": [1, 2], "val_accuracy": [0.5, 0.9]},
        "evals": {"step": [146], "val_accuracy": [0.8]},
    }
    hit = targets.first_crossing(result, 0.8)
    assert hit["step"] == 146 and hit["epoch"] == pytest.approx(1.5)
    assert hit["examples"] == 117 * 512 + 29 * 1024
    early = targets.first_crossing(result, 0.5)  # inside the first phase: all at 512
    assert (early["step"], early["examples"], early["epoch"]) == (117, 117 * 512, 1)
