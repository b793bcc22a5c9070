"""Kendall's τ of a measure against the gap: scipy's τ-b, a bootstrap interval that covers a planted
rank relation, and Jiang et al.'s granulated τ on a population where the answer is known."""

import itertools
import json

import numpy as np
import pytest
import scipy.stats

from lbbench.study import correlation


def test_tau_is_scipys_tau_b_including_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)  # ties on purpose: τ-b, not τ-a
    y = x + rng.normal(0, 2, 40)
    assert correlation.tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
    assert correlation.tau([1, 2], [2, 1]) is None and correlation.tau([1, 1, 1], [1, 2, 3]) is None


def _pairs(tau_sign, n=60, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, tau_sign * x + 0.5 * rng.normal(size=n)


def test_interval_excludes_zero_for_a_planted_relation_and_holds_it_for_noise():
    x, y = _pairs(+1)
    low, high = correlation.tau_interval(x, y)
    assert 0 < low < correlation.tau(x, y) < high
    assert correlation.verdict({"low": low, "high": high}).startswith("ranks it (")
    x, y = _pairs(-1)
    assert correlation.verdict(dict(zip(("low", "high"), correlation.tau_interval(x, y)))).startswith("ranks it inv")
    rng = np.random.default_rng(2)
    low, high = correlation.tau_interval(rng.normal(size=60), rng.normal(size=60))
    assert low < 0 < high


def test_granulated_tau_sees_the_axis_a_measure_tracks_and_not_the_one_it_ignores():
    """The gap rises with lr; the measure follows lr exactly and ignores batch size, which moves the
    gap the other way: within lr-groups τ = 1, within batch-groups τ = -1 (the gap falls with batch)."""
    rows = []
    for lr, b in itertools.product((0.1, 0.2, 0.4), (64, 256, 1024)):
        gap = lr - b / 10_000
        rows.append({"hparams": {"learning_rate": lr, "batch_size": b}, "m": lr, "generalization_gap": gap})
    g = correlation.granulated_tau(rows, "m", "generalization_gap", ["batch_size", "learning_rate"])
    assert g["by_axis"] == {"learning_rate": pytest.approx(1.0)}  # within a batch size, m ranks the gap
    assert g["psi"] == pytest.approx(1.0)  # batch-size groups have a constant measure: no τ there


def test_rows_and_table_from_run_folders(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(12):
        lam = float(rng.uniform(1, 30))
        result = {
            "status": "completed",
            "config": {"batch_size": [32, 4096][i % 2], "learning_rate": 0.1, "seed": i, "workdir": "x"},
            "final": {"generalization_gap": 0.01 * lam + float(rng.normal(0, 0.01)), "test_accuracy": 0.9},
            "sharpness": {"lambda_max": lam, "hessian_trace": None, "epsilon_sharpness": {"full_0.001": 2.0}},
        }
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "result.json").write_text(json.dumps(result))
    rows = correlation.rows_from([str(tmp_path)])
    assert len(rows) == 12 and rows[0]["run"].endswith("/r0") and "workdir" not in rows[0]["hparams"]
    assert correlation.varying_axes(rows) == ["batch_size"]  # the seed is bookkeeping, not an axis
    by = {(t["measure"], t["target"]): t for t in correlation.table(rows)}
    assert by[("lambda_max", "generalization_gap")]["tau"] > 0.5
    assert by[("eps_full_0.001", "generalization_gap")]["tau"] is None  # a constant measure ranks nothing


def test_seeds_of_one_configuration_are_resampled_together():
    """Ten configurations, each run ten times with identical values: resampling runs would treat 100
    pairs as independent; resampling configurations gives the interval of 10, which is wider."""
    rng = np.random.default_rng(4)
    x10 = rng.normal(size=10)
    y10 = x10 + rng.normal(0, 1.0, 10)
    x, y, clusters = np.repeat(x10, 10), np.repeat(y10, 10), np.repeat(np.arange(10), 10)
    by_run = correlation.tau_interval(x, y)
    by_config = correlation.tau_interval(x, y, clusters)
    assert by_config[1] - by_config[0] > 1.5 * (by_run[1] - by_run[0])
