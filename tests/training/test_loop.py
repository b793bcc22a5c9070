"""End-to-end runs on tiny configs: outputs exist, are finite, TensorBoard can read them."""

import json
import math
import os

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lbbench.config import Config, ConfigError
from lbbench.results import load_run
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
)


def tiny_cfg(tmp_path, **kw):
    return Config(workdir=str(tmp_path), run_name="run", **{**TINY, **kw})


def test_two_epochs_write_all_outputs(tmp_path):
    result = train.run(tiny_cfg(tmp_path))
    run_dir = tmp_path / "run"
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["status"] == "completed"
    for key in ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "generalization_gap"):
        assert math.isfinite(saved["final"][key])
    assert saved["final"]["generalization_gap"] == pytest.approx(
        saved["final"]["train_accuracy"] - saved["final"]["test_accuracy"]
    )
    assert {"total_s", "compile_s", "examples_per_s"} <= set(saved["timing"])
    assert saved["environment"]["jax"] == jax.__version__
    assert saved["config"]["batch_size"] == 100 and saved["history"]["epoch"] == [1, 2]
    assert saved["history"]["step"] == [10, 20]  # 1000 examples / 100 per step
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines if l["record"] == "epoch"] == [10, 20]
    assert os.path.exists(run_dir / "params.msgpack")
    assert result["run_dir"] == str(run_dir)


def test_tensorboard_reads_scalars_and_hparams(tmp_path):
    train.run(tiny_cfg(tmp_path))
    ea = EventAccumulator(str(tmp_path / "run"))
    ea.Reload()
    tags = ea.Tags()["scalars"]
    for tag in (
        "loss/train",
        "accuracy/test",
        "accuracy/gap",
        "optim/learning_rate",
        "optim/distance_from_init",
        "result/test_accuracy",
        "noise_scale/b_simple",
    ):
        assert tag in tags, tag
    assert [e.step for e in ea.Scalars("accuracy/test")] == [10, 20]
    assert len(ea.Scalars("train_steps/loss")) == 20
    content = ea.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in content and "_hparams_/session_end_info" in content
    logdir = EventAccumulator(str(tmp_path))  # the logdir's one experiment summary (TensorBoard's run ".")
    logdir.Reload()
    assert "_hparams_/experiment" in logdir.PluginTagToContent("hparams")
    assert b"batch_size" in content["_hparams_/session_start_info"]


def test_deterministic_given_seed(tmp_path):
    a = train.run(tiny_cfg(tmp_path / "a", seed=3))
    b = train.run(tiny_cfg(tmp_path / "b", seed=3))
    c = train.run(tiny_cfg(tmp_path / "c", seed=4))
    assert a["final"] == b["final"]
    assert a["final"] != c["final"]


def test_load_run_restores_the_final_model(tmp_path):
    result = train.run(tiny_cfg(tmp_path, model="tiny_bn_mlp", ghost_batch_size=25))
    cfg, model, variables = load_run(result["run_dir"])
    from lbbench.data import load

    ds = load("random", "")
    logits = model.apply(variables, ds.x_test, train=False)
    acc = float(np.mean(np.argmax(logits, -1) == ds.y_test))
    assert acc == pytest.approx(result["final"]["test_accuracy"], abs=1e-6)


def test_huge_learning_rate_diverges_and_keeps_files(tmp_path):
    result = train.run(tiny_cfg(tmp_path, optimizer="sgd", learning_rate=1e30, epochs=5))
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == saved["status"] == "diverged"
    assert saved["diverged_epoch"] >= 1 and "NaN" in saved["error"]
    assert (tmp_path / "run" / "metrics.jsonl").read_text().strip()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "run"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_c1", "tiny_bn_mlp"])
@pytest.mark.parametrize("schedule", ["warmup", "warmup_cosine", "warmup_step"])
def test_models_and_schedules_train(tmp_path, model, schedule):
    result = train.run(tiny_cfg(tmp_path, model=model, schedule=schedule, warmup_epochs=1, epochs=2))
    assert result["status"] == "completed"
    assert result["history"]["learning_rate"][-1] > 0


@pytest.mark.slow
def test_sharpness_measured_logged_and_stored(tmp_path):
    cfg = tiny_cfg(
        tmp_path,
        model="tiny_bn_mlp",
        ghost_batch_size=25,
        sharpness=True,
        sharpness_every=1,
        sharpness_examples=200,
        lanczos_iters=8,
        hutchinson_probes=4,
        eps_subspace_dim=5,
        lbfgs_iters=3,
        spectral_density=True,
        sharpness_per_layer=True,
    )
    result = train.run(cfg)
    s = json.loads((tmp_path / "run" / "result.json").read_text())["sharpness"]
    assert s == result["sharpness"] and s["num_examples"] == 200
    assert s["lambda_max"] > 0 and s["hessian_trace"] > 0 and s["hessian_trace_stderr"] > 0
    assert set(s["epsilon_sharpness"]) == {"full_0.001", "subspace_0.001"}  # Keskar's epsilon = 1e-3, both spaces
    assert all(v >= 0 for v in s["epsilon_sharpness"].values())
    ea = EventAccumulator(str(tmp_path / "run"))
    ea.Reload()
    # sharpness_every=1 with 2 epochs: once after epoch 1, once at the end
    assert [e.step for e in ea.Scalars("sharpness/lambda_max")] == [10, 20]
    assert "sharpness/spectral_density" in ea.Tags()["histograms"]
    density = ea.Histograms("sharpness/spectral_density")[-1].histogram_value
    np.testing.assert_allclose(density.num, 1.0, atol=0.05)  # the density integrates to one
    assert set(s["per_layer"]) == {"Dense_0", "Dense_1", "Dense_2", "GhostBatchNorm_0", "GhostBatchNorm_1"}
    assert "sharpness/layer/Dense_0/lambda_max" in ea.Tags()["scalars"]
    history = json.loads((tmp_path / "run" / "result.json").read_text())["sharpness_history"]
    assert history["step"] == [10, 20] and history["lambda_max"][-1] == s["lambda_max"]


def test_interrupted_run_is_recorded_as_failed_not_completed(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "epoch_fn", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.run(tiny_cfg(tmp_path))
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["status"] == "failed" and saved["error"].startswith("KeyboardInterrupt")
    assert saved["history"]["epoch"] == []


def test_a_longer_run_repeats_the_shorter_one_step_for_step(tmp_path):
    """With warmup in steps and a constant rate after it, the first epochs do not depend on the run length:
    doubling a study's budget cannot move a crossing that happened inside it (issue 17)."""
    kw = dict(schedule="warmup", warmup_steps=3, optimizer="momentum", learning_rate=0.05, eval_every_steps=5)
    short = train.run(tiny_cfg(tmp_path / "short", epochs=2, **kw))
    long = train.run(tiny_cfg(tmp_path / "long", epochs=4, **kw))
    for key in ("val_accuracy", "val_loss", "train_loss", "learning_rate"):
        assert long["history"][key][:2] == short["history"][key]
    n = len(short["evals"]["step"])
    assert long["evals"]["val_loss"][:n] == short["evals"]["val_loss"] and short["dataset"]["num_val"] == 5000
    assert len(long["evals"]["step"]) > n


def test_tuning_trials_can_leave_the_test_set_out_of_mid_epoch_evaluations(tmp_path):
    """--noeval_test_every_steps: validation at the cadence, test only at epoch ends; the same run otherwise."""
    kw = dict(validation_examples=300, eval_every_steps=4)
    both = train.run(tiny_cfg(tmp_path / "both", **kw))
    val = train.run(tiny_cfg(tmp_path / "val", eval_test_every_steps=False, **kw))
    assert "test_accuracy" in both["evals"] and "test_accuracy" not in val["evals"]
    assert val["evals"]["val_accuracy"] == both["evals"]["val_accuracy"]
    assert val["history"]["test_accuracy"] == both["history"]["test_accuracy"]  # epoch ends keep test
    assert val["final"] == both["final"]
    with pytest.raises(ConfigError, match="eval_test_every_steps"):
        tiny_cfg(tmp_path, eval_test_every_steps=False, validation_examples=0, eval_every_steps=4).validate()


def test_validation_metrics_are_recorded_everywhere(tmp_path):
    result = train.run(tiny_cfg(tmp_path, validation_examples=300, eval_every_steps=4))
    assert result["dataset"]["num_val"] == 300
    assert math.isfinite(result["final"]["val_accuracy"]) and len(result["history"]["val_accuracy"]) == 2
    assert set(result["evals"]) >= {"step", "val_accuracy", "val_loss", "test_accuracy", "test_loss"}
    acc = EventAccumulator(str(tmp_path / "run")).Reload()
    assert "accuracy/validation" in acc.Tags()["scalars"] and "mid_epoch/val_accuracy" in acc.Tags()["scalars"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["record"] == "epoch"]
    assert len(epochs) == 2 and all(math.isfinite(r["accuracy/validation"]) for r in epochs)


def test_a_run_resumed_past_its_pause_epoch_pauses_at_the_next_epoch_end(tmp_path):
    """A rung replayed from a checkpoint that is already past it (a sweep restarted after an interrupt
    in a later rung) stops at its first epoch end, paused — it must not train to the full budget."""
    cfg = tiny_cfg(tmp_path, epochs=5)
    first = train.run(cfg.replace(pause_at_epoch=2))
    assert first["status"] == "paused" and len(first["history"]["epoch"]) == 2
    again = train.run(cfg.replace(pause_at_epoch=1, resume=True))  # checkpoint at the start of epoch 3
    assert again["status"] == "paused" and again["history"]["epoch"] == [1, 2, 3]
    done = train.run(cfg.replace(resume=True))
    assert done["status"] == "completed" and done["history"]["epoch"] == [1, 2, 3, 4, 5]
