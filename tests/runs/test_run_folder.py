"""A run folder holds exactly one run: reruns are refused, --overwrite replaces only on success,
a failed attempt never replaces a finished run, load_run refuses what it cannot trust, and a
second process on the same folder is turned away."""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
from _paths import ROOT

from lbbench.cli import interpolate as interpolate_cli
from lbbench.cli import train as main
from lbbench.config import Config, ConfigError
from lbbench.results import RunLoadError, load_run
from lbbench.runs import folder as run_folder
from lbbench.runs import hparams
from lbbench.training import loop as train
from lbbench.training.trainer import Trainer

TINY = [
    "--dataset=random",
    "--model=tiny_mlp",
    "--batch_size=100",
    "--epochs=1",
    "--nosharpness",
    "--noise_scale_groups=1",
    "--train_eval_examples=200",
]


def cli(tmp_path, *extra):
    return main.main(["lbbench", *TINY, f"--workdir={tmp_path}", "--run_name=r", *extra])


def files(d):
    """The folder's entries, without the logdir's HParams column list every finished run rewrites."""
    return sorted(f for f in os.listdir(d) if f != hparams.EXPERIMENT_FILE)


def test_rerun_is_refused_and_overwrite_replaces_cleanly(tmp_path, capsys):
    assert cli(tmp_path) == 0
    first = json.loads((tmp_path / "r" / "result.json").read_text())
    capsys.readouterr()
    assert cli(tmp_path, "--seed=1") == main.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a completed run" in err and "--overwrite" in err
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == first  # untouched
    assert cli(tmp_path, "--seed=1", "--overwrite") == 0
    second = json.loads((tmp_path / "r" / "result.json").read_text())
    assert second["config"]["seed"] == 1
    # exactly one run's files: one event file, one set of metrics, params that match result.json
    assert len(glob.glob(str(tmp_path / "r" / "events.out.tfevents.*"))) == 1
    epochs = [l for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines() if '"epoch"' in l]
    assert len(epochs) == 1
    load_run(str(tmp_path / "r"))
    assert [f for f in files(tmp_path) if f.startswith(".")] == []  # no staging, lock or old copies left


def test_failed_overwrite_keeps_the_completed_run(tmp_path, monkeypatch, capsys):
    assert cli(tmp_path) == 0
    before = {f: (tmp_path / "r" / f).read_bytes() for f in files(tmp_path / "r")}

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "epoch_fn", interrupt)
    assert cli(tmp_path, "--seed=1", "--overwrite") == main.EXIT_INTERRUPTED
    assert {f: (tmp_path / "r" / f).read_bytes() for f in files(tmp_path / "r")} == before
    kept = [f for f in files(tmp_path) if ".failed-" in f]
    assert len(kept) == 1  # the failed attempt is kept aside for inspection, hidden from reports
    assert json.loads((tmp_path / kept[0] / "result.json").read_text())["status"] == "failed"


def test_killed_run_leaves_nothing_visible_and_is_cleaned_up(tmp_path):
    cfg = Config(
        dataset="random",
        model="tiny_mlp",
        batch_size=100,
        epochs=1,
        sharpness=False,
        noise_scale_groups=1,
        workdir=str(tmp_path),
        run_name="r",
    )
    # what SIGKILL during a run leaves: a staging folder and a lock of a dead process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".r.new-1-abc").mkdir()
    (tmp_path / ".r.new-1-abc" / "metrics.jsonl").write_text("{}\n")
    (tmp_path / ".r.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout), "token": "x"}))
    assert not os.path.exists(tmp_path / "r")
    result = train.run(cfg)
    assert result["status"] == "completed"
    assert files(tmp_path) == ["r"]


@pytest.mark.slow
def test_load_run_checks_status_and_parameters(tmp_path):
    base = Config(
        dataset="random",
        model="tiny_mlp",
        batch_size=100,
        epochs=1,
        sharpness=False,
        noise_scale_groups=1,
        workdir=str(tmp_path),
    )
    a = train.run(base.replace(run_name="a"))
    b = train.run(base.replace(run_name="b", seed=1))
    load_run(a["run_dir"])
    shutil.copy(os.path.join(b["run_dir"], "params.msgpack"), os.path.join(a["run_dir"], "params.msgpack"))
    with pytest.raises(RunLoadError, match="not the file this run wrote"):
        load_run(a["run_dir"])
    d = train.run(base.replace(run_name="d", optimizer="sgd", learning_rate=1e30, epochs=3))
    assert d["status"] == "diverged"
    with pytest.raises(RunLoadError, match="did not complete \\(status diverged"):
        load_run(d["run_dir"])
    # parameters of another architecture, even with a matching checksum, are refused
    w = train.run(base.replace(run_name="w", model="tiny_bn_mlp"))
    res = json.loads(open(os.path.join(w["run_dir"], "result.json")).read())
    res["config"]["model"] = "tiny_mlp"
    open(os.path.join(w["run_dir"], "result.json"), "w").write(json.dumps(res))
    with pytest.raises(RunLoadError, match="does not match the config's model"):
        load_run(w["run_dir"])
    with pytest.raises(RunLoadError, match="no result.json"):
        load_run(str(tmp_path / "nothing"))


def test_load_run_without_a_checksum_needs_trust(tmp_path, capsys):
    cfg = Config(dataset="random", model="tiny_mlp", batch_size=100, epochs=1, sharpness=False, noise_scale_groups=1)
    runs = [
        train.run(cfg.replace(workdir=str(tmp_path), run_name=n, batch_size=b)) for n, b in (("a", 100), ("b", 500))
    ]
    for r in runs:  # as an older lbbench, or a hand-edited result.json, would leave it
        path = os.path.join(r["run_dir"], "result.json")
        res = json.loads(open(path).read())
        del res["params_sha256"]
        open(path, "w").write(json.dumps(res))
    with pytest.raises(RunLoadError, match="records no params_sha256.*trust=True"):
        load_run(runs[0]["run_dir"])
    assert load_run(runs[0]["run_dir"], trust=True)[0].run_name == "a"
    args = ["lbbench-interpolate", runs[0]["run_dir"], runs[1]["run_dir"], "--points=3"]
    assert interpolate_cli.main(args) == 2
    assert "--trust" in capsys.readouterr().err
    assert interpolate_cli.main([*args, "--trust"]) == 0


def test_second_process_on_the_same_run_folder_is_refused(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\nfrom lbbench.runs import locks\nlocks.acquire(sys.argv[1])\n"
            "print('locked', flush=True)\ntime.sleep(60)",
            str(tmp_path / ".r.lock"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = Config(dataset="random", model="tiny_mlp", workdir=str(tmp_path), run_name="r")
        with pytest.raises(ConfigError, match=f"is in use: .*pid {holder.pid}"):
            run_folder.RunFolder.open(cfg.validate())
    finally:
        holder.kill()
        holder.wait()
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "..", "."])
def test_run_names_cannot_escape_the_workdir(tmp_path, name, capsys):
    work = tmp_path / "work"
    code = main.main(["lbbench", *TINY, f"--workdir={work}", f"--run_name={name}"])
    err = capsys.readouterr().err
    assert code == main.EXIT_BAD_INPUT and "--run_name:" in err
    assert not os.path.exists(tmp_path / "x") and files(tmp_path) in ([], ["work"])


def test_dot_slash_name_is_the_same_run(tmp_path, capsys):
    assert cli(tmp_path) == 0
    code = main.main(["lbbench", *TINY, f"--workdir={tmp_path}", "--run_name=./r"])
    assert code == main.EXIT_BAD_INPUT and "already holds" in capsys.readouterr().err


@pytest.mark.slow
def test_a_rerun_without_run_name_gets_the_next_version_and_loses_nothing(tmp_path, capsys):
    """The README's command run twice: two run folders, the second `…_v2`, said in one line (issue 21)."""
    args = ["lbbench", *TINY, f"--workdir={tmp_path}"]
    assert main.main(args) == 0
    (first,) = files(tmp_path)
    first_result = (tmp_path / first / "result.json").read_text()
    capsys.readouterr()
    assert main.main(args) == 0
    err = capsys.readouterr().err
    assert files(tmp_path) == sorted([first, f"{first}_v2"])
    assert f"this one is {first}_v2" in err and len([l for l in err.splitlines() if "already holds" in l]) == 1
    assert (tmp_path / first / "result.json").read_text() == first_result  # the first run untouched
    assert main.main(args + ["--seeds=0,1"]) == 0  # seeds: the version goes before the seed
    base = first.rsplit("_s", 1)[0]
    assert {f"{base}_v2_s0", f"{base}_v2_s1"} <= set(files(tmp_path))  # {base}_s0 was taken by the first run
    assert main.main(args + ["--seeds=0,1"]) == 0
    assert {f"{base}_v3_s0", f"{base}_v3_s1"} <= set(files(tmp_path))
