"""A heartbeat for blocks that cannot report progress themselves (compilation, data generation,
one long Lanczos or L-BFGS-B call): every few seconds it says the block is still running and for
how long, so a run is never silent for more than `every_s` seconds.

A daemon thread waits on an event, so the heartbeat costs nothing while the block runs and stops
the moment the block ends (or raises).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EVERY_S = 5.0


class Ticker:
    """Call `beat(seconds_elapsed)` every `every_s` seconds until the `with` block ends."""

    def __init__(self, beat: Callable[[float], None], every_s: float = EVERY_S, clock=time.monotonic):
        self.beat, self.every_s, self.clock = beat, every_s, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restart(self) -> None:
        """Count the elapsed seconds, and the time to the next beat, from now (a new part began)."""
        self._start = self._ref = self.clock()

    def _loop(self) -> None:
        while True:
            wait = self._ref + self.every_s - self.clock()
            if wait > 0:
                if self._stop.wait(wait):
                    return
                continue
            self._ref = self.clock()
            try:
                self.beat(self._ref - self._start)
            except Exception:  # noqa: BLE001 - a failing progress line must never fail the run
                return

    def __enter__(self) -> Ticker:
        self._start = self._ref = self.clock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def still_running(what: Callable[[], str] | str, log: Callable[[str], None], every_s: float = EVERY_S) -> Ticker:
    """A Ticker that logs `lbbench: <what>: still running (12 s)`; `what` may be a function (a moving label)."""
    label = what if callable(what) else (lambda: what)
    return Ticker(lambda secs: log(f"lbbench: {label()}: still running ({secs:.0f} s)"), every_s)
