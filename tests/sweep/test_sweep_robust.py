"""Sweeps shared by several processes, resume that checks what it skips, safe names, trial packing,
--set overrides, followup points, and experiment-file errors."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _paths import ROOT

from lbbench.cli import sweep as sweep_cli

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
HEADER = textwrap.dedent("""
    from lbbench.config import Config
    NAME = "t"
    def base_config(quick):
        return Config(dataset="random", model="tiny_mlp", optimizer="adam", epochs={epochs}, batch_size=100,
                      sharpness=False, save_params=False, noise_scale_groups=1, train_eval_examples=200,
                      learning_rate={lr})
""")


def experiment(tmp_path, grid, epochs=1, lr=1e-3, extra=""):
    path = tmp_path / "exp.py"
    path.write_text(HEADER.format(epochs=epochs, lr=lr) + textwrap.dedent(grid) + textwrap.dedent(extra))
    return str(path)


SEEDS = "def grid(quick):\n    return [{'seed': s, 'run_name': f'run{s}'} for s in range(%d)]\n"


def sweep_main(path, work, *args):
    return sweep_cli.main(["sweep", path, "--workdir", str(work), *args])


def trained(stdout):
    """Run names a sweep process reported training ("[i/n] name: status ...")."""
    return [l.split("] ", 1)[1].split(":")[0] for l in stdout.splitlines() if l.startswith("[")]


@pytest.mark.slow
def test_two_processes_share_one_sweep_folder_without_repeats(tmp_path):
    path = experiment(tmp_path, SEEDS % 6, epochs=3)
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "lbbench.sweep", path, "--workdir", str(work), "--max_trials_per_program=1"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    runs = [trained(out) for out, _ in outs]
    assert sorted(runs[0] + runs[1]) == [f"run{s}" for s in range(6)]  # every point exactly once
    sweep_dir = work / "t"
    for s in range(6):
        d = sweep_dir / f"run{s}"
        assert json.loads((d / "result.json").read_text())["status"] == "completed"
        assert len(glob.glob(str(d / "events.out.tfevents.*"))) == 1
        epochs = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in epochs if r["record"] == "epoch"] == [10, 20, 30]
    assert not [e for e in os.listdir(sweep_dir) if e.startswith(".")]  # no locks or staging left


def test_changed_point_is_reported_never_silently_skipped(tmp_path, capsys):
    work = tmp_path / "work"
    path = experiment(tmp_path, SEEDS % 2, lr=1e-3)
    assert sweep_main(path, work) == 0
    sweep_json = (work / "t" / "sweep.json").read_text()
    path = experiment(tmp_path, SEEDS % 2, lr=3e-3)  # the experiment file's lr was edited
    capsys.readouterr()
    assert sweep_main(path, work) == 2
    err = capsys.readouterr().err
    assert "2 finished point(s) were run with a different config" in err and "run0, run1" in err
    assert "--rerun_changed" in err
    assert (work / "t" / "sweep.json").read_text() == sweep_json  # no claim about the new value
    assert sweep_main(path, work, "--rerun_changed") == 0
    for s in range(2):
        assert json.loads((work / "t" / f"run{s}" / "result.json").read_text())["config"]["learning_rate"] == 3e-3
    capsys.readouterr()
    assert sweep_main(path, work) == 0 and "2 of 2 runs already finished" in capsys.readouterr().out


def test_dotdot_point_is_rejected_and_nothing_is_deleted(tmp_path, capsys):
    work = tmp_path / "work"
    (work / "t").mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    (work / "t" / "keep.txt").write_text("x")
    for name in ("..", ".", "../x", "/abs"):
        path = experiment(tmp_path, f"def grid(quick):\n    return [{{'run_name': {name!r}}}]\n")
        assert sweep_main(path, work) == 2
        assert "run_name" in capsys.readouterr().err
    assert (work / "keep.txt").exists() and (work / "t" / "keep.txt").exists()


def test_names_are_normalised_before_the_duplicate_check(tmp_path, capsys):
    path = experiment(tmp_path, "def grid(quick):\n    return [{'run_name': 'a'}, {'run_name': './a', 'seed': 1}]\n")
    assert sweep_main(path, tmp_path / "work") == 2
    assert "duplicate run_name(s) in grid: a" in capsys.readouterr().err


@pytest.mark.parametrize(
    "where, code, needle",
    [
        ("grid", "def grid(quick):\n    x = 1\n    return [1 / 0]\n", "exp.py:{line}: grid() raised ZeroDivisionError"),
        ("base_config", None, "exp.py:{line}: base_config() raised KeyError"),
        ("import", "def grid(quick):\n    return [\n", "cannot import: SyntaxError"),
    ],
)
def test_experiment_file_errors_name_file_and_line(tmp_path, capsys, where, code, needle):
    if where == "base_config":
        path = tmp_path / "exp.py"
        path.write_text("NAME = 't'\ndef base_config(quick):\n    return {}['missing']\ndef grid(q):\n    return []\n")
        line = 3
    else:
        path = experiment(tmp_path, code)
        line = len(open(path).read().splitlines())
    assert sweep_main(str(path), tmp_path / "work") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle.format(line=line) in err and "Traceback" not in err


def test_dry_run_prints_the_packing(tmp_path, capsys):
    grid = (
        "def grid(quick):\n    return [{'batch_size': b, 'seed': s, 'learning_rate': 1e-3 * (s + 1), "
        "'run_name': f'b{b}_s{s}'} for b in (50, 100) for s in range(3)]\n"
    )
    path = experiment(tmp_path, grid)
    assert sweep_main(path, tmp_path / "work", "--dry_run", "--max_trials_per_program=2") == 0
    out = capsys.readouterr().out
    assert "6 point(s) to train in 4 program(s)" in out
    assert "program 1: 2 trial(s): b50_s0, b50_s1" in out and "program 2: 1 trial(s): b50_s2" in out
    assert "program 3: 2 trial(s): b100_s0, b100_s1" in out
    assert not (tmp_path / "work").exists()


def test_set_overrides_every_point(tmp_path, capsys):
    path = experiment(tmp_path, SEEDS % 2)
    work = tmp_path / "work"
    assert sweep_main(path, work, "--set", "epochs=2", "--set", "learning_rate=0.01", "--set", "augment=false") == 0
    for s in range(2):
        cfg = json.loads((work / "t" / f"run{s}" / "result.json").read_text())["config"]
        assert (cfg["epochs"], cfg["learning_rate"], cfg["augment"]) == (2, 0.01, False)
    assert json.loads((work / "t" / "sweep.json").read_text())["set"]["epochs"] == 2
    for bad in ("nosuchkey=1", "epochs=two", "run_name=x", "epochs"):
        assert sweep_main(path, work, "--set", bad) == 2
    assert sweep_main(path, work, "--set", "learning_rate=nan") == 2
    assert "finite" in capsys.readouterr().err


FOLLOWUP = """
def followup(results, quick):
    grid = [k for k in results if k.startswith("run")]
    best = max(grid, key=lambda k: results[k]["final"]["test_accuracy"])
    seed = results[best]["config"]["seed"]
    return [{"seed": seed, "run_name": "best"}] + ([{"seed": 10 + seed, "run_name": "best_again"}]
                                                   if "best" in results else [])
"""


def test_followup_runs_points_derived_from_results(tmp_path, capsys):
    path = experiment(tmp_path, SEEDS % 2, extra=FOLLOWUP)
    work = tmp_path / "work"
    assert sweep_main(path, work) == 0
    out = capsys.readouterr().out
    assert "followup() added 1 point(s): best" in out and "followup() added 1 point(s): best_again" in out
    assert json.loads((work / "t" / "best_again" / "result.json").read_text())["status"] == "completed"
    info = json.loads((work / "t" / "sweep.json").read_text())
    assert [p["run_name"] for p in info["followup"]] == ["best", "best_again"]
    with open(work / "t" / "runs.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 4
    assert len(info["invocations"]) == 1 and info["invocations"][0]["wall_s"] == info["time"]["wall_s"]
    assert sweep_main(path, work) == 0  # rerun: the same followups, all finished, nothing retrained
    assert trained(capsys.readouterr().out) == []
    again = json.loads((work / "t" / "sweep.json").read_text())  # the training invocation's wall time is kept
    assert again["invocations"][0] == info["invocations"][0] and len(again["invocations"]) == 2


@pytest.mark.slow
def test_sigterm_stops_a_sweep_with_143(tmp_path):
    """Robust under load: it waits for an event (the first point's result.json), never a fixed time,
    and the handler only sets a flag, so the signal cannot be lost inside JAX's callbacks."""
    path = experiment(tmp_path, SEEDS % 50, epochs=20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lbbench.sweep", path, "--workdir", str(tmp_path / "w"), "--max_trials_per_program=1"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 600
    while not glob.glob(str(tmp_path / "w" / "t" / "*" / "result.json")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err and "Exception ignored" not in err
    left = [f for f in os.listdir(tmp_path / "w" / "t") if f.startswith(".run")]
    assert left == []  # no lock, lock temporary or staging folder left behind
