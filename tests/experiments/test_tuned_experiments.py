"""experiments/goyal.py, hoffer.py, lars.py (tuned, on the study layer) and the retired shallue.py:
grids, follow-ups and analyze on fabricated results (no training)."""

import json

import numpy as np
import pytest
from _study_fakes import fake_result, run_followups
from _study_fakes import load_experiment as load

from lbbench.config import Config
from lbbench.study import compare
from lbbench.sweep import experiment_file


def fabricator(m, quick, level, noise=0.003, seed=0):
    """fab(point) -> a result whose final test accuracy is level[arm] − 0.01·trial (+ noise on re-runs)."""
    base = m.base_config(quick)
    rng = np.random.default_rng(seed)

    def fab(p):
        cfg = base.replace(**p).validate()
        a = compare.arm_of_run(cfg.to_dict())
        t = int(p["run_name"].split("__t")[1].split("__")[0]) if "__t" in p["run_name"] else 0
        final = level(a) - 0.01 * t + (rng.normal(0, noise) if cfg.seed else 0.0)
        r = fake_result(
            cfg.batch_size,
            [final / 2] * (cfg.epochs - 1) + [final],
            seed=cfg.seed,
            lr=cfg.learning_rate,
            momentum=cfg.momentum,
            optimizer=cfg.optimizer,
        )
        r["config"] = cfg.to_dict()
        return r

    return fab


def check_grid(m, quick):
    pts, base = m.grid(quick), m.base_config(quick)
    assert len({p["run_name"] for p in pts}) == len(pts)
    arms = {}
    for p in pts:
        cfg = base.replace(**p).validate()
        assert not cfg.warnings()
        arms.setdefault(compare.arm_of_run(cfg.to_dict()), []).append(cfg)
    return arms


# ---------------------------------------------------------------------------- goyal


@pytest.mark.parametrize("quick", [True, False])
def test_goyal_grid_tunes_the_base_and_every_large_batch_with_the_same_budget(quick):
    m = load("goyal")
    arms = check_grid(m, quick)
    assert set(arms) == {"base_b256"} | {f"tuned_b{b}" for b in m.sizes(quick)}
    assert len({len(v) for v in arms.values()}) == 1 and len(arms["base_b256"]) == (2 if quick else 8)
    # paired: the same unit Sobol points at every batch size
    lrs = {a: [c.learning_rate for c in v] for a, v in arms.items()}
    assert all(v == lrs["base_b256"] for v in lrs.values())
    assert all(c.schedule == "warmup_step" and c.epochs == m.epochs(quick) for v in arms.values() for c in v)


def test_goyal_transfers_reruns_and_decomposition(tmp_path):
    m = load("goyal")
    # the rule holds to 1024; at 4096 it loses 0.3 without warmup, 0.1 with; tuning at B loses only 0.02
    total = {512: (0.0, 0.0), 1024: (0.0, 0.0), 2048: (0.05, 0.01), 4096: (0.3, 0.1), 8192: (0.8, 0.5)}

    def level(a):
        if a == "base_b256":
            return 0.93
        kind, b = a.rsplit("_b", 1)
        if kind == "tuned":
            return 0.93 - (0.02 if int(b) >= 4096 else 0.0)
        return 0.93 - total[int(b)][0 if kind == "linear" else 1]

    fab = fabricator(m, False, level, noise=0.001)  # "no gap" must be provable within the 1-point margin
    results = {p["run_name"]: fab(p) for p in m.grid(False)}
    assert run_followups(m, results, fab) == 2  # transfers + seeds of tuned winners; then the transfers' seeds
    transfers = {k: r["config"] for k, r in results.items() if k.startswith("linear")}
    assert len(transfers) == 10 + 30
    best = results["base_b256__t0"]["config"]  # trial 0 wins every tuned arm
    for b in m.LARGE:
        t, w = transfers[f"linear_b{b}"], transfers[f"linear_warmup_b{b}"]
        assert t["learning_rate"] == w["learning_rate"] == best["learning_rate"]
        assert t["momentum"] == best["momentum"] and t["weight_decay"] == best["weight_decay"]
        assert t["lr_scaling"] == "linear" and t["warmup_epochs"] == 0 and w["warmup_epochs"] == m.WARMUP_EPOCHS
        assert Config.from_dict(t).scaled_learning_rate == pytest.approx(best["learning_rate"] * b / 256)
    assert {k for k in results if "__s" in k} == {
        f"{a}__s{s}"
        for s in (1, 2, 3)
        for a in ["base_b256__t0"]
        + [f"tuned_b{b}__t0" for b in m.LARGE]
        + [f"linear_b{b}" for b in m.LARGE]
        + [f"linear_warmup_b{b}" for b in m.LARGE]
    }
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    assert s["reference_accuracy"] == pytest.approx(0.93, abs=0.01)
    assert s["rule_holds_up_to"] == 1024 and s["tuning_holds_up_to"] == 2048
    dec = {d["batch_size"]: d for d in out["goyal"]["decomposition"]}
    assert dec[4096]["total_no_warmup"]["diff"] == pytest.approx(-0.3, abs=0.01)
    assert dec[4096]["batch"]["diff"] == pytest.approx(-0.02, abs=0.01)
    assert dec[4096]["protocol_warmup"]["diff"] == pytest.approx(-0.08, abs=0.01)
    assert dec[4096]["warmup_effect"]["diff"] == pytest.approx(0.2, abs=0.01)
    assert s["verdicts"]["protocol_no_warmup"][8192] == "worse"
    md = (tmp_path / "answer.md").read_text()
    assert "| tuned_b8192 | 8 (0 / 0 / 0) |" in md and "| linear_b4096 | 1 (0 / 0 / 0) |" in md
    assert "### tuned at B − tuned 256 (batch)" in md and "| B=4096 |" in md
    assert s["conclusions"] == m.conclusions(json.loads(json.dumps(s))) and s["conclusions"][-1] in md
    assert "holds (non-inferior at every B up to it) up to B = 1024" in s["conclusions"][-1]
    win = out["goyal"]["winners"]
    assert win["linear_b8192"]["learning_rate"] == pytest.approx(32 * best["learning_rate"])
    assert win["tuned_b1024"]["learning_rate"] == pytest.approx(2 * best["learning_rate"])  # sqrt-centred space
    assert s["tuned_lr"][256] == pytest.approx(best["learning_rate"]) and set(s["tuned_lr"]) == {256, *m.LARGE}
    assert "| linear_b8192 | 8192 | momentum |" in md and "learning rate trained at" in md
    assert (tmp_path / "goyal.png").exists() and (tmp_path / "goyal.json").exists()


# ---------------------------------------------------------------------------- hoffer


@pytest.mark.parametrize("quick", [True, False])
def test_hoffer_grid_tunes_every_arm_with_the_same_budget(quick):
    m = load("hoffer")
    arms = check_grid(m, quick)
    assert set(arms) == set(m.arms(quick)) and "lb_gbn_long" in arms
    assert len({len(v) for v in arms.values()}) == 1 and len(arms["sb"]) == (2 if quick else 8)
    long = arms["lb_gbn_long"][0]
    assert long.ghost_batch_size == m.GHOST and long.epochs == (2 if quick else 4) * m.epochs(quick)
    assert all(c.warmup_epochs <= 0.2 * c.epochs + 1e-9 for v in arms.values() for c in v)


def test_hoffer_transfers_reruns_and_gap_table(tmp_path):
    m = load("hoffer")
    level = {
        "sb": 0.96,
        "lb": 0.92,
        "lb_gbn": 0.94,
        "lb_gbn_long": 0.959,
        "lb_transfer": 0.80,
        "lb_sqrt_transfer": 0.90,
        "lb_gbn_sqrt_transfer": 0.93,
        "lb_gbn_sqrt_long_transfer": 0.95,
    }
    fab = fabricator(m, False, level.get)
    results = {p["run_name"]: fab(p) for p in m.grid(False)}
    assert run_followups(m, results, fab) == 2
    best = results["sb__t0"]["config"]
    t = {k: results[k]["config"] for k in m.transfers(False)}
    assert t["lb_transfer"]["learning_rate"] == best["learning_rate"] and t["lb_transfer"]["lr_scaling"] == "none"
    assert Config.from_dict(t["lb_sqrt_transfer"]).scaled_learning_rate == pytest.approx(4 * best["learning_rate"])
    assert t["lb_gbn_sqrt_long_transfer"]["epochs"] == 40 and t["lb_gbn_sqrt_transfer"]["ghost_batch_size"] == 128
    reruns = [k for k in results if "__s" in k]
    assert len(reruns) == 8 * 3 and all(results[k]["config"]["sharpness"] for k in reruns)
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    assert s["reference_accuracy"] == pytest.approx(0.96, abs=0.005)
    assert s["arms_closing_gap"] == ["lb_gbn_long"]  # 0.959 vs 0.96 with 3 seeds each: CI reaches 0
    assert s["gap"]["lb_transfer"] == pytest.approx(-0.16, abs=0.01)
    rows = {r["arm"]: r for r in out["hoffer"]["answer"]}
    assert rows["lb_gbn_long"]["epochs"]["budget"] == 40 and rows["lb"]["epochs"]["budget"] == 10
    md = (tmp_path / "answer.md").read_text()
    assert md.count("Does accuracy degrade") == 2 and "| lb_gbn_long | 8 (0 / 0 / 0) |" in md
    assert "lb_gbn_sqrt_long_transfer − sb" in md
    win = out["hoffer"]["winners"]
    assert win["lb_sqrt_transfer"]["learning_rate"] == pytest.approx(4 * best["learning_rate"])
    assert win["lb_transfer"]["learning_rate"] == pytest.approx(best["learning_rate"])
    assert (tmp_path / "hoffer.png").exists() and (tmp_path / "hoffer.json").exists()


# ---------------------------------------------------------------------------- lars


@pytest.mark.parametrize("quick", [True, False])
def test_lars_grid_tunes_every_optimizer_and_batch_and_keeps_the_old_recipes(quick):
    m = load("lars")
    arms = check_grid(m, quick)
    tuned = {"momentum_b256"} | {f"{o}_b{b}" for o in m.optimizers(quick) for b in m.sizes(quick)}
    recipes = {f"{o}_b{m.sizes(quick)[-1]}_recipe" for o in m.optimizers(quick)}
    assert set(arms) == tuned | recipes
    assert {len(arms[a]) for a in tuned} == {2 if quick else 8} and {len(arms[a]) for a in recipes} == {1}
    assert all(c.schedule == "warmup_cosine" for v in arms.values() for c in v)
    if not quick:
        r = arms["lars_b8192_recipe"][0]
        assert (r.scaled_learning_rate, r.trust_coefficient, r.warmup_epochs) == (10.0, 1e-3, 2.0)
        assert arms["momentum_b8192_recipe"][0].scaled_learning_rate == pytest.approx(3.2)


def test_lars_reruns_gap_and_tuned_vs_recipe(tmp_path):
    m = load("lars")
    level = {
        "momentum_b256": 0.93,
        "momentum_b2048": 0.92,
        "lars_b2048": 0.925,
        "lamb_b2048": 0.92,
        "momentum_b8192": 0.85,
        "lars_b8192": 0.928,
        "lamb_b8192": 0.90,
        "momentum_b8192_recipe": 0.13,
        "lars_b8192_recipe": 0.82,
        "lamb_b8192_recipe": 0.69,
    }
    fab = fabricator(m, False, level.get, noise=0.001)  # lars_b8192 ties within the 1-point margin
    results = {p["run_name"]: fab(p) for p in m.grid(False)}
    assert run_followups(m, results, fab) == 1
    assert len([k for k in results if "__s" in k]) == 10 * 3
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    assert s["tuned_minus_recipe"]["momentum"] == pytest.approx(0.72, abs=0.01)
    assert s["tuned_minus_recipe"]["lamb"] == pytest.approx(0.21, abs=0.01)
    assert "lars_b8192" in s["arms_closing_gap"] and "momentum_b8192" not in s["arms_closing_gap"]
    md = (tmp_path / "answer.md").read_text()
    assert "| lamb_b8192_recipe | 1 (0 / 0 / 0) |" in md and "momentum: tuned − recipe" in md
    assert s["conclusions"] == m.conclusions(json.loads(json.dumps(s))) and s["conclusions"][0] in md
    assert out["lars"]["winners"]["momentum_b8192_recipe"]["learning_rate"] == pytest.approx(3.2)
    assert "| lamb_b8192_recipe | 8192 | lamb | 0.01 | 0.01 (none) | 0.9 | 0.999 |" in md
    assert (tmp_path / "lars.png").exists() and (tmp_path / "lars.json").exists()


# ---------------------------------------------------------------------------- all three, quick mode


@pytest.mark.parametrize("name", ["goyal", "hoffer", "lars"])
def test_quick_mode_followups_terminate_and_analyze_writes_its_files(name, tmp_path):
    m = load(name)
    fab = fabricator(m, True, lambda a: 0.5 + 0.01 * len(a), noise=0.0)
    results = {p["run_name"]: fab(p) for p in m.grid(True)}
    assert 1 <= run_followups(m, results, fab, quick=True) <= 2
    assert all(results[k]["config"]["seed"] == 1 for k in results if "__s" in k)
    out = m.analyze(str(tmp_path), results, True)
    assert "summary" in out and (tmp_path / "answer.md").exists() and (tmp_path / f"{name}.png").exists()
    assert "needs ≥ 2 seeds each" in (tmp_path / "answer.md").read_text()  # one re-run seed: no CI, no verdict


def test_compare_differences_and_their_verdicts():
    row = lambda vals: {"epochs": {"best": "x", "values": vals}}  # noqa: E731
    by_arm = {
        "ref": row([0.90, 0.91, 0.92]),
        "same": row([0.905, 0.915, 0.91]),
        "worse": row([0.80, 0.81, 0.805]),
        "better": row([0.95, 0.96, 0.955]),
        "one": row([0.9]),
        "none": {"epochs": {"best": None}},
    }
    judged = compare.judge({k: compare.difference(by_arm, k, "ref") for k in ("same", "worse", "better", "one")})
    assert judged["worse"]["verdict"] == "worse" and judged["better"]["verdict"] == "better"
    assert judged["same"]["verdict"] == "inconclusive"  # 3 seeds: the CI is wider than the 1-point margin
    assert compare.closes_gap(judged["better"]) is True and compare.closes_gap(judged["worse"]) is False
    assert (
        judged["one"]["low"] is None and judged["one"]["verdict"] is None and compare.closes_gap(judged["one"]) is None
    )
    assert compare.difference(by_arm, "none", "ref") is None and compare.difference(by_arm, "missing", "ref") is None
    assert compare.arm_of_run({"run_name": "lars_b8192__t3__s2"}) == "lars_b8192"
    sentence = compare.verdict_sentence("X", judged)
    assert sentence == (
        "X: non-inferior or better: better; worse: worse; inconclusive: same; "
        f"{compare.NO_VERDICT}: one (margin 0.01, Holm over 3 comparisons)."
    )


def test_shallue_is_retired_with_a_pointer():
    with pytest.raises(experiment_file.SweepError, match="retired: .*experiments/critical_batch.py"):
        experiment_file.load_experiment("shallue")


def test_a_ci_that_contains_zero_is_not_a_closed_gap():
    """One seed of three trained: the CI straddles −margin, so the verdict is inconclusive, not 'closes'."""
    d = {"diff": -0.44, "low": -1.29, "high": 0.41, "se": 0.2, "df": 2.0}
    assert compare.judge({"x": d})["x"]["verdict"] == "inconclusive" and not compare.closes_gap(
        compare.judge({"x": d})["x"]
    )
