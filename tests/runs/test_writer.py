"""RunWriter read back with TensorBoard's own EventAccumulator: by_epoch tags, HParams, status."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from lbbench.config import Config
from lbbench.runs import hparams
from lbbench.runs.writer import RunWriter
from lbbench.training import loop as train


def _read(run_dir):
    ea = EventAccumulator(str(run_dir))
    ea.Reload()
    return ea


def _hparams(ea):
    content = ea.PluginTagToContent("hparams")
    out = {}
    for tag, raw in content.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        out[tag.split("/")[-1]] = getattr(data, data.WhichOneof("data"))
    return out


def test_by_epoch_tags_use_epochs_as_steps_and_records_carry_epochs(tmp_path):
    w = RunWriter(str(tmp_path), Config().to_dict())
    for epoch in (1, 2, 3):
        w.scalars(140 * epoch, {"test/accuracy": 0.1 * epoch, "train/loss": None}, record="epoch", epoch=epoch)
    w.scalars(420, {"sharpness/lambda_max": 7.0}, record="sharpness")
    w.scalars(420, {"final/test_accuracy": 0.3})
    w.close()
    ea = _read(tmp_path)
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("by_epoch/test/accuracy")] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert [e.step for e in ea.Scalars("test/accuracy")] == [140, 280, 420]
    assert "by_epoch/final/test_accuracy" not in ea.Tags()["scalars"]
    assert "epoch" in ea.SummaryMetadata("by_epoch/test/accuracy").summary_description
    assert "test set" in ea.SummaryMetadata("test/accuracy").summary_description
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3, 3]  # the sharpness record inherits the last epoch


def test_a_repeated_scalar_at_the_same_step_is_written_once(tmp_path):
    w = RunWriter(str(tmp_path), Config().to_dict())
    w.scalars(10, {"noise_scale/b_simple": 500.0}, epoch=1)
    w.scalars(10, {"noise_scale/b_simple": 500.0})
    w.close()
    assert len(_read(tmp_path).Scalars("noise_scale/b_simple")) == 1


def test_hparams_show_only_the_experiment_keys_with_their_types(tmp_path):
    cfg = Config(batch_size=4096, warmup_epochs=3.0, epsilons=(1e-3,))
    keys = hparams.experiment_keys(["warmup_epochs", "seed", "run_name"])
    w = RunWriter(str(tmp_path), cfg.to_dict(), hparam_keys=keys)
    w.close()
    hp = _hparams(_read(tmp_path))
    names = [i.name for i in hp["experiment"].hparam_infos]
    assert names == ["batch_size", "optimizer", "learning_rate", "schedule", "epochs", "warmup_epochs", "seed"]
    start = hp["session_start_info"].hparams
    assert start["batch_size"].string_value == "4096"  # TensorBoard would print the number 4096 as 4096.0
    assert start["optimizer"].string_value == "adam" and start["learning_rate"].number_value == 1e-3
    metrics = [m.name.tag for m in hp["experiment"].metric_infos]
    assert "final/test_accuracy" in metrics and "sharpness/eps_full_0.001" in metrics
    assert "sharpness/eps_subspace_0.001" in metrics
    assert hp["session_end_info"].status == api_pb2.STATUS_SUCCESS


def test_a_sweeps_varying_keys_are_marked_differs_with_their_grid_domain(tmp_path):
    grid = {
        "grid": [
            {"batch_size": b, "warmup_epochs": w, "seed": 0, "run_name": f"r{b}_{w}"}
            for b in (6000, 256, 64)
            for w in (0.0, 3.0)
        ],
        "base": Config(learning_rate=0.1).to_dict(),
    }
    cfg = Config(batch_size=256, warmup_epochs=3.0, learning_rate=0.1)
    w = RunWriter(str(tmp_path), cfg.to_dict(), grid=grid)
    w.close()
    infos = {i.name: i for i in _hparams(_read(tmp_path))["experiment"].hparam_infos}
    assert set(infos) == {"batch_size", "optimizer", "learning_rate", "schedule", "epochs", "warmup_epochs", "seed"}
    assert {k for k, i in infos.items() if i.differs} == {"batch_size", "warmup_epochs"}  # shown first
    assert [v.string_value for v in infos["batch_size"].domain_discrete.values] == ["64", "256", "6000"]
    assert (infos["warmup_epochs"].domain_interval.min_value, infos["warmup_epochs"].domain_interval.max_value) == (
        0,
        3,
    )


def test_sweep_grid_comes_from_sweep_json(tmp_path):
    (tmp_path / "sweep.json").write_text(
        json.dumps(
            {
                "grid": [{"batch_size": 64, "warmup_epochs": 3.0, "seed": 0, "run_name": "a"}],
                "base_config": {"epochs": 20},
            }
        )
    )
    assert hparams.grid_keys(str(tmp_path)) == ["batch_size", "run_name", "seed", "warmup_epochs"]
    assert hparams.sweep_grid(str(tmp_path))["base"] == {"epochs": 20}
    assert hparams.grid_keys(str(tmp_path / "nowhere")) == [] and hparams.sweep_grid(str(tmp_path / "x")) is None


def test_diverged_run_is_a_failure_in_hparams(tmp_path):
    cfg = Config(
        dataset="random",
        model="tiny_mlp",
        batch_size=100,
        epochs=3,
        sharpness=False,
        train_eval_examples=200,
        noise_scale_groups=1,
        optimizer="sgd",
        learning_rate=1e30,
        workdir=str(tmp_path),
        run_name="boom",
        save_params=False,
    )
    result = train.run(cfg)
    assert result["status"] == "diverged"
    ea = _read(tmp_path / "boom")
    assert _hparams(ea)["session_end_info"].status == api_pb2.STATUS_FAILURE
    assert [e.step for e in ea.Scalars("by_epoch/optim/learning_rate")][0] == 1
    assert result["provenance"]["command"] and result["provenance"]["lbbench_version"]


def test_wandb_receives_scalars_when_asked_for(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    class FakeRun:
        summary = {}

        def log(self, data, step):
            calls.append((step, data))

        def finish(self, exit_code):
            calls.append(("finish", exit_code))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    w = RunWriter(str(tmp_path), Config().to_dict(), wandb_project="lbbench-test")
    w.scalars(14, {"test/accuracy": 0.5}, epoch=1)
    w.close("diverged")
    assert calls == [(14, {"test/accuracy": 0.5, "epoch": 1}), ("finish", 1)]


def test_wandb_asked_for_but_missing_is_bad_input(monkeypatch):
    from lbbench import config
    from lbbench.config import ConfigError

    monkeypatch.setattr(config.importlib.util, "find_spec", lambda name: None if name == "wandb" else object())
    with pytest.raises(ConfigError) as e:
        Config(wandb_project="p").validate()
    assert e.value.flag == "wandb_project" and "pip install wandb" in str(e.value)
