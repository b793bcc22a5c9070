"""The one verdict rule, Holm's correction and Wilson's interval against hand computations and closed forms."""

import math

import numpy as np
import pytest
from scipy import stats

from lbbench.study import bootstrap, verdicts

M = verdicts.MARGIN


@pytest.mark.parametrize(
    "low, high, expected",
    [
        # both ends below −m / straddling −m / between −m and 0 / straddling 0 / above 0 / above +m
        (-0.05, -0.03, "worse"),  # entirely below −margin
        (-0.05, -0.005, "inconclusive"),  # straddles −margin, ends below 0
        (-0.05, 0.02, "inconclusive"),  # straddles −margin and 0
        (-0.008, -0.002, "non-inferior"),  # between −margin and 0: a deficit smaller than the margin
        (-0.008, 0.004, "non-inferior"),  # straddles 0 above −margin
        (0.002, 0.03, "non-inferior"),  # above 0 but not above +margin
        (0.005, 0.008, "non-inferior"),  # above 0, below +margin
        (0.02, 0.05, "better"),  # entirely above +margin
        (-M, 0.0, "inconclusive"),  # touching −margin is not above it
    ],
)
def test_the_rule_on_the_nine_interval_cases(low, high, expected):
    assert verdicts.ci_verdict(low, high) == expected


def test_one_comparison_the_tests_agree_with_the_interval():
    """With a family of one, Holm changes nothing: the verdict is the 95 % interval's."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = rng.normal(0.9, 0.01, 4), rng.normal(0.9 + rng.uniform(-0.03, 0.03), 0.01, 5)
        d = bootstrap.difference_ci(a, b)
        assert verdicts.family({"x": d})["x"]["verdict"] == verdicts.ci_verdict(d["low"], d["high"])


def test_holm_against_a_hand_computed_example():
    # p sorted: 0.01 (×4 = 0.04), 0.015 (×3 = 0.045), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 → monotone 0.06)
    assert verdicts.holm([0.03, 0.01, 0.04, 0.015]) == pytest.approx([0.06, 0.04, 0.06, 0.045])
    assert verdicts.holm([0.5]) == [0.5] and verdicts.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_holm_makes_a_borderline_comparison_inconclusive_in_a_family():
    d = {"diff": 0.0, "low": None, "high": None, "se": 0.004, "df": 6.0}  # p(non-inferior) ≈ 0.02 alone
    alone = verdicts.family({"a": d})["a"]
    assert alone["verdict"] == "non-inferior" and alone["p"] < verdicts.ALPHA
    many = verdicts.family({k: d for k in "abcd"})
    assert all(
        v["verdict"] == "inconclusive" and v["p_holm"] == pytest.approx(min(1, 4 * alone["p"])) for v in many.values()
    )


def test_one_sided_p_values_are_welch_t_tails():
    d = bootstrap.difference_ci([0.90, 0.91, 0.92], [0.89, 0.90, 0.92, 0.93])
    p = verdicts.one_sided(d)
    t = (d["diff"] + M) / d["se"]
    assert p["non-inferior"] == pytest.approx(stats.t.sf(t, d["df"]))
    assert p["worse"] == pytest.approx(1 - p["non-inferior"])


def test_wilson_matches_its_closed_form():
    z = stats.norm.ppf(0.975)
    for k, n in ((0, 5), (2, 4), (4, 8), (8, 8), (3, 10)):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert verdicts.wilson(k, n) == pytest.approx((centre - half, centre + half))


def test_a_split_arm_is_reported_as_a_success_rate():
    s = verdicts.split([0.9, 0.92, 0.1, None], floor=0.15)
    assert (s["successes"], s["n"], s["bimodal"]) == (2, 4, True)
    assert s["accuracy_of_successes"]["mean"] == pytest.approx(0.91)
    assert not verdicts.split([0.9, 0.91], floor=0.15)["bimodal"]


def test_accuracy_intervals_never_leave_zero_one():
    ci = bootstrap.mean_ci([0.99, 0.999, 0.90], bounds=(0.0, 1.0))
    assert 0.0 <= ci["low"] and ci["high"] == 1.0


def test_power_agrees_with_a_simulation_of_the_verdict_rule():
    """At a known spread (σ = 0.01, 8 seeds a side): how often the rule says non-inferior when the arms
    are equal, and says worse at the deficit power() calls detectable, against 4,000 simulated studies."""
    from lbbench.study.bootstrap import difference_ci

    rng = np.random.default_rng(0)
    sigma, n = 0.01, 8
    d = {"se": sigma * np.sqrt(2 / n), "df": 2 * n - 2}
    pw = verdicts.power(d)
    ni, worse = 0, 0
    trials = 4000
    for _ in range(trials):
        a, b = rng.normal(0, sigma, n), rng.normal(0, sigma, n)
        ni += verdicts.family({"x": difference_ci(a, b)})["x"]["verdict"] in ("non-inferior", "better")
        c = rng.normal(-pw["detectable_deficit"], sigma, n)
        worse += verdicts.family({"x": difference_ci(c, b)})["x"]["verdict"] == "worse"
    assert abs(ni / trials - pw["if_equal"]) < 0.05
    assert abs(worse / trials - 0.8) < 0.05
    fewer = verdicts.power({"se": sigma * np.sqrt(2 / 3), "df": 4})  # 3 seeds: weaker on both counts
    assert fewer["if_equal"] < pw["if_equal"] and fewer["detectable_deficit"] > pw["detectable_deficit"]
    assert verdicts.power({"se": None, "df": None}) is None
