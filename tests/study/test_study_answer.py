"""The answer table and the steps summary on fabricated results with known winners."""

import math

import pytest
from _study_fakes import fake_result, model_curve

from lbbench.report import figures, study_figures
from lbbench.study import answer, bootstrap


def test_best_trial_is_chosen_on_the_tuning_seed_and_averaged_over_reruns():
    res = {
        "a_s0": fake_result(64, [0.5, 0.90], lr=0.1),
        "b_s0": fake_result(64, [0.5, 0.88], lr=0.2),
        "a_s1": fake_result(64, [0.5, 0.85], lr=0.1, seed=1),
        "a_s2": fake_result(64, [0.5, 0.86], lr=0.1, seed=2),
        "a_s3": fake_result(64, [0.5, 0.87], lr=0.1, seed=3),
        "b_s1": fake_result(64, [0.5, 0.99], lr=0.2, seed=1),
    }  # a lucky re-run does not change the choice
    (row,) = answer.answer_rows(res, epoch_budget=2, step_budget=2000)
    assert row["trials"] == 2
    ep = row["epochs"]
    assert ep["best"] == "a_s0" and ep["config"]["learning_rate"] == 0.1 and not ep["selection_only"]
    acc = ep["accuracy"]
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(0.86)  # re-runs only: 0.85, 0.86, 0.87
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t_{0.975, 2} s / sqrt(n)
    assert acc["low"] == pytest.approx(0.86 - half) and acc["high"] == pytest.approx(0.86 + half)


def test_diverged_trials_are_counted_never_chosen_and_budgets_differ():
    spe = 60000 // 256  # 234 steps per epoch
    res = {
        "fast": fake_result(256, [0.80, 0.81, 0.82, 0.83], lr=0.3),
        "slow": fake_result(256, [0.60, 0.70, 0.80, 0.95], lr=0.05),
        "div": fake_result(256, [0.99, 0.99, 0.99, 0.99], lr=3.0, status="diverged"),
        "dead": fake_result(256, [0.10, 0.11, 0.12, 0.13], lr=1e-5),
    }
    (row,) = answer.answer_rows(res, epoch_budget=4, step_budget=2 * spe)
    assert row["diverged"] == 1 and row["no_learn"] == 1 and row["trials"] == 4
    assert row["epochs"]["best"] == "slow" and row["epochs"]["accuracy"]["mean"] == 0.95
    assert row["steps"]["best"] == "fast" and row["steps"]["accuracy"]["mean"] == 0.81
    assert row["epochs"]["selection_only"] and row["epochs"]["accuracy"]["low"] is None
    assert row["lambda_max"] == 10.0 and row["epsilon_key"] == "full_0.0005" and row["epsilon_sharpness"] == 2.5
    md = answer.answer_markdown([row])
    assert "| 256 | 4 (1 / 1 / 0) | 0.9500 (n=1, selection run only)" in md and "@ 4 epochs" in md


def test_a_step_budget_inside_the_first_epoch_says_so():
    res = {"x": fake_result(32, [0.5, 0.6])}
    (row,) = answer.answer_rows(res, epoch_budget=2, step_budget=100)  # first evaluation at step 1875
    assert row["steps"]["best"] is None
    assert "no evaluation inside the budget" in answer.answer_markdown([row])
    assert answer.common_budgets({"a": fake_result(32, [0.5, 0.6]), "b": fake_result(4096, [0.5] * 3)}) == {
        "epochs": 2,
        "steps": 3 * (60000 // 4096),
    }


def test_steps_summary_picks_fewest_steps_and_reads_b_simple_at_the_crossing():
    res = {
        "b128_t0": fake_result(128, [0.5, 0.72, 0.8], lr=0.1, noise=[100.0, 300.0, 500.0], b_simple=500.0),
        "b128_t1": fake_result(128, [0.71, 0.75, 0.8], lr=0.2, noise=[150.0, 350.0, 550.0], b_simple=550.0),
        "b128_t1_s1": fake_result(128, [0.6, 0.71, 0.8], lr=0.2, seed=1, noise=[1.0, 2.0, 3.0], b_simple=7.0),
        "b128_t1_s2": fake_result(128, [0.72, 0.9, 0.9], lr=0.2, seed=2, noise=[4.0, 5.0, 6.0], b_simple=9.0),
        "b512_t0": fake_result(512, [0.1, 0.2, 0.3], lr=0.1),
    }
    s128, s512 = answer.steps_summary(res, 0.7)
    spe = 60000 // 128
    # crossings interpolated between evaluations: t0 0.5 → 0.72 over the second epoch, t1 at its first one
    assert s128["best"] == "b128_t1" and s128["tuning_steps"] == pytest.approx(
        {"b128_t0": spe + spe * 0.2 / 0.22, "b128_t1": spe}
    )
    assert s128["seed_steps"] == pytest.approx([spe + spe * 0.1 / 0.11, spe]) and s128["selection_only"] is False
    assert s128["b_simple_at_target"] == pytest.approx(3.0) and s128["b_simple_final"] == pytest.approx(8.0)
    assert s512["best"] is None and s512["tuning_steps"] == {"b512_t0": None}


def test_figures_render(tmp_path):
    res = {f"b{b}": fake_result(b, model_curve(b, 30), noise=[200.0] * 30) for b in (64, 256, 1024, 4096)}
    summ = answer.steps_summary(res, 0.7)
    ci = bootstrap.residual_fit_ci({r["arm"]: r["tuning_steps"][f"b{r['arm']}"] for r in summ})
    figures.save(study_figures.steps_figure(summ, ci, target=0.7, b_simple=200.0), str(tmp_path / "s.png"))
    figures.save(study_figures.accuracy_figure(answer.answer_rows(res)), str(tmp_path / "a.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000 and (tmp_path / "a.png").stat().st_size > 1000


def test_no_effect_flags_different_settings_with_identical_histories():
    a = fake_result(1024, [0.3, 0.4], lr=0.1, beta2=0.99, beta2_scaling="none")
    b = fake_result(1024, [0.3, 0.4], lr=0.1, beta2=0.99, beta2_scaling="half_life")
    c = fake_result(1024, [0.3, 0.4], lr=0.1, seed=1, beta2=0.99, beta2_scaling="none")  # other seed: fine
    d = fake_result(1024, [0.3, 0.41], lr=0.2)
    res = {"a": a, "b": b, "c": c, "d": d}
    assert answer.no_effect(res) == [("a", "b")]
    assert "differ in beta2_scaling" in answer.no_effect_markdown(answer.no_effect(res), res)
    assert answer.no_effect({"a": a, "c": c, "d": d}) == []


def test_winners_are_chosen_on_validation_and_report_test_at_the_budget_end():
    """The test set never picks the winner, and the reported number is the checkpoint, not the best look."""
    res = {
        # a: better on validation, worse on test; b: the reverse. Validation decides.
        "a_s0": fake_result(64, [0.5, 0.80], val=[0.5, 0.90], lr=0.1),
        "b_s0": fake_result(64, [0.5, 0.95], val=[0.5, 0.85], lr=0.2),
        # a's re-runs: test peaks mid-run (0.93) and ends lower (0.84 / 0.86): the end is reported
        "a_s1": fake_result(64, [0.93, 0.84], val=[0.9, 0.88], lr=0.1, seed=1),
        "a_s2": fake_result(64, [0.93, 0.86], val=[0.9, 0.88], lr=0.1, seed=2),
    }
    (row,) = answer.answer_rows(res, epoch_budget=2, step_budget=10**6)
    ep = row["epochs"]
    assert ep["best"] == "a_s0" and ep["selected_on"] == 0.90
    assert ep["values"] == [0.84, 0.86] and ep["val_values"] == [0.88, 0.88]
    assert ep["accuracy"]["mean"] == pytest.approx(0.85)


def test_effective_k_counts_diverged_never_learned_and_collapsed_trials():
    res = {
        "ok": fake_result(256, [0.5, 0.8, 0.9], lr=0.1),
        "div": fake_result(256, [0.5, 0.5, 0.5], status="diverged", lr=0.2),
        "flat": fake_result(256, [0.10, 0.12, 0.14], lr=0.3),  # never 5 points above chance (0.1)
        "fell": fake_result(256, [0.6, 0.3, 0.12], lr=0.4),  # learned, then back to chance: collapsed
    }
    (row,) = answer.answer_rows(res, epoch_budget=3, step_budget=None)
    assert (row["diverged"], row["no_learn"], row["collapsed"], row["effective"]) == (1, 1, 1, 1)
    assert "| 256 | 4 (1 / 1 / 1) |" in answer.answer_markdown([row])


def test_a_split_arm_reports_its_success_rate_not_a_t_interval():
    res = {"t_s0": fake_result(64, [0.5, 0.9], lr=0.1)}
    for seed, final in zip(range(1, 5), (0.9, 0.92, 0.1, 0.11)):  # two seeds learn, two stay at chance
        res[f"t_s{seed}"] = fake_result(64, [0.5, final], lr=0.1, seed=seed)
    (row,) = answer.answer_rows(res, epoch_budget=2, step_budget=None)
    split = row["epochs"]["split"]
    assert split["bimodal"] and (split["successes"], split["n"]) == (2, 4)
    assert split["accuracy_of_successes"]["mean"] == pytest.approx(0.91)
    assert 0.0 <= row["epochs"]["accuracy"]["low"] and row["epochs"]["accuracy"]["high"] <= 1.0  # clipped
    assert "split: 2/4 seeds learned" in answer.answer_markdown([row])


def test_expected_best_of_k_equals_brute_force_over_all_draws():
    """Dodge et al.'s closed form against enumerating every k-tuple drawn with replacement."""
    import itertools

    values = [0.8, None, 0.9, 0.85, 0.1]
    scored = [0.0 if v is None else v for v in values]  # a trial without a value found nothing
    for k in range(1, 5):
        draws = list(itertools.product(scored, repeat=k))
        brute = sum(max(d) for d in draws) / len(draws)
        assert answer.expected_best_of_k(values, k) == pytest.approx(brute)
    curve = answer.tuning_curve(values)
    assert len(curve) == 5 and curve == sorted(curve) and curve[0] == pytest.approx(sum(scored) / 5)


def test_tuning_table_flags_a_winner_at_the_edge_of_its_range():
    from lbbench.study.search import Dim, SearchSpace

    space = SearchSpace((Dim("learning_rate", 1e-3, 1.0, "log"), Dim("momentum", 0.5, 0.99, "log1m")))
    res = {
        "edge": fake_result(64, [0.5, 0.9], lr=0.9, momentum=0.8),  # lr at 98 % of its log range
        "mid": fake_result(64, [0.5, 0.8], lr=0.03, momentum=0.8),
    }
    rows = answer.answer_rows(res, epoch_budget=2, step_budget=None)
    md = answer.tuning_markdown(rows, res, lambda arm: space)
    assert "learning_rate (high)" in md and "momentum" not in md.split("|")[-2]
    assert answer.tuning_markdown(rows, res, lambda arm: None).count("| no |") == 1


def test_a_fixed_configuration_that_diverged_at_the_tuning_seed_is_still_reported_over_seeds():
    """A transfer is one configuration: nothing is selected, so a divergence at seed 0 must not hide its
    re-runs (some seeds may train); a split arm then gets no t-test verdict."""
    from lbbench.study import compare, protocol

    res = {"x": fake_result(64, [0.5, 0.5], status="diverged", lr=5.0)}
    assert protocol.winners(res, lambda cfg: "arm", epoch_budget=2) == {"arm": {"x"}}
    res.update(
        {
            "x_s1": fake_result(64, [0.5, 0.9], lr=5.0, seed=1),
            "x_s2": fake_result(64, [0.5, 0.5], lr=5.0, seed=2, status="diverged"),
            "r_s0": fake_result(64, [0.5, 0.9], lr=0.1, batch_size_tag=1),
            "r_s1": fake_result(64, [0.5, 0.91], lr=0.1, seed=1, batch_size_tag=1),
            "r_s2": fake_result(64, [0.5, 0.92], lr=0.1, seed=2, batch_size_tag=1),
        }
    )
    by_arm = {
        r["arm"]: r
        for r in answer.answer_rows(
            res,
            epoch_budget=2,
            step_budget=None,
            arm=lambda c: c["run_name"] or ("r" if c.get("batch_size_tag") else "x"),
        )
    }
    cell = by_arm["x"]["epochs"]
    assert (
        cell["best"] == "x" and cell["split"]["bimodal"] and (cell["split"]["successes"], cell["split"]["n"]) == (1, 2)
    )
    d = compare.judge({"x − r": compare.difference(by_arm, "x", "r")})["x − r"]
    assert d["split"] and d["verdict"] is None
