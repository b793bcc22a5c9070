"""study/protocol.py's range-edge rule and search.widened: which arms are widened, how far, and that their
re-runs wait for the widened trials."""

import math

import pytest

from lbbench.config import Config
from lbbench.study import protocol, search

SPACE = search.default_space("momentum")  # lr [1e-2, 1], momentum [0.5, 0.99], warmup [0, 500], wd


def _result(name, **cfg):
    return {"config": Config(run_name=name, **cfg).to_dict(), "status": "completed"}


def test_widened_pushes_each_edge_side_out_by_half_its_width_in_its_own_scale():
    wide = search.widened(SPACE, {"learning_rate": {"high"}, "momentum": {"high"}})
    lr, mom, warm, wd = wide.dims
    assert (lr.low, lr.high) == (0.01, pytest.approx(10.0))  # two decades wide: one more decade
    # log(1 − m): from log 0.5 to log 0.01, pushed by half that width beyond 0.01
    assert mom.high == pytest.approx(1 - math.exp(math.log(0.01) - 0.5 * math.log(0.5 / 0.01)))
    assert (warm, wd) == SPACE.dims[2:]  # untouched dimensions keep their ranges
    assert search.widened(SPACE, {"learning_rate": {"low"}}).dims[0].low == pytest.approx(1e-3)


def test_natural_bounds_are_not_widened():
    # warmup starts at 0; momentum's low side is pushed to 0 at most; ghost sizes must divide the batch
    assert search.widened(SPACE, {"warmup_steps": {"low"}}) is None
    assert search.widened(SPACE, {"momentum": {"low"}}).dims[1].low == 0.0
    ghost = search.SearchSpace((search.ghost_batch_dim(16, 512),))
    assert search.widened(ghost, {"ghost_batch_size": {"high"}}) is None


def test_edge_sides_match_edge_dims():
    cfg = {"learning_rate": 0.95, "momentum": 0.7, "warmup_steps": 10.0, "weight_decay": 0.0}
    assert search.edge_sides(SPACE, cfg) == {"learning_rate": {"high"}, "warmup_steps": {"low"}}
    assert search.edge_dims(SPACE, cfg) == ["learning_rate (high)", "warmup_steps (low)"]


def test_widening_adds_trials_only_for_edge_arms_and_holds_their_reruns():
    base = Config()
    results = {
        "b64__t0": _result("b64__t0", batch_size=64, learning_rate=0.95, momentum=0.7, epochs=3),  # lr at the top
        "b512__t0": _result("b512__t0", batch_size=512, learning_rate=0.1, momentum=0.7, epochs=5),  # inside
    }
    win = {64: {"b64__t0"}, 512: {"b512__t0"}}
    points, pending = protocol.widening(results, win, lambda a: SPACE, base, k=4, seed=7)
    assert pending == {64} and [p["run_name"] for p in points] == [f"b64__w{i}" for i in range(4)]
    wide = search.widened(SPACE, {"learning_rate": {"high"}})
    for p in points:
        cfg = base.replace(**p)
        assert (cfg.batch_size, cfg.epochs, cfg.seed) == (64, 3, 0)  # the arm's fixed fields
        assert 0.01 <= cfg.learning_rate <= 10.0 and wide.dims[0].unit(cfg.learning_rate) is not None
    assert max(base.replace(**p).learning_rate for p in points) > 1.0  # some land beyond the old range
    assert points == protocol.widening(results, win, lambda a: SPACE, base, k=4, seed=7)[0]  # reproducible
    for p in points:  # once the widened trials ran: nothing more, whoever won
        results[p["run_name"]] = _result(p["run_name"], **{k: v for k, v in p.items() if k != "run_name"})
    assert protocol.widening(results, win, lambda a: SPACE, base, k=4, seed=7) == ([], set())
    win[64] = {"b64__w2"}  # a widened winner at the new edge is not widened again
    assert protocol.widening(results, win, lambda a: SPACE, base, k=4, seed=7) == ([], set())
    assert protocol.widening(results, {64: {"b64__t0"}}, lambda a: None, base, 4, 7) == ([], set())  # no space
