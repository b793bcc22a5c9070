"""S(B) = S_min(1 + B_crit/B) fit, the 20 %-overhead critical batch and the regimes, on synthetic curves."""

import math

import numpy as np
import pytest

from lbbench.study import critical_batch as cb

B = 2.0 ** np.arange(5, 15)  # 32 ... 16384


def curve(b, s_min=5000.0, b_crit=1000.0):
    return s_min * (1 + b_crit / np.asarray(b, dtype=float))


@pytest.mark.parametrize("b_crit", [300.0, 1000.0, 3000.0])  # inside the measured 32 ... 16384
def test_fit_recovers_b_crit_of_noisy_data_within_5_percent(b_crit):
    rng = np.random.default_rng(int(b_crit))
    for _ in range(10):  # ten independent noisy studies: 8 seeds per B, 5 % multiplicative noise each
        steps = curve(B, 3000, b_crit) * np.exp(rng.normal(0, 0.05, (8, len(B))).mean(0))
        f = cb.fit(B, steps)
        assert f.identified and abs(f.b_crit / b_crit - 1) < 0.05
        assert abs(f.s_min / 3000 - 1) < 0.05


def test_exact_curve_and_examples_form():
    f = cb.fit(B, curve(B))
    assert f.b_crit == pytest.approx(1000, rel=1e-6) and f.s_min == pytest.approx(5000, rel=1e-6)
    assert f.rmse_log < 1e-6 and f.e_min == pytest.approx(5e6, rel=1e-6)
    # McCandlish Eq. 2.11, the examples form: E(B) = E_min (1 + B / B_crit)
    assert f.examples(B) == pytest.approx(5e6 * (1 + B / 1000), rel=1e-6)


def test_missing_points_are_dropped_and_vectorised_fit_agrees():
    steps = list(curve(B))
    steps[3], steps[-1] = None, math.inf
    assert cb.fit(B, steps).b_crit == pytest.approx(1000, rel=1e-6)
    rng = np.random.default_rng(0)
    y = np.log(curve(B))[None, :] + rng.normal(0, 0.1, (20, len(B)))
    log_bc, log_smin = cb.fit_many(B, y)
    for row, lb, ls in zip(y, log_bc, log_smin):
        f = cb.fit(B, np.exp(row))
        assert lb == pytest.approx(math.log(f.b_crit), abs=2e-3) and ls == pytest.approx(math.log(f.s_min), abs=2e-3)


def test_no_bend_means_not_identified():
    assert cb.fit(B, 1e6 / B).bound == "above"  # perfect scaling throughout: B_crit beyond the range
    f = cb.fit(B, np.full(len(B), 300.0))
    assert f.bound == "below" and not f.identified  # flat: already at maximal data parallelism
    with pytest.raises(ValueError):
        cb.fit([64, 64], [10, 12])


def test_overhead_critical_batch_measured_and_from_fit():
    # from the model: R(B) = (B + B_crit)/(B_0 + B_crit) = 1.2  <=>  B = 1.2 B_0 + 0.2 B_crit
    expected = 1.2 * 32 + 0.2 * 1000
    f = cb.fit(B, curve(B))
    assert cb.overhead_critical_batch_from_fit(f, 32) == pytest.approx(expected, rel=1e-6)
    dense = 2.0 ** np.arange(5, 14.01, 0.125)  # a fine grid: log-log interpolation is then exact enough
    assert cb.overhead_critical_batch(dense, curve(dense)) == pytest.approx(expected, rel=0.01)
    # hand-made: S = 1000, 500, 300 at 1, 2, 4 -> R = 1, 1, 1.2 : the crossing is exactly at B = 4
    assert cb.overhead_critical_batch([1, 2, 4], [1000, 500, 300]) == pytest.approx(4)
    # R = 1, 1.44 at B = 1, 2: log R crosses log 1.2 half way in log B -> sqrt(2)
    assert cb.overhead_critical_batch([1, 2], [1000, 720]) == pytest.approx(math.sqrt(2))
    assert cb.overhead_critical_batch(B, 1e6 / B) is None  # never 20 % over perfect scaling


def test_regimes_follow_the_local_slope():
    r = cb.regimes([32, 64, 128, 256], [1000, 500, 350, 340])
    assert [x["regime"] for x in r] == ["perfect scaling", "diminishing returns", "maximal data parallelism"]
    assert r[0]["slope"] == pytest.approx(1.0) and r[0]["speedup_per_doubling"] == pytest.approx(2.0)
    # on the model curve the cuts sit at B_crit / 4 and 4 B_crit
    lab = cb.regimes(B, curve(B, b_crit=1024.0))
    for x in lab:
        mid = math.sqrt(x["from"] * x["to"])
        if mid * 1.5 < 1024 / 4:
            assert x["regime"] == "perfect scaling"
        elif mid > 1.5 * 4 * 1024:
            assert x["regime"] == "maximal data parallelism"


def test_fitted_regimes_sit_where_the_model_slope_crosses_the_cuts():
    cuts = cb.fitted_regimes(1000.0)
    assert cuts == {"perfect_below": pytest.approx(250.0), "maximal_above": pytest.approx(4000.0)}
    for b, name in ((64, "perfect scaling"), (1000, "diminishing returns"), (8192, "maximal data parallelism")):
        assert cb.regime_of(b, 1000.0) == name
        slope = 1000.0 / (b + 1000.0)  # the model's −dlog S/dlog B
        assert (slope >= cb.PERFECT_SLOPE) == (name == "perfect scaling")
        assert (slope <= cb.MAXIMAL_SLOPE) == (name == "maximal data parallelism")


def test_the_asymptote_overhead_batch_is_a_fifth_of_b_crit_on_the_model():
    f = cb.fit([64, 256, 1024, 4096], [300 * (1 + 1000 / b) for b in (64, 256, 1024, 4096)])
    b20 = cb.overhead_batch_asymptote(f)
    # at B*, S_fit is 20 % above the perfect-scaling asymptote S_min·B_crit/B
    assert f.steps(b20) / (f.s_min * f.b_crit / b20) == pytest.approx(1.2)
