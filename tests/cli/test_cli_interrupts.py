"""Interrupts never race JAX: the handler only sets a flag, safe points act on it.

Real SIGINTs to real processes at several moments (while MNIST-1D is generated, as training
starts, mid-training, as the process exits) must each give exit 130, no traceback, and a run
folder consistent with what was said. Every wait is on an event (a line the process prints),
never a fixed time, with generous timeouts, so the tests hold on a loaded machine; a small random
delay after each event varies the moment.
"""

import gc
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from _paths import ROOT

from lbbench.runs import signals

TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=100", "--noise_scale_groups=1", "--nosharpness"]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
TIMEOUT = 600  # seconds; only reached if something is broken (a loaded machine is slow, not stuck)


@pytest.fixture
def handler():
    """signals.install() in this process, undone afterwards (pytest's own Ctrl-C handling returns)."""
    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signals.install()
    yield
    signal.signal(signal.SIGINT, old[0])
    signal.signal(signal.SIGTERM, old[1])
    signals._state.update(pending=None, count=0, critical=0, hard=False, done=False)


def test_a_signal_inside_a_gc_callback_is_neither_raised_there_nor_lost(handler, capfd):
    """The race of issue 20: JAX's gc callback is where a raising handler's exception was swallowed."""
    fired = []

    def callback(phase, info):
        if phase == "start" and not fired:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecodes: the handler runs here, inside the callback
                pass

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert fired and "Exception ignored" not in capfd.readouterr().err
    assert signals.pending() == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        signals.check()  # the interrupt is acted on at the next safe point


def test_sigterm_raises_terminated_at_the_safe_point(handler):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0)  # let the interpreter run the handler
    with pytest.raises(signals.Terminated):
        signals.check()


def _start(tmp_path, *args, code=None):
    argv = ["-c", code] if code else ["-m", "lbbench.main"]
    return subprocess.Popen(
        [sys.executable, *argv, *TINY, f"--workdir={tmp_path / 'w'}", "--run_name=r", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(stream, needle, proc):
    """Read `stream` until a line holding `needle`; a reader thread keeps the timeout honest."""
    seen, lines = threading.Event(), []

    def read():
        for line in stream:
            lines.append(line)
            if needle in line:
                break
        seen.set()  # the line, or the end of the stream: either way waiting longer is pointless

    threading.Thread(target=read, daemon=True).start()
    seen.wait(TIMEOUT)
    assert lines and needle in lines[-1], f"never saw {needle!r} (exit {proc.poll()}): {''.join(lines)[-2000:]}"
    return lines


def _finish(proc):
    out, err = proc.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    return out, err


def _leftovers(work):
    return sorted(f for f in os.listdir(work) if f.startswith(".")) if os.path.isdir(work) else []


def test_ctrl_c_while_mnist1d_is_generated(tmp_path):
    cache = tmp_path / "cache"
    proc = _start(tmp_path, "--dataset=mnist1d", f"--data_dir={cache}", "--epochs=1")
    _wait_for(proc.stderr, "generating MNIST-1D", proc)
    time.sleep(random.uniform(0, 1.0))
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "w" / "r") and _leftovers(tmp_path / "w") == []  # it had not started
    assert not cache.exists() or os.listdir(cache) == []  # no half-written cache file


@pytest.mark.slow
@pytest.mark.parametrize("event", ["lbbench: random", "epoch   2/"])
def test_ctrl_c_during_a_run_records_it_failed(tmp_path, event):
    proc = _start(tmp_path, "--epochs=100000")
    _wait_for(proc.stdout, event, proc)
    time.sleep(random.uniform(0, 0.3))
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc)
    assert proc.returncode == 130, err[-2000:]
    lines = err.strip().splitlines()
    assert "Ctrl-C received; stopping at the next safe point" in lines[0] and "interrupted" in lines[-1]
    result = json.loads((tmp_path / "w" / "r" / "result.json").read_text())
    assert result["status"] == "failed" and result["error"].startswith("KeyboardInterrupt")
    assert _leftovers(tmp_path / "w") == []  # no lock, staging folder or temporary file


@pytest.mark.slow
def test_ctrl_c_as_the_process_exits(tmp_path):
    proc = _start(tmp_path, "--epochs=1")
    _wait_for(proc.stdout, "lbbench: logs", proc)  # the last line: main is returning, atexit next
    time.sleep(random.uniform(0, 0.05))
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc)
    assert proc.returncode in (0, 130), err[-2000:]  # 0 only if it had already exited
    assert json.loads((tmp_path / "w" / "r" / "result.json").read_text())["status"] == "completed"
    assert _leftovers(tmp_path / "w") == []


# The second epoch never reaches a safe point (as a long XLA call would not): only a second Ctrl-C ends it.
STUCK = """
import sys, time
from lbbench.runs import signals
signals.install()
from lbbench.cli import train
from lbbench.training.trainer import Trainer
epoch_fn = Trainer.epoch_fn
def stuck(self, state, start_step, *args, **kwargs):
    if start_step > 0:
        print("stuck", flush=True)
        while True:
            time.sleep(0.01)
    return epoch_fn(self, state, start_step, *args, **kwargs)
Trainer.epoch_fn = stuck
sys.exit(train.main(["lbbench", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_leaves_a_failed_result(tmp_path):
    proc = _start(tmp_path, "--epochs=3", code=STUCK)
    _wait_for(proc.stdout, "stuck", proc)
    proc.send_signal(signal.SIGINT)
    _wait_for(proc.stderr, "Ctrl-C received", proc)  # the first one is only noted
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=TIMEOUT)
    err = proc.stderr.read()
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert "stopped at once (second signal)" in err
    result = json.loads((tmp_path / "w" / "r" / "result.json").read_text())
    assert result["status"] == "failed" and "twice" in result["error"]
    assert result["history"]["epoch"] == [1]  # what it had: the first epoch
    assert _leftovers(tmp_path / "w") == []
