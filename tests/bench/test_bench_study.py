"""The study benchmark's arithmetic (ladder and projection against hand-computed numbers) and a real
quick run of it (a smoke test: benchmarks are scripts, their numbers are not asserted)."""

import json
import math

import pytest

from lbbench.bench import study
from lbbench.study.halving import Halving


def test_ladder_of_32_trials():
    assert study.ladder(32, [2, 6, 18], 1 / 3) == [(32, 2), (10, 4), (3, 12)]
    assert study.ladder(8, [10], None) == [(8, 10)]
    assert study.ladder(3, [1, 2], 1 / 3) == [(3, 1), (1, 1)]


def test_projection_adds_rungs_programs_and_reruns():
    m = {
        "tuning": {"compile_s": 2.0, "other_s": 1.0},
        "rerun": {"compile_s": 4.0, "other_s": 0.0, "instruments_s": 5.0},
        "trial_epoch_s": 0.5,
        "rerun_epoch_s": 0.75,
    }
    p = study.project(m, 32, 18, Halving(), seeds=8, winners=2, trials=8)
    # rungs (32, 2), (10, 4), (3, 12): programs 4 + 2 + 1 = 7 × 3 s; trial-epochs 64 + 40 + 36 = 140 × 0.5 s
    assert p["tuning_s"] == pytest.approx(7 * 3.0 + 140 * 0.5)
    # 16 re-runs in 2 programs × 4 s, each 18 epochs × 0.75 s + 5 s of instruments
    assert p["reruns_s"] == pytest.approx(2 * 4.0 + 16 * (18 * 0.75 + 5.0))
    full = study.project(m, 32, 18, None, seeds=8, winners=2, trials=8)
    assert full["tuning_s"] == pytest.approx(4 * 3.0 + 32 * 18 * 0.5)


@pytest.mark.slow
def test_quick_study_benchmark_runs(tmp_path):
    out = study.run("critical_batch", trials=2, min_steps=5, log=lambda m: None, quick=True)
    assert [r["batch_size"] for r in out["rows"]] == [256, 1024]
    for r in out["rows"]:
        assert r["tuning"]["trials"] == 2 and r["rerun"]["trials"] == 2
        assert r["tuning"]["trial_examples_per_s"] > 0
        assert math.isfinite(r["eval_fraction"]) and r["tuning_s"] > 0 and r["reruns_s"] > 0
    assert out["projected_s"] == pytest.approx(sum(r["tuning_s"] + r["reruns_s"] for r in out["rows"]))


def test_the_projection_reruns_each_winner_with_the_studys_own_seeds():
    """The BatchNorm study re-runs with critical_batch's 8 seeds (a missing SEEDS once projected 3)."""
    from lbbench.experiments import critical_batch, critical_batch_bn, seed_article

    assert study.seeds_of(critical_batch_bn) == study.seeds_of(critical_batch) == 8
    assert study.seeds_of(seed_article) == 0


def test_the_measured_wall_time_sums_every_invocation_of_the_sweep(tmp_path):
    """A rerun that only re-analyses records seconds; the sweep's wall time is all its invocations'."""
    time_record = {"wall_s": 4.0, "by_batch_size": {}}
    info = {"time": time_record, "invocations": [{"wall_s": 4000.0}, {"wall_s": 4.0}]}
    (tmp_path / "sweep.json").write_text(json.dumps(info))
    assert study._measured(str(tmp_path))["wall_s"] == 4004.0
    (tmp_path / "sweep.json").write_text(json.dumps({"time": time_record}))  # written before invocations existed
    assert study._measured(str(tmp_path))["wall_s"] == 4.0
