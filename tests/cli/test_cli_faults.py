"""Faults end cleanly: real SIGTERM/SIGINT to real processes, a disk that fills up, damaged inputs
to the report, an unreachable multi-host coordinator; and result files are strict JSON with the
user's umask."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from _paths import ROOT

from lbbench.cli import train as main
from lbbench.report.write import write_report
from lbbench.runs import atomic, hparams
from lbbench.runs.atomic import write_json as atomic_write_json

TINY = [
    "--dataset=random",
    "--model=tiny_mlp",
    "--batch_size=100",
    "--noise_scale_groups=1",
    "--train_eval_examples=200",
]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}


def _start(tmp_path, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "lbbench.main", *TINY, f"--workdir={tmp_path}", "--run_name=r", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc, needle, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never saw {needle!r}; stderr: {proc.stderr.read()[-2000:]}")


@pytest.mark.slow
def test_sigterm_marks_the_run_failed_and_exits_143(tmp_path):
    proc = _start(tmp_path, "--epochs=100000", "--nosharpness")
    _wait_for(proc, "epoch   2/")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "terminated (SIGTERM)" in lines[0] and "Traceback" not in err
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["status"] == "failed" and "Terminated" in result["error"]


@pytest.mark.slow
def test_ctrl_c_during_the_hessian_measurement_is_clean(tmp_path):
    proc = _start(
        tmp_path,
        "--epochs=1",
        "--sharpness",
        "--sharpness_examples=1000",
        "--lanczos_iters=30",
        "--hutchinson_probes=30",
        "--epsilons=1e-3,5e-4,1e-4",
        "--lbfgs_iters=30",
    )
    _wait_for(proc, "lbbench: measuring sharpness")  # printed as the measurement starts: an event, not a sleep
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err  # not -11 (segfault) or -6 (abort)
    assert "Ctrl-C received; stopping at the next safe point" in err
    assert "interrupted" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert json.loads((tmp_path / "r" / "result.json").read_text())["status"] == "failed"


class _FullDiskFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class _FullDiskOs:
    """The os module as atomic.py sees it, except that files it writes hit a full disk."""

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r"):
        return _FullDiskFile(os.fdopen(fd, mode))


def _all_files(d):
    return {os.path.join(p, f): os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(d) for f in fs}


def test_full_disk_gives_one_line_and_damages_nothing(tmp_path, monkeypatch, capsys):
    args = ["lbbench", *TINY, "--epochs=1", "--nosharpness", f"--workdir={tmp_path}", "--run_name=r"]
    assert main.main(args) == 0
    before = {p: open(p, "rb").read() for p in _all_files(tmp_path)}
    capsys.readouterr()
    monkeypatch.setattr(atomic, "os", _FullDiskOs())
    assert main.main(args + ["--overwrite", "--seed=1"]) == main.EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err and "Traceback" not in err
    assert {p: open(p, "rb").read() for p in _all_files(tmp_path)} == before  # old run intact, nothing added
    # with no earlier run, nothing is left at all
    assert main.main(args[:-1] + ["--run_name=fresh"]) == main.EXIT_FAILED
    assert not os.path.exists(tmp_path / "fresh")
    assert sorted(os.listdir(tmp_path)) == sorted(["r", hparams.EXPERIMENT_FILE])  # r's run, its HParams columns


def test_full_disk_while_taking_the_lock_exits_1_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from lbbench.runs import locks

    monkeypatch.setattr(locks, "os", _FullDiskOs())
    args = ["lbbench", *TINY, "--epochs=1", "--nosharpness", f"--workdir={tmp_path}", "--run_name=r"]
    assert main.main(args) == main.EXIT_FAILED  # exit 1 for a full disk, as README says
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err
    assert os.listdir(tmp_path) == []  # no 0-byte lock, no temporary file
    monkeypatch.undo()  # space freed: the same command runs at once
    assert main.main(args) == 0


def test_result_json_is_strict_and_records_non_finite(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_json(str(path), {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2})

    def reject(name):
        raise ValueError(f"bare {name}")

    saved = json.loads(path.read_text(), parse_constant=reject)
    assert saved["a"] is None and saved["b"] == [1.0, None] and saved["c"] == {"d": None} and saved["e"] == 2
    assert saved["non_finite"] == ["a", "b[1]", "c.d"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_json(str(tmp_path / "x.json"), {"a": 1})
        with atomic.atomic_open(str(tmp_path / "p.msgpack"), "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "x.json").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "p.msgpack").st_mode & 0o777 == mode


def test_run_outputs_are_0644_by_default(tmp_path):
    old = os.umask(0o022)
    try:
        assert (
            main.main(["lbbench", *TINY, "--epochs=1", "--nosharpness", f"--workdir={tmp_path}", "--run_name=r"]) == 0
        )
    finally:
        os.umask(old)
    for f in ("result.json", "params.msgpack"):
        assert os.stat(tmp_path / "r" / f).st_mode & 0o777 == 0o644


def _result(name, status="completed", batch=256, acc=0.5):
    return {
        "status": status,
        "config": {"run_name": name, "batch_size": batch, "optimizer": "adam", "seed": 0},
        "final": {"test_accuracy": acc if status == "completed" else None},
        "timing": {},
    }


def test_report_skips_unreadable_results_with_a_warning(tmp_path, capsys):
    for name, content in (
        ("ok", json.dumps(_result("ok"))),
        ("empty", "{}"),
        ("trunc", '{"status": "comp'),
        ("list", "[]"),
        ("div", json.dumps(_result("div", "diverged"))),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(content)
    (tmp_path / "sweep.json").write_text('{"experiment": "x", "grid": [{"run_na')  # truncated
    path = write_report(str(tmp_path))
    err = capsys.readouterr().err
    for bad in ("empty", "trunc", "list"):
        assert f"skipping {tmp_path / bad / 'result.json'}" in err
    assert f"ignoring {tmp_path / 'sweep.json'}" in err
    text = open(path).read()
    assert "runs: 2 with results (1 learned, 0 never learned, 1 diverged, 0 failed)" in text
    assert "| 1 | 1 diverged | 0.5 |" in text  # the mean uses the completed run only
    assert "div: diverged" in text


def test_report_with_a_diverged_point_and_no_batch_size_variation(tmp_path):
    for name, opt, status in (("a", "adam", "completed"), ("b", "sgd", "diverged")):
        (tmp_path / name).mkdir()
        r = _result(name, status)
        r["config"]["optimizer"] = opt
        (tmp_path / name / "result.json").write_text(json.dumps(r))
    assert os.path.exists(write_report(str(tmp_path)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_coordinator_times_out_with_one_line(tmp_path):
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbbench.main",
            *TINY,
            "--epochs=1",
            f"--workdir={tmp_path}",
            f"--coordinator_address=127.0.0.1:{_free_port()}",
            "--num_processes=2",
            "--process_id=1",
            "--coordinator_timeout_s=3",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--coordinator_address: could not start multi-host training within 3 s" in proc.stderr
    assert "Check failure" not in proc.stderr and time.time() - t0 < 30


def test_full_disk_while_logging_leaves_no_damaged_run(tmp_path, monkeypatch, capsys):
    from lbbench.runs import writer

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.RunWriter, "scalars", full)
    args = ["lbbench", *TINY, "--epochs=1", "--nosharpness", f"--workdir={tmp_path}", "--run_name=r"]
    assert main.main(args) == main.EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err
    assert os.listdir(tmp_path) == []
