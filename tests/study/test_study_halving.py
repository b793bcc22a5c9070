"""Successive halving's pure part: rung epochs, the promotion rule on a fabricated ladder, and that
selection reads the validation column only."""

import math

import pytest

from lbbench.study import halving


def _result(epochs, val, test=None):
    hist = {"epoch": list(epochs), "val_accuracy": list(val)}
    if test is not None:
        hist["test_accuracy"] = list(test)
    return {"status": "paused", "history": hist}


def test_rung_epochs_round_dedupe_and_end_at_the_budget():
    spec = halving.Halving(rungs=(1 / 9, 1 / 3, 1.0), keep=1 / 3)
    assert spec.rung_epochs(18) == [2, 6, 18]
    assert spec.rung_epochs(334) == [37, 111, 334]
    assert spec.rung_epochs(10) == [1, 3, 10]
    assert spec.rung_epochs(2) == [1, 2]  # 1/9 and 1/3 of 2 epochs are both epoch 1
    assert spec.rung_epochs(1) == [1]


def test_promotes_exactly_the_top_fraction_on_a_fabricated_ladder():
    values = {f"t{i}": v for i, v in enumerate([0.5, 0.9, 0.7, 0.95, 0.1, 0.8, 0.6, 0.85, 0.3])}
    kept = halving.promote(values, 1 / 3, larger_is_better=True)
    assert kept == ["t3", "t1", "t7"]  # ⌊9/3⌋ = 3, best first
    assert halving.promote(values, 1 / 3, larger_is_better=False) == ["t4", "t8", "t0"]  # a loss
    # 32 trials, keep 1/3 → 10; then 10 → 3; then 3 → 1 (Li et al.: ⌊n/η⌋)
    many = {f"t{i:02d}": float(i) for i in range(32)}
    top = halving.promote(many, 1 / 3, True)
    assert top == [f"t{i:02d}" for i in range(31, 21, -1)]
    assert len(halving.promote({k: many[k] for k in top}, 1 / 3, True)) == 3
    assert len(halving.promote({"a": 1.0, "b": 2.0}, 1 / 3, True)) == 1  # at least one


def test_trials_without_a_value_are_never_promoted():
    values = {"a": None, "b": 0.2, "c": None, "d": 0.1}
    assert halving.promote(values, 0.5, True) == ["b", "d"]
    assert halving.rank(values, True) == ["b", "d", "a", "c"]
    assert halving.promote({"a": None, "b": None}, 0.5, True) == []


def test_the_metric_is_read_at_the_rung_epoch_from_the_validation_column():
    r = _result([1, 2, 3], [0.1, 0.2, float("nan")])
    assert halving.metric_at(r, 2, "val_accuracy") == 0.2
    assert halving.metric_at(r, 3, "val_accuracy") is None  # not finite
    assert halving.metric_at(r, 4, "val_accuracy") is None  # never got there (diverged earlier)
    assert halving.metric_at(None, 1, "val_accuracy") is None


def test_selection_never_reads_the_test_set():
    with pytest.raises(ValueError, match="validation"):
        halving.Halving(metric="test_accuracy")
    # the same validation values with test values reversed or poisoned promote the same trials
    val = [0.3, 0.9, 0.6, 0.8, 0.1, 0.5]
    for test in ([0.9, 0.1, 0.5, 0.2, 0.95, 0.4], [math.nan] * 6, None):
        results = {f"t{i}": _result([1], [v], None if test is None else [test[i]]) for i, v in enumerate(val)}
        values = {k: halving.metric_at(r, 1, "val_accuracy") for k, r in results.items()}
        assert halving.promote(values, 1 / 3, True) == ["t1", "t3"]


@pytest.mark.parametrize("rungs", [(0.5,), (0.5, 0.3, 1.0), (0.0, 1.0), (1.0, 1.0)])
def test_bad_rungs_are_refused(rungs):
    with pytest.raises(ValueError, match="rungs"):
        halving.Halving(rungs=rungs)
