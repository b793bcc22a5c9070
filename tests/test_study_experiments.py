"""experiments/critical_batch.py and remedies.py: grids, follow-ups and analyze on fabricated results."""

import importlib.util
import math
import os

import numpy as np
import pytest
from _study_fakes import fake_result, model_curve

from lbbench.config import Config
from lbbench.study import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(f"exp_{name}", os.path.join(ROOT, "experiments", f"{name}.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def fabricate(point, base, curve_fn, **kw):
    cfg = base.replace(**point)
    r = fake_result(cfg.batch_size, curve_fn(cfg), seed=cfg.seed, lr=cfg.learning_rate, momentum=cfg.momentum,
                    optimizer=cfg.optimizer, **kw)
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
        assert cfg.warmup_epochs <= 0.2 * cfg.epochs + 1e-9
    if not quick:
        per_b = {}
        for p in pts:
            per_b.setdefault(p["batch_size"], []).append(p)
        assert sorted(per_b) == [2 ** k for k in range(5, 15)] and all(len(v) >= 8 for v in per_b.values())


def test_critical_batch_followup_and_analyze_recover_a_known_critical_batch(tmp_path):
    m = load("critical_batch")
    base = m.base_config(False)
    rng = np.random.default_rng(0)
    quality = {0: 1.0, 1: 1.4, 2: 2.5, 3: None, 4: 1.8, 5: 3.0, 6: 1.2, 7: "diverged"}  # trial 0 is best everywhere

    def curve(scale):
        return lambda cfg: model_curve(cfg.batch_size, cfg.epochs, s_min=200.0, b_crit=1000.0, target=0.85,
                                       a_max=0.95, scale=scale)

    results = {}
    for p in m.grid(False):
        q = quality[int(p["run_name"].split("__t")[1])]
        if q == "diverged":
            results[p["run_name"]] = fabricate(p, base, curve(1.0), status="diverged")
        elif q is None:
            results[p["run_name"]] = fabricate(p, base, lambda cfg: [0.2] * cfg.epochs)
        else:
            results[p["run_name"]] = fabricate(p, base, curve(q), noise=[500.0] * p["epochs"], b_simple=700.0)
    extra = m.followup(results, False)
    assert {p["seed"] for p in extra} == {1, 2, 3} and all(p["sharpness"] for p in extra)
    assert {p["run_name"].split("__")[0] for p in extra} == {f"b{2 ** k}" for k in range(5, 15)}
    for p in extra:
        assert "__t0__s" in p["run_name"]  # trial 0 wins on steps and on both budgets
        results[p["run_name"]] = fabricate(p, base, curve(float(np.exp(rng.normal(0, 0.05)))),
                                           noise=[500.0] * p["epochs"], b_simple=700.0)
    assert m.followup(results, False) == extra  # nothing new: the runner stops
    out = m.analyze(str(tmp_path), results, False)
    s = out["summary"]
    # one-epoch resolution makes small batches look slower, so allow 25 %
    assert s["b_crit"] == pytest.approx(1000, rel=0.25)
    assert s["b_crit_ci"][0] < s["b_crit"] < s["b_crit_ci"][1] and s["b_simple_at_target"] == pytest.approx(500)
    regimes = [r["regime"] for r in out["critical_batch"]["regimes"]]
    assert regimes[0] == "perfect scaling" and regimes[-1] == "maximal data parallelism"
    for f in ("answer.md", "critical_batch.json", "steps_to_target.png", "accuracy_vs_batch.png"):
        assert (tmp_path / f).exists()
    md = (tmp_path / "answer.md").read_text()
    assert "Does accuracy degrade" in md and "| 16384 | 8 (1 / 0)" in md and "20 %-overhead" in md


def test_overrides_round_trip():
    base = Config(optimizer="momentum")
    cfg = base.replace(learning_rate=0.3, batch_size=512, epsilons=(1e-3,), run_name="x", workdir="w")
    o = protocol.overrides_of({"config": cfg.to_dict()}, base)
    assert base.replace(**o).replace(workdir="w") == cfg and "workdir" not in o
