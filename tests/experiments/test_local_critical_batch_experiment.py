"""experiments/local_critical_batch.py: its grid and follow-ups as Configs, the evaluation and checkpoint
steps it relies on, and analyze on fabricated branch outcomes with a planted local critical batch."""

import json
import math

import pytest
from _study_fakes import load_experiment as load

from lbbench.training.trainer import progress_segment

PLANTED_RATIO = 2.5129  # b/ln(1 + b) = 2: the planted model's critical batch over its B_noise (study test)
PLANTED = {0: 64, 112: 128, 224: 256, 448: 512, 896: 1024, 1792: 1536, 3584: 2048, 7168: 2048}  # B_noise by step


@pytest.fixture(scope="module")
def m():
    return load("local_critical_batch")


@pytest.mark.parametrize("quick", [True, False])
def test_the_reference_keeps_checkpoints_exactly_at_the_branch_steps(m, quick):
    p, base = m.plan(quick), m.base_config(quick)
    (ref,) = m.grid(quick)
    cfg = base.replace(**ref).validate()
    steps_per_epoch = p["subset"] // cfg.batch_size
    segment = min(cfg.eval_every_steps, progress_segment(steps_per_epoch))  # the trainer's segment length
    assert cfg.keep_checkpoints and steps_per_epoch % segment == 0 and cfg.checkpoint_every_steps % segment == 0
    for step in p["checkpoints"]:
        assert step % cfg.checkpoint_every_steps == 0 and step <= cfg.epochs * steps_per_epoch


@pytest.mark.parametrize("quick", [True, False])
def test_branches_see_the_same_examples_and_evaluate_on_the_half_epochs(m, quick):
    p, base = m.plan(quick), m.base_config(quick)
    assert m.followup({}, quick) == [] and m.followup({"reference": {"status": "diverged"}}, quick) == []
    points = m.followup({"reference": {"status": "completed"}}, quick)
    names = [q["run_name"] for q in points]
    assert len(names) == len(set(names)) == len(p["checkpoints"]) * (len(p["batches"]) * len(p["multipliers"]) + 1)
    for q in points:
        cfg = base.replace(**q).validate()
        steps = p["subset"] // cfg.batch_size
        assert steps * cfg.batch_size == p["subset"]  # no example dropped: every branch sees E examples
        step = int(q["run_name"].split("__")[0][1:])
        assert cfg.init_from == (f"reference:{step}" if step else "")
        if q["run_name"].endswith("noise"):
            assert cfg.scaled_learning_rate <= 1e-8 and cfg.noise_scale_every == 1 and cfg.noise_scale_groups > 1
            continue
        assert cfg.epochs == p["window_epochs"] and cfg.noise_scale_groups == 1
        if cfg.eval_every_steps:  # evaluations land on every half epoch: the window's E/4 and E/2
            assert (steps // 2) % cfg.eval_every_steps == 0 and cfg.eval_every_steps <= progress_segment(steps)
        else:
            assert steps % 2 == 1
    ref_rate = base.replace(batch_size=m.REF_BATCH).scaled_learning_rate
    one = [base.replace(**q) for q in points if q["run_name"].endswith(f"b{m.REF_BATCH}__x1")]
    assert one and all(c.scaled_learning_rate == ref_rate for c in one)  # the reference continued


def _result(cfg: dict, curve, status="completed", **extra) -> dict:
    """A result.json with validation loss at every half epoch (the evaluations) and at epoch ends."""
    b, n = cfg["batch_size"], cfg["train_subset"]
    steps = n // b
    evals = [k * steps // 2 for k in range(1, 2 * cfg["epochs"] + 1)] if cfg["eval_every_steps"] else []
    ends = [e * steps for e in range(1, cfg["epochs"] + 1)]
    return {
        "status": status,
        "config": cfg,
        "evals": {"step": evals, "val_loss": [curve(s * b) for s in evals]},
        "history": {"step": ends, "epoch": list(range(1, cfg["epochs"] + 1)), "val_loss": [curve(s * b) for s in ends]},
        **extra,
    }


def fabricate(m, quick=False) -> dict:
    """Branch outcomes of the planted model (noise ∝ loss: one step multiplies the loss by 1/(1 + B/B_noise))
    at each checkpoint, the ×1 rate best, the others 3 % worse, B = 8192 × 4 diverged; B_simple = B_noise."""
    base = m.base_config(quick)
    out = {"reference": _result(base.replace(**m.grid(quick)[0]).to_dict(), lambda n: 2.3 * math.exp(-n / 4e5))}
    out["reference"]["history"]["noise_b_simple"] = [500.0] * len(out["reference"]["history"]["step"])
    for q in m.followup({"reference": {"status": "completed"}}, quick):
        cfg = base.replace(**q).to_dict()
        step = int(q["run_name"].split("__")[0][1:])
        b_noise = PLANTED.get(step, 64)
        if q["run_name"].endswith("noise"):
            out[q["run_name"]] = {"status": "completed", "config": cfg, "noise_scale": {"b_simple": float(b_noise)}}
            continue
        b, worse = cfg["batch_size"], 1.0 if q["run_name"].endswith("x1") else 1.03
        curve = lambda n, b=b, w=worse, c=b_noise: w * math.exp(-0.002 * (n / b) * math.log1p(b / c))  # noqa: E731
        status = "diverged" if q["run_name"].endswith("b8192__x4") else "completed"
        out[q["run_name"]] = _result(cfg, curve, status)
    return out


def test_analyze_recovers_the_planted_local_critical_batch_and_says_b_simple_tracks_it(m, tmp_path):
    out = m.analyze(str(tmp_path), fabricate(m), False)
    s = out["summary"]
    for c in s["checkpoints"]:
        planted = PLANTED_RATIO * PLANTED[c["step"]]
        if PLANTED[c["step"]] >= 256:  # the smallest batch (32) ≤ B_noise/8 stands in for the small-batch limit
            assert c["censored"] is None and planted / 2**0.25 <= c["local_critical_batch"] <= planted * 2**0.25
        assert c["b_simple"] == PLANTED[c["step"]]
    rule = s["rules"]["examples"]
    assert rule["tracking"]["verdict"] == "tracks" and rule["tracking"]["rho"] > 0.95
    assert rule["shape"]["rising"] and rule["shape"]["plateau"] and not rule["shape"]["near_zero_at_init"]
    assert set(s["rules"]) == {"examples", "merrill_eps"}
    assert s["half_window_ratio"]["high"] < 1.5  # the planted answer does not depend on the window
    assert s["conclusions"] == m.conclusions(json.loads(json.dumps(s)))
    answer = (tmp_path / "answer.md").read_text()
    assert all(c in answer for c in s["conclusions"]) and "B_simple tracks the local critical batch size" in answer
    assert "| 7,168 | 100.0% |" in answer and "diverged" not in answer.split("####")[0]
    assert (tmp_path / "local_critical_batch.png").exists()
    saved = json.loads((tmp_path / "local_critical_batch.json").read_text())
    assert saved["checkpoints"] == json.loads(json.dumps(s["checkpoints"])) and len(saved["branches"]) == 8
    assert saved["branches"][0]["window"]["recovers"]["32"] is True  # every branch outcome kept


def test_analyze_without_the_branches_still_writes_its_files(m, tmp_path):
    results = {k: v for k, v in fabricate(m, quick=True).items() if k == "reference"}
    s = m.analyze(str(tmp_path), results, True)["summary"]
    for rule in s["rules"].values():
        assert rule["tracking"]["verdict"] == "too few points" and rule["shape"]["reproduced"] is None
    assert (tmp_path / "answer.md").exists() and (tmp_path / "local_critical_batch.png").exists()
