"""experiments/critical_batch.py and remedies.py: grids, follow-ups and analyze on fabricated results."""

import json

import numpy as np
import pytest
from _study_fakes import fake_result, model_curve, run_followups
from _study_fakes import load_experiment as load

from lbbench.config import Config
from lbbench.study import answer, protocol


def fabricate(point, base, curve_fn, **kw):
    cfg = base.replace(**point).validate()
    r = fake_result(
        cfg.batch_size,
        curve_fn(cfg),
        seed=cfg.seed,
        lr=cfg.learning_rate,
        momentum=cfg.momentum,
        optimizer=cfg.optimizer,
        **kw,
    )
    r["config"] = cfg.to_dict()
    return r


@pytest.mark.parametrize("quick", [True, False])
def test_critical_batch_grid_is_valid_and_follows_the_budget_rule(quick):
    m = load("critical_batch")
    pts = m.grid(quick)
    names = [p["run_name"] for p in pts]
    assert len(names) == len(set(names))
    base = m.base_config(quick)
    for p in pts:
        cfg = base.replace(**p).validate()
        steps = cfg.epochs * (60000 // cfg.batch_size)
        assert quick or (cfg.epochs >= m.E_MIN and steps >= m.T_MIN)
        assert 0 <= cfg.warmup_steps <= 500  # warmup in steps, whatever B and the run length
        every = cfg.eval_every_steps or 60000 // cfg.batch_size
        assert quick or every * cfg.batch_size <= max(m.EVAL_EXAMPLES + cfg.batch_size, cfg.batch_size)
    if not quick:
        per_b = {}
        for p in pts:
            per_b.setdefault(p["batch_size"], []).append(p)
        assert sorted(per_b) == [2**k for k in range(5, 15)] and all(len(v) >= 8 for v in per_b.values())


def test_critical_batch_followup_and_analyze_recover_a_known_critical_batch(tmp_path):
    m = load("critical_batch")
    base = m.base_config(False)
    rng = np.random.default_rng(0)
    quality = {i: 1.1 + 0.1 * i for i in range(m.K)}  # trial 0 is best everywhere
    quality.update({0: 1.0, 3: None, 7: "diverged"})

    def curve(scale):
        return lambda cfg: model_curve(
            cfg.batch_size, cfg.epochs, s_min=200.0, b_crit=1000.0, target=0.85, a_max=0.95, scale=scale
        )

    results = {}
    for p in m.grid(False):
        q = quality[int(p["run_name"].split("__t")[1])]
        if q == "diverged":
            results[p["run_name"]] = fabricate(p, base, curve(1.0), status="diverged")
        elif q is None:
            results[p["run_name"]] = fabricate(p, base, lambda cfg: [0.2] * cfg.epochs)
        else:
            results[p["run_name"]] = fabricate(p, base, curve(q), noise=[500.0] * p["epochs"], b_simple=700.0)
    first = m.followup(results, False)
    # the range-edge rule: arms whose winner (trial 0) sits at an edge get K_WIDEN widened trials first
    wide = [p for p in first if "__w" in p["run_name"]]
    edge_arms = {base.replace(**p).batch_size for p in wide}
    assert all(sum(base.replace(**p).batch_size == b for p in wide) == m.K_WIDEN for b in edge_arms)
    assert not any(p["seed"] and base.replace(**p).batch_size in edge_arms for p in first)  # their re-runs wait
    for p in wide:  # worse than trial 0: the widening changes nothing but the count
        results[p["run_name"]] = fabricate(p, base, curve(1.5), noise=[500.0] * p["epochs"], b_simple=700.0)
    extra = [p for p in m.followup(results, False) if "__w" not in p["run_name"]]
    assert {p["seed"] for p in extra} == set(range(1, 9)) and all(p["sharpness"] for p in extra)
    assert all(p["noise_scale_groups"] > 1 and p["adaptive_sharpness_rho"] > 0 for p in extra)  # off when tuning
    assert {p["run_name"].split("__")[0] for p in extra} == {f"b{2**k}" for k in range(5, 15)}
    for p in extra:
        assert "__t0__s" in p["run_name"]  # trial 0 wins on steps and on both budgets
        results[p["run_name"]] = fabricate(
            p, base, curve(float(np.exp(rng.normal(0, 0.05)))), noise=[500.0] * p["epochs"], b_simple=700.0
        )
    assert m.followup(results, False) == extra  # nothing new: the runner stops (the widening ran once)
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    # every level L of model_curve is crossed after a step count ∝ S(B): B_crit = 1000 at all three targets
    # (the fake runs evaluate once an epoch; interpolation along an exponential curve leaves a small bias)
    assert [t["target"] for t in s["targets"]] == [0.85, 0.90, 0.93]
    for t in s["targets"]:
        assert t["b_crit"] == pytest.approx(1000, rel=0.25)
        assert t["b_crit_ci_residual"][0] < t["b_crit"] < t["b_crit_ci_residual"][1]
        assert t["b_overhead_20"] == pytest.approx(0.2 * t["b_crit"])
        assert t["b_simple_equilibrated"] == pytest.approx(500)
    regimes = out["critical_batch"]["targets"][0]["regimes"]["by_batch"]
    assert regimes[32] == "perfect scaling" and regimes[16384] == "maximal data parallelism"
    for f in ("answer.md", "critical_batch.json", "steps_to_target_0.85.png", "steps_to_target_0.93.png"):
        assert (tmp_path / f).exists()
    md = (tmp_path / "answer.md").read_text()
    k16384 = m.K + (m.K_WIDEN if 16384 in edge_arms else 0)
    assert "Does accuracy degrade" in md and f"| 16384 | {k16384} (1 / 0 / 0)" in md and "20 %-overhead" in md
    assert all(c in md for c in s["conclusions"]) and len(s["conclusions"]) == 5  # 2 budgets + 3 targets
    assert s["conclusions"] == m.conclusions(json.loads(json.dumps(s)))  # the same prose from the JSON


def test_overrides_round_trip():
    base = Config(optimizer="momentum")
    cfg = base.replace(learning_rate=0.3, batch_size=512, epsilons=(1e-3,), run_name="x", workdir="w")
    o = protocol.overrides_of({"config": cfg.to_dict()}, base)
    assert base.replace(**o).replace(workdir="w") == cfg and "workdir" not in o


@pytest.mark.parametrize("quick", [True, False])
def test_remedies_grid_is_valid(quick):
    m = load("remedies")
    pts, base = m.grid(quick), m.base_config(quick)
    assert len({p["run_name"] for p in pts}) == len(pts)
    arms = {}
    for p in pts:
        cfg = base.replace(**p).validate()
        assert cfg.epochs == m.epochs(quick) and not cfg.warnings()
        arms.setdefault(m.arm(cfg.to_dict()), []).append(cfg)
    large = m.sizes(quick)[1]
    assert {f"{o}_b{large}" for o in (m.QUICK_OPTIMIZERS if quick else m.OPTIMIZERS)} <= set(arms)
    assert len({len(v) for v in arms.values()}) == 1  # the same budget K for every arm
    if not quick:
        assert all(len(v) == m.K == 32 for v in arms.values())
        draws = {a: sorted(c.learning_rate for c in v) for a, v in arms.items() if a.startswith("momentum")}
        smith = ("momentum_b8192_increase", "momentum_b512_decay")
        others = [a for a in draws if a not in smith]
        assert len({tuple(draws[a]) for a in others}) == len(others)  # drawn per arm
    assert set(m.remedy_arms(quick)) | {f"sam_b{large}"} <= set(arms)  # issue 22: one trial each at least
    for a, (x, y) in m.pairs(quick).items():
        assert x in arms and y in arms, a


def test_remedies_new_arms_are_what_their_papers_describe():
    m = load("remedies")
    base, grid = m.base_config(False), m.grid(False)
    arms = {}
    for p in grid:
        cfg = base.replace(**p).validate()
        arms.setdefault(m.arm(cfg.to_dict()), []).append(cfg)
    ramp = arms["momentum_b8192_ramp"][0]
    assert ramp.batch_phases == ((256, 1), (512, 1), (1024, 1), (2048, 1), (4096, 1), (8192, 25))
    # Smith et al.: the same trials, the LR ÷ 4 at epochs 15 and 22 at B = 512, or B × 4 there at a constant LR
    for inc, dec in zip(arms["momentum_b8192_increase"], arms["momentum_b512_decay"]):
        assert inc.batch_phases == ((512, 15), (2048, 7), (8192, 8)) and inc.schedule == "warmup"
        assert dec.batch_size == 512 and dec.schedule == "warmup_step" and dec.decay_epochs == (15, 22)
        assert dec.decay_factor == 4 and inc.scaled_learning_rate == dec.scaled_learning_rate
        assert (inc.momentum, inc.warmup_epochs, inc.weight_decay) == (
            dec.momentum,
            dec.warmup_epochs,
            dec.weight_decay,
        )
    ghosts = {c.ghost_batch_size for c in arms["momentum_b8192_ghostbn"]}
    assert len(ghosts) > 2 and all(8192 // 4 % g == 0 for g in ghosts)
    assert {c.model for c in arms["momentum_b8192_ghostbn"] + arms["momentum_b8192_bn"]} == {"bn_mlp"}
    assert {c.ghost_batch_size for c in arms["momentum_b8192_bn"]} == {0}
    assert len({c.sam_rho for c in arms["sam_b8192"]}) == m.K and "sam_rho" in m.space_of_arm("sam_b8192", False).fields


def test_remedies_transfers_reruns_and_gap_table(tmp_path):
    m = load("remedies")
    base = m.base_config(False)
    # known final accuracies: the reference (adam at 256) 0.93; lars closes the gap, momentum linear transfer fails
    level = {
        "momentum_b256": 0.92,
        "adam_b256": 0.93,
        "momentum_b8192": 0.85,
        "nesterov_b8192": 0.86,
        "adam_b8192": 0.88,
        "lars_b8192": 0.93,
        "lamb_b8192": 0.90,
        "momentum_b8192_linear_transfer": 0.10,
        "momentum_b8192_sqrt_transfer": 0.80,
        "adam_b8192_linear_transfer": 0.5,
        "adam_b8192_sqrt_transfer": 0.84,
        "adam_b8192_sqrt_halflife_transfer": 0.87,
        "adam_b8192_linear_halflife_transfer": 0.6,
        "sam_b8192": 0.87,
        "momentum_b8192_ramp": 0.91,
        "momentum_b8192_increase": 0.925,
        "momentum_b512_decay": 0.93,
        "momentum_b8192_bn": 0.80,
        "momentum_b8192_ghostbn": 0.86,
        "momentum_b256_bn": 0.925,
    }
    rng = np.random.default_rng(0)

    def fab(p):
        cfg = base.replace(**p)
        a = m.arm(cfg.to_dict())
        name = p["run_name"]
        t = int(name.split("__t")[1].split("__")[0]) if "__t" in name else (5 if "__w" in name else 0)
        final = level[a] - 0.01 * t + (rng.normal(0, 0.003) if cfg.seed else 0.0)
        return fabricate(p, base, lambda c: [final / 2] * (c.epochs - 1) + [final])

    results = {p["run_name"]: fab(p) for p in m.grid(False)}
    # transfers + seeds of tuned arms (+ widened trials of edge arms, whose seeds and transfers wait a round);
    # then transfer seeds
    assert 2 <= run_followups(m, results, fab) <= 3
    transfers = {k: r for k, r in results.items() if k.endswith("_transfer")}
    assert len(transfers) == 6
    adam_sqrt = transfers["adam_b8192_sqrt_halflife_transfer"]["config"]
    small_best = results["adam_b256__t0"]["config"]  # trial 0 is each arm's winner
    assert adam_sqrt["learning_rate"] == small_best["learning_rate"] and adam_sqrt["beta2"] == small_best["beta2"]
    assert adam_sqrt["beta2_scaling"] == "half_life" and adam_sqrt["lr_scaling"] == "sqrt"
    assert adam_sqrt["batch_size"] == 8192 and Config.from_dict(adam_sqrt).scaled_beta2 < small_best["beta2"]
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    assert s["reference"] == "adam_b256" and s["best_large_batch_arm"] == "lars_b8192"
    assert "lars_b8192" in s["arms_closing_gap"] and "momentum_b8192_linear_transfer" not in s["arms_closing_gap"]
    gap = out["remedies"]["gap_to_reference"]["momentum_b8192_linear_transfer"]
    assert gap["diff"] == pytest.approx(0.10 - 0.93, abs=0.02) and gap["high"] < 0
    md = (tmp_path / "answer.md").read_text()
    k = m.K + (m.K_WIDEN if any(n.startswith("lars_b8192__w") for n in results) else 0)
    assert f"| lars_b8192 | {k} (0 / 0 / 0) |" in md and "closes the gap" in md
    assert s["verdicts"]["lars_b8192"] in ("non-inferior", "better")
    assert s["verdicts"]["momentum_b8192_linear_transfer"] == "worse"
    assert s["conclusions"] == m.conclusions(json.loads(json.dumps(s))) and s["conclusions"][0] in md
    paired = out["remedies"]["paired"]
    ghost = paired["ghost BN − BN (bn_mlp, B = 8192)"]
    assert ghost["diff"] == pytest.approx(0.06, abs=0.01) and ghost["verdict"] == "better"
    smith = paired["batch increases − LR decay (Smith et al. 2018)"]
    assert smith["diff"] == pytest.approx(-0.005, abs=0.01) and s["paired_verdicts"]
    assert len(s["conclusions"]) == 2 and s["conclusions"][1] in md and "Paired comparisons" in md
    ramp = out["remedies"]["gap_to_reference"]["momentum_b8192_ramp"]
    assert ramp["steps"] == 30 * 7  # the fake runs count steps as if at 8192; a real ramp takes more
    assert (tmp_path / "remedies.png").exists() and (tmp_path / "remedies.json").exists()


@pytest.mark.parametrize("name", ["critical_batch", "remedies"])
def test_quick_mode_followups_terminate_and_analyze_writes_its_files(name, tmp_path):
    m = load(name)
    base = m.base_config(True)

    def fab(p):
        lr = base.replace(**p).learning_rate
        return fabricate(p, base, lambda c: [min(0.9, 0.1 + lr * (e + 1)) for e in range(c.epochs)])

    results = {p["run_name"]: fab(p) for p in m.grid(True)}
    assert 1 <= run_followups(m, results, fab, quick=True) <= 3  # widened trials may add a round
    out = m.analyze(str(tmp_path), results, True)
    assert "summary" in out and (tmp_path / "answer.md").exists() and list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("name", ["critical_batch", "critical_batch_bn", "remedies"])
def test_reruns_are_the_same_trial_as_their_winner(name):
    """What a winner's re-runs switch on must not make them another trial than their winner's: for a
    BatchNorm model the noise-scale fields are part of the trial (study.answer), so a BN study keeps the
    noise scale off in both."""
    m = load(name)
    base = m.base_config(False)
    extra = m.rerun_extra(False) if hasattr(m, "rerun_extra") else m.RERUN_EXTRA
    for p in m.grid(False)[:: len(m.grid(False)) // 7]:
        cfg = base.replace(**p)
        rerun = cfg.replace(**extra, seed=1, run_name=cfg.run_name + "__s1")
        assert answer.hparams_key(rerun.to_dict()) == answer.hparams_key(cfg.to_dict()), cfg.run_name


def test_critical_batch_bn_is_critical_batch_on_bn_mlp():
    m, mlp = load("critical_batch_bn"), load("critical_batch")
    pts, base = m.grid(False), m.base_config(False)
    assert base.model == "bn_mlp" and base.replace(model="mlp") == mlp.base_config(False)
    per_b = {}
    for p in pts:
        per_b.setdefault(base.replace(**p).validate().batch_size, []).append(p)
    assert sorted(per_b) == [2**k for k in range(5, 13)] and all(len(v) == mlp.K for v in per_b.values())
    assert pts == [p for p in mlp.grid(False) if p["batch_size"] <= 4096]  # the same draws, range cut at 4096


def test_the_b_simple_cell_says_why_it_is_empty():
    """A BatchNorm study's re-runs measure no noise scale: its table says so, not "not equilibrated"."""
    from lbbench.report import critical_batch as cb

    assert cb._b_simple_cell({}) == "—"
    assert cb._b_simple_cell({"b_simple": None, "noise_scale_measured": False}) == "— (noise scale off in the re-runs)"
    assert cb._b_simple_cell({"b_simple": None, "noise_scale_measured": True}) == "— (no estimate)"
    assert cb._b_simple_cell({"b_simple": 812.3, "equilibrated": False}) == "812.3 (not equilibrated)"
    assert cb._b_simple_cell({"b_simple": 812.3, "equilibrated": True}) == "812.3"
