"""RunWriter read back with TensorBoard's own EventAccumulator: per_epoch tags, HParams, status."""

import json
import os
import socket
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from lbbench.config import Config
from lbbench.runs import hparams
from lbbench.runs import writer as writer_lib
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


def test_per_epoch_tags_use_epochs_as_steps_and_records_carry_epochs(tmp_path):
    w = RunWriter(str(tmp_path), Config().to_dict())
    for epoch in (1, 2, 3):
        w.scalars(140 * epoch, {"accuracy/test": 0.1 * epoch, "loss/train": None}, record="epoch", epoch=epoch)
    w.scalars(420, {"sharpness/lambda_max": 7.0}, record="sharpness")
    w.scalars(420, {"result/test_accuracy": 0.3})
    w.close()
    ea = _read(tmp_path)
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("per_epoch/accuracy/test")] == [
        (1, 0.1),
        (2, 0.2),
        (3, 0.3),
    ]
    assert [e.step for e in ea.Scalars("accuracy/test")] == [140, 280, 420]
    assert "per_epoch/result/test_accuracy" not in ea.Tags()["scalars"]
    assert "epoch" in ea.SummaryMetadata("per_epoch/accuracy/test").summary_description
    assert "test set" in ea.SummaryMetadata("accuracy/test").summary_description
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3, 3]  # the sharpness record inherits the last epoch


def test_a_repeated_scalar_at_the_same_step_is_written_once(tmp_path):
    w = RunWriter(str(tmp_path), Config().to_dict())
    w.scalars(10, {"noise_scale/b_simple": 500.0}, epoch=1)
    w.scalars(10, {"noise_scale/b_simple": 500.0})
    w.close()
    assert len(_read(tmp_path).Scalars("noise_scale/b_simple")) == 1


def _finished_run(logdir, name, status="completed", **overrides):
    """A run folder with a result.json and its HParams session, as a run that ended leaves it."""
    cfg = Config(run_name=name, workdir=str(logdir), **overrides).to_dict()
    (logdir / name).mkdir()
    (logdir / name / "result.json").write_text(json.dumps({"config": cfg, "status": status}))
    w = RunWriter(str(logdir / name), cfg, command=f"lbbench --run_name={name}")
    w.close(status)
    return cfg


def test_a_run_session_has_key_hparams_scaled_lr_non_defaults_and_status(tmp_path):
    _finished_run(tmp_path, "a", batch_size=4096, lr_scaling="sqrt", weight_decay=1e-4, eval_every_steps=50)
    hp = _hparams(_read(tmp_path / "a"))
    start = hp["session_start_info"].hparams
    assert set(hparams.KEY_HPARAMS) <= set(start)  # a protobuf map: TensorBoard orders the columns itself
    assert start["batch_size"].string_value == "4096"  # TensorBoard would print the number 4096 as 4096.0
    assert start["LR_scaled"].number_value == pytest.approx(1e-3 * (4096 / 256) ** 0.5)
    assert start["weight_decay"].number_value == 1e-4 and start["Status"].string_value == "completed"
    assert "eval_every_steps" not in start and "run_name" not in start  # bookkeeping is not a hyperparameter
    assert hp["session_end_info"].status == api_pb2.STATUS_SUCCESS
    text = _read(tmp_path / "a").Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "lbbench --run_name=a" in text and "| weight_decay | 0.0001 |" in text and '"epochs": 20' in text


def test_the_logdir_experiment_lists_what_differs_across_its_runs(tmp_path):
    _finished_run(tmp_path, "a", momentum=0.5)
    _finished_run(tmp_path, "b", epochs=3, status="diverged")
    writer_lib.write_logdir_experiment(str(tmp_path), hparams.metric_tags(Config().to_dict()))
    hp = _hparams(_read(tmp_path))  # the logdir itself is TensorBoard's run "."
    infos = {i.name: i for i in hp["experiment"].hparam_infos}
    assert {"batch_size", "LR_scaled", "momentum", "epochs", "Status"} <= set(infos)
    assert {k for k, i in infos.items() if i.differs} == {"momentum", "epochs", "Status"}
    shown_first = sorted(infos, key=lambda k: (not infos[k].differs, k))[:5]  # TensorBoard ticks these five
    assert shown_first == ["Status", "epochs", "momentum", "LR_scaled", "batch_size"]
    assert [v.string_value for v in infos["epochs"].domain_discrete.values] == ["3", "20"]  # numeric order
    assert [v.string_value for v in infos["Status"].domain_discrete.values] == ["completed", "diverged", "failed"]
    metrics = [m.name.tag for m in hp["experiment"].metric_infos]
    assert metrics[0] == "result/test_accuracy" and "sharpness/eps_full_0.001" in metrics
    for run in ("a", "b"):
        assert "experiment" not in _hparams(_read(tmp_path / run)), "one experiment summary per logdir"
    writer_lib.write_logdir_experiment(str(tmp_path), [])  # rewritten in place, never a second file
    assert [f for f in os.listdir(tmp_path) if "tfevents" in f] == [hparams.EXPERIMENT_FILE]


def test_a_sweeps_grid_keys_are_marked_differs_with_their_grid_domain(tmp_path):
    grid = [{"batch_size": b, "warmup_epochs": w, "run_name": f"r{b}_{w}"} for b in (6000, 256, 64) for w in (0.0, 3.0)]
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": grid, "base_config": Config(learning_rate=0.1).to_dict()}))
    writer_lib.write_logdir_experiment(str(tmp_path), [])
    infos = {i.name: i for i in _hparams(_read(tmp_path))["experiment"].hparam_infos}
    assert {k for k, i in infos.items() if i.differs} == {"batch_size", "warmup_epochs"}  # shown first
    assert [v.string_value for v in infos["batch_size"].domain_discrete.values] == ["64", "256", "6000"]
    interval = infos["warmup_epochs"].domain_interval
    assert (interval.min_value, interval.max_value) == (0, 3)


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
    assert [e.step for e in ea.Scalars("per_epoch/optim/learning_rate")][0] == 1
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

    inits = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: inits.append(kw) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    staging = tmp_path / ".grp_s3.new-1-abc"
    staging.mkdir()
    cfg = Config(workdir=str(tmp_path), run_name="grp_s3", seed=3).to_dict()
    w = RunWriter(str(staging), cfg, wandb_project="lbbench-test")
    w.scalars(14, {"accuracy/test": 0.5}, epoch=1)
    w.close("diverged")
    assert calls == [(14, {"accuracy/test": 0.5, "epoch": 1}), ("finish", 1)]
    assert (inits[0]["name"], inits[0]["group"]) == ("grp_s3", "grp")  # seeds grouped, never the staging name
    assert inits[0]["dir"] == str(tmp_path / "wandb")  # not the staging folder, renamed when the run ends
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": [{"run_name": "grp_s3"}]}))
    RunWriter(str(staging), cfg, wandb_project="lbbench-test").close()
    assert (inits[1]["dir"], inits[1]["group"]) == (str(tmp_path / "elsewhere"), tmp_path.name)  # a sweep's trials


def test_wandb_asked_for_but_missing_is_bad_input(monkeypatch):
    from lbbench import config
    from lbbench.config import ConfigError

    monkeypatch.setattr(config.importlib.util, "find_spec", lambda name: None if name == "wandb" else object())
    with pytest.raises(ConfigError) as e:
        Config(wandb_project="p").validate()
    assert e.value.flag == "wandb_project" and "pip install wandb" in str(e.value)


def test_a_writer_killed_mid_write_leaves_a_folder_the_next_write_removes(tmp_path):
    _finished_run(tmp_path, "a")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{writer_lib.TMP_PREFIX}{socket.gethostname()}-{int(dead.stdout)}-x1"
    stale.mkdir()
    (stale / "events.out.tfevents.half").write_bytes(b"\0")
    mine = tmp_path / f"{writer_lib.TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-x2"  # a live writer's
    mine.mkdir()
    writer_lib.write_logdir_experiment(str(tmp_path), [])
    assert not stale.exists() and mine.exists()
