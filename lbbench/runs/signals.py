"""SIGINT and SIGTERM end a run the same way, only at safe points, never inside someone else's code.

A signal handler runs between any two bytecodes of the main thread: inside JAX's garbage-collection
callback, an atexit clean-up, a `__del__`. An exception raised there is printed and swallowed
("Exception ignored in ..."), so the interrupt is lost. The handler installed by `install()` (the
CLIs call it) therefore raises nothing. A first signal is recorded (a Ctrl-C is announced in one
line; SIGTERM, from schedulers, is not); the training loop, MNIST-1D generation, the sharpness
measurement and the sweep call `check()` at safe points, which raises KeyboardInterrupt (SIGINT)
or `Terminated` (SIGTERM, a subclass) from there, so `train.run` records a failed run and the CLI
prints one line. Exit status follows the
shell convention 128 + signal number: 130 for SIGINT (Ctrl-C), 143 for SIGTERM (what `kill`,
Slurm and job schedulers send).

A second signal stops at once: every run folder still open is given a failed result.json and
committed (`on_abort` callbacks), one line is printed and the process leaves with `os._exit`,
skipping atexit clean-ups that could raise. Inside `with critical():` (the commit of a run folder,
milliseconds) the hard stop waits for the block's end, so a commit is never cut in half. Once the
CLI has finished its work (`finished()`), any signal exits at once with its status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM was received."""


_state = {"pending": None, "count": 0, "critical": 0, "hard": False, "done": False, "prog": "lbbench"}
_aborters: dict[int, Callable[[str], None]] = {}


def _say(line: str) -> None:
    """One line on stderr with os.write: print() may be mid-write in the interrupted code."""
    try:
        os.write(2, f"{_state['prog']}: {line}\n".encode())
    except OSError:
        pass


def code(signum: int | None) -> int:
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def _handler(signum, frame):
    _state["count"] += 1
    if _state["pending"] is None:
        _state["pending"] = signum
    if _state["done"]:  # the work is over and saved: nothing left to stop cleanly
        _say(f"{signal.Signals(signum).name} received while exiting; everything reported is saved")
        os._exit(code(_state["pending"]))
    if _state["count"] == 1:
        if signum == signal.SIGINT:  # a person at a terminal: say why it has not stopped yet
            _say("Ctrl-C received; stopping at the next safe point (press it again to stop at once)")
    elif _state["critical"]:
        _state["hard"] = True  # the commit in progress ends first (see critical())
    else:
        _hard_exit()


def _hard_exit() -> None:
    """Give every open run folder a failed result.json, say so in one line, and leave now."""
    _state["done"] = True  # a third signal exits at once; the commits below do not re-enter here
    for abort in list(_aborters.values()):
        try:
            abort(f"{signal.Signals(_state['pending']).name} received twice: stopped at once")
        except BaseException:  # noqa: BLE001 - leave regardless; the next open of the name cleans up
            pass
    _say("stopped at once (second signal); a run that had started has a result.json with status failed")
    os._exit(code(_state["pending"]))


def install(prog: str = "lbbench") -> None:
    """Route SIGINT and SIGTERM through the flag-setting handler (main thread only; else a no-op).

    Entry points call it before their heavy imports (jax takes seconds), and the CLI again: a
    signal received in between stays pending; a new command in the same process starts afresh."""
    if threading.current_thread() is not threading.main_thread():
        return
    if _state["done"] or signal.getsignal(signal.SIGINT) is not _handler:
        _state.update(pending=None, count=0, critical=0, hard=False, done=False)
    _state["prog"] = prog
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def pending() -> int | None:
    """The first signal received and not yet acted on, or None."""
    return _state["pending"]


def check() -> None:
    """A safe point: raise KeyboardInterrupt / Terminated if a signal arrived since install()."""
    signum = _state["pending"]
    if signum is not None and not _state["done"]:
        if signum == signal.SIGTERM:
            raise Terminated("SIGTERM")
        raise KeyboardInterrupt


def sleep(seconds: float) -> None:
    """time.sleep that checks for a signal every 0.1 s (a sleeping sweep worker stops promptly)."""
    end = time.monotonic() + seconds
    while True:
        check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


@contextlib.contextmanager
def critical():
    """A block a second signal may not cut (a run folder's commit): the hard stop waits for its end."""
    _state["critical"] += 1
    try:
        yield
    finally:
        _state["critical"] -= 1
        if _state["critical"] == 0 and _state["hard"] and not _state["done"]:
            _hard_exit()


def on_abort(key: int, fn: Callable[[str], None] | None) -> None:
    """Register (or with None, drop) what a hard stop does for one open run folder."""
    if fn is None:
        _aborters.pop(key, None)
    else:
        _aborters[key] = fn


def finished() -> int | None:
    """The CLI's work is done: later signals exit at once. Returns the pending signal's exit status."""
    _state["done"] = True
    flush = [s for s in (sys.stdout, sys.stderr) if s is not None]
    for stream in flush:
        with contextlib.suppress(Exception):
            stream.flush()
    return code(_state["pending"]) if _state["pending"] is not None else None


def exit_code(exc: BaseException) -> int:
    """130 for an interrupt (SIGINT), 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
