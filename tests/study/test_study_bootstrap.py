"""Confidence intervals: coverage of a known true value over synthetic repeats."""

import math

import numpy as np
import pytest

from lbbench.study import bootstrap as bs
from lbbench.study import critical_batch as cb

B = 2 ** np.arange(5, 15)


def test_t_interval_over_three_seeds_covers_the_true_mean():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        ci = bs.mean_ci(rng.normal(0.9, 0.01, 3))
        hits += ci["low"] <= 0.9 <= ci["high"]
    assert 0.93 <= hits / 2000 <= 0.97


def test_mean_ci_edge_cases_and_bootstrap_methods():
    assert bs.mean_ci([0.5])["low"] is None and bs.mean_ci([0.5])["mean"] == 0.5
    assert bs.mean_ci([None, float("nan"), 0.4, 0.6])["n"] == 2
    assert bs.mean_ci([0.7, 0.7, 0.7])["low"] == 0.7
    x = np.random.default_rng(1).normal(1.0, 0.1, 40)
    for method in ("bca", "percentile"):
        ci = bs.mean_ci(x, method=method, n_resamples=999)
        t = bs.mean_ci(x)
        assert ci["low"] < x.mean() < ci["high"]
        assert ci["high"] - ci["low"] == pytest.approx(t["high"] - t["low"], rel=0.25)
    with pytest.raises(ValueError):
        bs.mean_ci(x, method="jackknife")


def test_b_crit_interval_covers_the_true_value_in_at_least_90_percent_of_repeats():
    # 3 seeds per batch size, 10 % multiplicative seed noise, true B_crit = 1000
    rng = np.random.default_rng(1)
    repeats, hits = 80, 0
    for r in range(repeats):
        groups = {int(b): list(4000 * (1 + 1000 / b) * np.exp(rng.normal(0, 0.1, 3))) for b in B}
        ci = bs.fit_ci(groups, n_resamples=200, seed=r)["b_crit"]
        hits += ci["low"] <= 1000 <= ci["high"]
    assert hits / repeats >= 0.9


def test_fit_ci_point_estimates_and_never_reached_values():
    groups = {int(b): [4000 * (1 + 1000 / b)] * 3 for b in B}
    groups[32] = [None, None, None]  # never reached at B = 32: that batch size drops out
    out = bs.fit_ci(groups, n_resamples=50)
    assert out["b_crit"]["estimate"] == pytest.approx(1000, rel=1e-4)
    assert out["b_crit"]["low"] == pytest.approx(1000, rel=1e-2)
    assert out["b_crit"]["high"] == pytest.approx(1000, rel=1e-2)
    f = cb.Fit(4000, 1000, 0, 9, True)
    assert out["b_overhead_fit"]["estimate"] == pytest.approx(cb.overhead_critical_batch_from_fit(f, 64), rel=1e-4)
    # best of trials: the minimum per batch size is what gets fitted
    trials = {int(b): [4000 * (1 + 1000 / b) * k for k in (1.0, 1.5, 3.0)] for b in B}
    best = bs.fit_ci(trials, reduce="min", n_resamples=100)
    assert best["b_crit"]["estimate"] == pytest.approx(1000, rel=1e-4)
    assert best["b_crit"]["low"] <= 1000 <= best["b_crit"]["high"]
    assert math.isfinite(best["b_overhead_measured"]["estimate"])


def test_vectorised_overhead_matches_the_scalar_one():
    rng = np.random.default_rng(2)
    draws = 4000 * (1 + 800 / B) * np.exp(rng.normal(0, 0.1, (30, len(B))))
    got = bs._overhead_many(B.astype(float), draws, np.ones_like(draws), 0.2)
    want = [cb.overhead_critical_batch(B, d) or math.inf for d in draws]
    assert got == pytest.approx(want, rel=1e-9)


def test_welch_difference_interval_covers_the_true_difference():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(1000):
        d = bs.difference_ci(rng.normal(0.90, 0.01, 3), rng.normal(0.88, 0.03, 4))
        hits += d["low"] <= 0.02 <= d["high"]
    assert hits / 1000 >= 0.93
    assert bs.difference_ci([0.5], [0.4, 0.4])["low"] is None


def test_never_crossing_resamples_make_the_interval_unbounded_and_json_strict():
    import json

    from lbbench.runs.atomic import strict_json

    groups = {int(b): [1e6 / b] * 3 for b in B}  # perfect scaling: never 20 % over it
    out = bs.fit_ci(groups, n_resamples=50)
    m = out["b_overhead_measured"]
    assert m["estimate"] is None and m["high"] is None and m["unbounded"]
    assert not out["fit"]["identified"] and out["unidentified_fraction"] == 1.0
    json.dumps(strict_json({**out, "x": [math.inf, math.nan, (1, 2)], 3: np.float64(2.5)})[0], allow_nan=False)
    assert strict_json({1: math.inf, "t": (np.int64(2),)})[0] == {"1": None, "t": [2]}


def test_the_residual_bootstrap_covers_b_crit_under_tuning_granularity_noise():
    """Points scattered around S(B) by far more than seed noise (one draw per B, 25 % log-normal, as the
    best of K coarse trials scatters): the residual bootstrap's 95 % interval covers the true B_crit
    at least 90 % of the time (the seed-only bootstrap cannot see this scatter at all)."""
    rng = np.random.default_rng(7)
    batch_sizes = [2**k for k in range(5, 15)]
    hits, repeats = 0, 200
    for rep in range(repeats):
        points = {b: 300 * (1 + 1000 / b) * np.exp(0.25 * rng.standard_normal()) for b in batch_sizes}
        ci = bs.residual_fit_ci(points, n_resamples=500, seed=rep)["b_crit"]
        hits += ci["low"] <= 1000 <= ci["high"]
    assert hits / repeats >= 0.90


def test_the_residual_bootstrap_reports_the_asymptote_overhead_batch():
    points = {b: 300 * (1 + 1000 / b) for b in (64, 256, 1024, 4096)}
    ci = bs.residual_fit_ci(points, n_resamples=50)
    assert ci["b_crit"]["estimate"] == pytest.approx(1000, rel=1e-4)
    assert ci["b_overhead_fit"]["estimate"] == pytest.approx(200, rel=1e-4)  # 0.2 · B_crit
    assert bs.residual_fit_ci({64: 10.0, 128: 5.0}) is None  # two points leave no residual
