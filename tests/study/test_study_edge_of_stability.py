"""lbbench.study.edge_of_stability: second halves, arms, statistics and verdicts on fabricated results
with known answers (tests/_eos_fakes.py)."""

import pytest
from _eos_fakes import FIRST, fake_results

from lbbench.study import edge_of_stability as eos


@pytest.fixture()
def results():
    return fake_results()


def test_second_half_excludes_the_midpoint(results):
    assert eos.second_half(results["gd_lr0p1"], "lambda_max_ratio").tolist() == [1.0, 1.1, 1.3, 0.9, 0.75]
    assert eos.second_half(results["gd_lr0p1"], "lambda_max_ratio", first=True).tolist() == FIRST
    r = dict(results["gd_lr0p1"], timing={})  # no timing: T is the last tracked step
    assert eos.total_steps(r) == 100


def test_arms(results):
    arms = {k: eos.arm_of(r) for k, r in results.items()}
    assert arms == {
        "gd_lr0p1": "gd",
        "gd_lr0p2": "gd",
        "sgd_b20": "sgd",
        "sgd_b100": "sgd",
        "adam_lr0p01": "adam",
        "gd_mse_lr0p2": "gd_mse",
        "gd_mse_lr0p3": "gd_mse",
        "sgd_mse_b20": None,
        "other": None,
    }
    assert eos.loss_of(results["gd_lr0p1"]) == "cross_entropy"  # written before --loss: no key


def test_summary_known_answers(results):
    s = eos.summarize(results)
    gd = {r["run"]: r for r in s["gd"]}
    assert gd["gd_lr0p1"]["frac_within_band"] == pytest.approx(3 / 5)
    assert gd["gd_lr0p1"]["median_ratio"] == pytest.approx(1.0)
    assert gd["gd_lr0p1"]["min_ratio"] == 0.75 and gd["gd_lr0p1"]["max_ratio"] == 1.3
    assert gd["gd_lr0p1"]["stayed_within_band"] is False and gd["gd_lr0p1"]["hovers_within_band"] is False
    assert gd["gd_lr0p1"]["two_over_eta"] == pytest.approx(20.0)
    assert gd["gd_lr0p2"]["n_second_half"] == 4
    assert gd["gd_lr0p2"]["stayed_within_band"] is True and gd["gd_lr0p2"]["hovers_within_band"] is True
    assert gd["gd_lr0p2"]["median_batch_sharpness_ratio"] == pytest.approx(1.0)
    sgd = {r["batch_size"]: r for r in s["sgd"]}
    assert sorted(sgd) == [20, 100, 400]  # the CE GD run at the SGD rate is the B = subset end; MSE is not
    assert sgd[400]["run"] == "gd_lr0p2"
    assert sgd[20]["median_batch_sharpness_ratio"] == pytest.approx(1.0)
    assert sgd[20]["frac_batch_sharpness_within_band"] == pytest.approx(4 / 5)
    assert sgd[20]["median_lambda_max"] == pytest.approx(4.0)
    assert sgd[100]["median_lambda_max"] == pytest.approx(8.0)
    assert sgd[400]["median_lambda_max"] == pytest.approx(10.5)
    assert sgd[20]["first_half_median_lambda_max"] == pytest.approx(0.3)  # FIRST, steps 10..50
    assert sgd[20]["first_half_median_batch_sharpness_ratio"] == pytest.approx(0.3)
    assert sgd[20]["steps"] == 100
    assert s["lambda_max_falls_as_batch_shrinks"] == {"0.2": True}
    (adam,) = s["adam"]
    assert adam["threshold"] == pytest.approx(3800.0)
    assert adam["median_preconditioned_ratio"] == pytest.approx(1.0)
    assert adam["frac_within_band"] == pytest.approx(3 / 5)
    assert adam["peak_ratio"] == 5.0 and adam["peak_step"] == 50  # over the whole run


def test_mse_rows_and_verdicts(results):
    s = eos.summarize(results)
    mse = {r["lr"]: r for r in s["gd_mse"]}
    assert sorted(mse) == [0.2, 0.3] and all(r["loss"] == "mse" for r in mse.values())
    assert mse[0.2]["frac_within_band"] == pytest.approx(4 / 5) and mse[0.2]["median_ratio"] == pytest.approx(1.05)
    assert mse[0.2]["hovers_within_band"] is True and mse[0.2]["stayed_within_band"] is False
    assert mse[0.3]["frac_within_band"] == pytest.approx(3 / 5) and mse[0.3]["median_ratio"] == pytest.approx(1.2)
    assert mse[0.3]["hovers_within_band"] is False
    assert (mse[0.3]["min_ratio"], mse[0.3]["max_ratio"], mse[0.3]["two_over_eta"]) == (1.0, 1.4, pytest.approx(20 / 3))
    assert s["conclusions"][:3] == [
        "Full-batch GD, MSE, η = 0.2: within ±20 % of 2/η over the second half: yes "
        "(80 % of 5 measurements; median λ_max/(2/η) 1.05, range 0.95–1.50).",
        "Full-batch GD, MSE, η = 0.3: within ±20 % of 2/η over the second half: no "
        "(60 % of 5 measurements; median λ_max/(2/η) 1.20, range 1.00–1.40).",
        "MSE: λ_max hovered within ±20 % of 2/η (at least 80 % of the second half) at 1 of 2 learning rates.",
    ]
    assert s["conclusions"][-1].startswith("cross-entropy: λ_max hovered") and "at 1 of 2" in s["conclusions"][-1]


def test_falls_detects_a_rise(results):
    results["sgd_b20"]["curvature"]["lambda_max"] = FIRST + [20] * 5
    assert eos.summarize(results)["lambda_max_falls_as_batch_shrinks"] == {"0.2": False}


def test_runs_without_curvature_have_no_statistics_and_say_so(results):
    results["gd_mse_lr0p3"] = dict(results["gd_mse_lr0p3"], status="diverged", curvature={})
    s = eos.summarize(results)
    row = next(r for r in s["gd_mse"] if r["run"] == "gd_mse_lr0p3")
    assert row["n_second_half"] == 0 and row["frac_within_band"] is None and row["hovers_within_band"] is None
    assert "η = 0.3: no measurements in the second half (diverged)." in s["conclusions"][1]
