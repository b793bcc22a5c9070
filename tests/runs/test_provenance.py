"""provenance(): what result.json records about where a run came from; progress messages."""

import datetime
import subprocess
import sys
import threading

from _paths import ROOT

import lbbench
from lbbench.runs.provenance import command_line, provenance
from lbbench.training import progress


def test_provenance_records_commit_command_time_host_version():
    p = provenance(["/some/where/lbbench/main.py", "--batch_size=4096", "--run_name=a b"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert p["git_commit"] == (head or None) and isinstance(p["git_dirty"], (bool, type(None)))
    assert p["command"] == "python -m lbbench.main --batch_size=4096 '--run_name=a b'"
    assert p["argv"] == ["--batch_size=4096", "--run_name=a b"]
    assert datetime.datetime.fromisoformat(p["started"]).tzinfo is not None
    assert p["host"] and p["lbbench_version"] == lbbench.__version__


def test_console_script_command_has_no_machine_path():
    assert command_line(["/opt/venv/bin/lbbench-sweep", "experiments/goyal.py"]) == "lbbench-sweep experiments/goyal.py"


def test_stage_prints_what_and_how_long_on_one_terminal_line_or_whole_lines_in_logs(capsys, monkeypatch):
    with progress.stage("compiling the epoch"):  # captured: not a terminal
        pass
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "lbbench: compiling the epoch ..." and lines[1].startswith(
        "lbbench: compiling the epoch: done in "
    )
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with progress.stage("compiling the epoch"):
        pass
    out = capsys.readouterr().out
    assert out.startswith("lbbench: compiling the epoch ... done in ") and out.count("\n") == 1


def test_stage_reports_failure_and_reraises(capsys):
    lines = []
    try:
        with progress.stage("measuring sharpness", log=lines.append):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert lines[0] == "lbbench: measuring sharpness ..." and "failed after" in lines[1]


def test_step_counter_rate_limits():
    now = [0.0]
    lines = []
    c = progress.StepCounter(total=1000, label="epoch 1", every_s=5, log=lines.append, clock=lambda: now[0])
    assert not c.update(100)
    now[0] = 6.0
    assert c.update(300) and lines[-1] == "lbbench: epoch 1: step 300/1000 (30 %), ETA 14 s"  # 6 s for 300 steps
    now[0] = 7.0
    assert not c.update(400) and c.update(1000)  # the last step always prints


def test_stage_disabled_prints_nothing(capsys):
    with progress.stage("compiling", enabled=False):
        pass
    assert capsys.readouterr().out == ""


def test_stage_beats_while_the_block_is_silent():
    lines, beaten = [], threading.Event()

    def log(line):
        lines.append(line)
        if "still running" in line:
            beaten.set()

    with progress.stage("compiling", log=log, every_s=0.01):
        assert beaten.wait(timeout=60), "no heartbeat while the block ran"
    assert lines[0] == "lbbench: compiling ..." and lines[1].startswith("lbbench: compiling: still running (")
    assert lines[-1].startswith("lbbench: compiling: done in ")


def test_eta_text_reads_at_a_glance():
    assert [progress.eta_text(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
