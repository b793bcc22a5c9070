"""SIGINT and SIGTERM end a run the same way, and never in the middle of a critical section.

`install()` (called by the CLIs) makes SIGINT raise KeyboardInterrupt and SIGTERM raise
`Terminated` (a KeyboardInterrupt subclass), so `train.run` records either as a failed run and
the CLI prints one line. Exit status follows the shell convention 128 + signal number: 130 for
SIGINT (Ctrl-C), 143 for SIGTERM (what `kill`, Slurm and job schedulers send).

Inside `with deferred():` (the Hessian measurement, which spends its time in XLA and scipy, and
the commit of a run folder) a first signal is only recorded and raised when the section ends;
a second one raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM was received."""


_state = {"depth": 0, "pending": None}


def _raise(signum: int):
    if signum == signal.SIGTERM:
        raise Terminated("SIGTERM")
    raise KeyboardInterrupt


def _handler(signum, frame):
    if _state["depth"] > 0 and _state["pending"] is None:
        _state["pending"] = signum
        print(
            f"lbbench: {signal.Signals(signum).name} received; stopping when the current measurement "
            "ends (send it again to stop now)",
            file=sys.stderr,
            flush=True,
        )
        return
    _state["pending"] = None
    _raise(signum)


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


@contextlib.contextmanager
def deferred():
    """Hold a first SIGINT/SIGTERM until the block ends, then raise it (unless an error is already raised)."""
    _state["depth"] += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            if ok:
                _raise(signum)


def exit_code(exc: BaseException) -> int:
    """130 for an interrupt (SIGINT), 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
