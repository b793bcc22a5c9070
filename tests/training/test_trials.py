"""Trials axis: each trial of a vmapped group equals the same config run alone (a group of one).

Independent reference: the solo run, a separate compiled program with one trial. Groups cover both
data modes (one seed: batches gathered once and shared; several seeds: each trial its own order).
"""

import json
import os

import flax
import jax
import numpy as np
import pytest
import scipy.stats

from lbbench.cli import train as main
from lbbench.config import Config, ConfigError
from lbbench.training import loop as train
from lbbench.training.trainer import Trainer

TINY = dict(
    dataset="random",
    model="tiny_mlp",
    batch_size=100,
    epochs=2,
    sharpness=False,
    train_eval_examples=500,
    noise_scale_groups=4,
    noise_scale_every=3,
)
CASES = {
    # name: (base overrides, per-trial overrides); per-trial seeds differ → unshared data order
    "mlp": ({}, [{"learning_rate": 3e-3, "seed": 1}, {"learning_rate": 1e-3, "momentum": 0.8, "seed": 2}]),
    "ghost_bn": (
        {"model": "tiny_bn_mlp", "ghost_batch_size": 25, "optimizer": "momentum"},
        [{"learning_rate": 0.05}, {"learning_rate": 0.2, "momentum": 0.5, "weight_decay": 1e-3}],
    ),
    "sam": (
        {"optimizer": "sam"},
        [{"learning_rate": 0.1, "sam_rho": 0.05, "seed": 3}, {"learning_rate": 0.03, "sam_rho": 0.2, "seed": 4}],
    ),
    "warmup": (
        {"schedule": "warmup_cosine", "optimizer": "adam"},
        [{"learning_rate": 1e-2, "warmup_epochs": 1.0}, {"learning_rate": 3e-3, "warmup_epochs": 0.5, "beta2": 0.99}],
    ),
}


def configs(tmp_path, base, trials, folder):
    return [
        Config(workdir=str(tmp_path / folder), run_name=f"t{i}", **{**TINY, **base, **t}) for i, t in enumerate(trials)
    ]


def params_of(result):
    with open(os.path.join(result["run_dir"], "params.msgpack"), "rb") as f:
        return flax.serialization.msgpack_restore(f.read())


def assert_same_run(a, b, rtol=1e-5):
    assert a["status"] == b["status"]
    for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        assert a["final"][k] == pytest.approx(b["final"][k], rel=rtol, abs=1e-7), k
    for h in ("train_loss", "test_accuracy", "learning_rate", "noise_b_simple"):
        np.testing.assert_allclose(
            np.asarray(a["history"][h], float), np.asarray(b["history"][h], float), rtol=rtol, atol=1e-7, err_msg=h
        )
    for x, y in zip(jax.tree.leaves(params_of(a)), jax.tree.leaves(params_of(b))):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_trial_of_group_equals_solo_run(case, tmp_path):
    base, trials = CASES[case]
    group = train.run_group(configs(tmp_path, base, trials, "group"))
    assert [r["timing"]["trials_in_program"] for r in group] == [2, 2]
    for i, t in enumerate(trials):
        solo = train.run(configs(tmp_path, base, [t], f"solo{i}")[0])
        assert solo["timing"]["trials_in_program"] == 1
        assert_same_run(group[i], solo)
    # the trials really differ (their hyperparameters reached the program)
    assert group[0]["final"]["train_loss"] != group[1]["final"]["train_loss"]
    assert group[1]["history"]["learning_rate"][-1] == pytest.approx(solo["history"]["learning_rate"][-1], rel=1e-6)


@pytest.mark.slow
def test_diverging_trial_is_frozen_and_the_others_match_their_solo_runs(tmp_path):
    base = {"optimizer": "sgd", "epochs": 3}
    trials = [{"learning_rate": 0.1}, {"learning_rate": 1e30}, {"learning_rate": 0.3}]
    group = train.run_group(configs(tmp_path, base, trials, "group"))
    assert [r["status"] for r in group] == ["completed", "diverged", "completed"]
    bad = json.loads(open(os.path.join(group[1]["run_dir"], "result.json")).read())
    assert bad["status"] == "diverged" and bad["diverged_epoch"] == 1 and len(bad["history"]["epoch"]) == 1
    for i in (0, 2):
        solo = train.run(configs(tmp_path, base, [trials[i]], f"solo{i}")[0])
        assert_same_run(group[i], solo)


def test_group_rejects_configs_that_need_different_programs(tmp_path):
    cfgs = configs(tmp_path, {}, [{"batch_size": 100}, {"batch_size": 50}], "g")
    with pytest.raises(ConfigError, match="batch_size"):
        train.run_group(cfgs)
    with pytest.raises(ConfigError, match="same run folder"):
        train.run_group([cfgs[0], cfgs[0].replace(learning_rate=0.5)])


def test_seeds_flag_trains_one_folder_per_seed_and_writes_summary(tmp_path, capsys):
    args = [
        "lbbench",
        "--dataset=random",
        "--model=tiny_mlp",
        "--batch_size=100",
        "--epochs=1",
        "--nosharpness",
        f"--workdir={tmp_path}",
        "--run_name=grp",
        "--seeds=0,1,2",
    ]
    assert main.main(args) == main.EXIT_OK
    out = capsys.readouterr().out
    assert "3 seeds (3 completed)" in out and "test_accuracy" in out
    results = [json.loads((tmp_path / f"grp_s{s}" / "result.json").read_text()) for s in range(3)]
    assert [r["config"]["seed"] for r in results] == [0, 1, 2]
    summary = json.loads((tmp_path / "grp_seeds.json").read_text())
    accs = [r["final"]["test_accuracy"] for r in results]
    assert summary["per_seed"]["test_accuracy"] == accs
    assert summary["stats"]["test_accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert summary["stats"]["test_accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    half = scipy.stats.t.ppf(0.975, 2) * np.std(accs, ddof=1) / np.sqrt(3)  # Student t, n - 1 = 2
    assert summary["stats"]["test_accuracy"]["ci_low"] == pytest.approx(np.mean(accs) - half)
    assert summary["stats"]["test_accuracy"]["ci_high"] == pytest.approx(np.mean(accs) + half)
    assert out.index("seed 2:") < out.index("3 seeds (3 completed)"), "the summary follows the per-seed lines"


@pytest.mark.parametrize(
    "value, needle",
    [("0,x", "expects comma-separated integers"), ("1,1", "must be distinct"), ("-1", "must be in [0, 2^63)")],
)
def test_bad_seeds_exit_2(value, needle, tmp_path, capsys):
    code = main.main(
        [
            "lbbench",
            "--dataset=random",
            "--model=tiny_mlp",
            "--batch_size=100",
            "--epochs=1",
            f"--workdir={tmp_path}",
            f"--seeds={value}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT and f"--seeds: {needle}" in err and len(err.splitlines()) == 1
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_epoch_cut_into_segments_equals_one_segment():
    """Instruments get the state every few steps; cutting the epoch there must not change training."""
    from lbbench.data import load
    from lbbench.training import parallel

    ds = load("random", "")
    cfgs = [Config(**{**TINY, "learning_rate": lr, "seed": s}) for lr, s in ((1e-2, 0), (3e-3, 1))]
    finals, seen = [], []
    for seg in (0, 3):
        trainer = Trainer(cfgs, ds, parallel.make_mesh(), segment_steps=seg)
        state = trainer.init_state()
        trainer.compile(state)
        for epoch in range(2):
            state, metrics = trainer.epoch_fn(state, epoch * 10, lambda st, step, seg=seg: seen.append((seg, step)))
        assert metrics["loss"].shape == (10, 2)
        finals.append(jax.device_get(state.params))
    assert [step for seg, step in seen if seg == 3] == [3, 6, 9, 10, 13, 16, 19, 20]
    for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_eval_every_steps_records_test_metrics_between_epochs(tmp_path):
    cfg = Config(workdir=str(tmp_path), run_name="r", **{**TINY, "eval_every_steps": 5})
    train.run(cfg)
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    evals, hist = saved["evals"], saved["history"]
    assert evals["step"] == [5, 10, 15, 20] and hist["step"] == [10, 20]
    # at an epoch's end the mid-epoch evaluation sees the same state as the epoch's own evaluation
    assert [evals["test_accuracy"][1], evals["test_accuracy"][3]] == hist["test_accuracy"]
    assert [evals["test_loss"][1], evals["test_loss"][3]] == pytest.approx(hist["test_loss"], rel=1e-6)
    assert evals["test_loss"][0] != evals["test_loss"][1]  # step 5 is a different state


@pytest.mark.slow
def test_evals_interval_that_does_not_divide_the_epoch(tmp_path):
    cfg = Config(workdir=str(tmp_path), run_name="r", **{**TINY, "eval_every_steps": 4})
    saved = train.run(cfg)
    # segments of 4 in epochs of 10: boundaries 4, 8, 10, 14, 18, 20; run when >= 4 steps since the last
    assert saved["evals"]["step"] == [4, 8, 14, 18]


def test_long_epochs_show_a_step_counter(tmp_path, capsys, monkeypatch):
    """Epochs of >= 20 steps are cut into ten compiled segments and report progress at their ends
    (printed at most every 5 s; here every time), which changes nothing in training."""
    from lbbench.training import progress

    class EveryTime(progress.StepCounter):
        def __init__(self, total, label="", log=None):
            super().__init__(total, label, every_s=0.0, log=log)

    monkeypatch.setattr(progress, "StepCounter", EveryTime)
    cfg = Config(
        workdir=str(tmp_path), run_name="r", **{**TINY, "batch_size": 50, "noise_scale_groups": 2, "epochs": 1}
    )
    result = train.run(cfg)
    out = capsys.readouterr().out
    steps = [int(line.split("step ")[1].split("/")[0]) for line in out.splitlines() if "epoch 1: step" in line]
    assert steps == [2, 4, 6, 8, 10, 12, 14, 16, 18]  # every 20 // 10 steps, never the epoch's last step
    monkeypatch.undo()
    again = train.run(cfg.replace(run_name="again"))  # no printing: the counter changes nothing
    assert result["final"] == again["final"]
