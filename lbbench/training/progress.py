"""Progress messages for the silent parts of a run (compilation, sharpness, long epochs).

    with stage("compiling the epoch"):          # prints "compiling the epoch ..." then "done in 1.3 s"
        ...
    counter = StepCounter(total=1875, label="epoch 1")
    counter.update(500)                          # "epoch 1: step 500/1875 (27 %)" at most every 5 s

Multi-host runs: pass `enabled=jax.process_index() == 0` to `stage` and a process-0-only `log` to
StepCounter, so only one process prints.
"""

from __future__ import annotations

import contextlib
import sys
import time


def _print(msg: str, end: str = "\n") -> None:
    sys.stdout.write(msg + end)
    sys.stdout.flush()


@contextlib.contextmanager
def stage(what: str, enabled: bool = True, log=None):
    """Print `lbbench: what ... done in X s` (or `failed after X s`) around the block.

    One line on a terminal: the start is printed without a newline and the block is expected to be
    silent. `enabled=False` prints nothing (pass `jax.process_index() == 0`); `log` (a function taking
    a whole line) prints start and end as two lines instead, for loggers that cannot continue a line.
    """
    t0 = time.perf_counter()
    if enabled:
        _print(f"lbbench: {what} ...", end=" ") if log is None else log(f"lbbench: {what} ...")
    ok = False
    try:
        yield
        ok = True
    finally:
        if enabled:
            secs = time.perf_counter() - t0
            msg = f"done in {secs:.1f} s" if ok else f"failed after {secs:.1f} s"
            _print(msg) if log is None else log(f"lbbench: {what}: {msg}")


class StepCounter:
    """Prints `label: step i/total (p %)` at most every `every_s` seconds (and at the end)."""

    def __init__(self, total: int, label: str = "", every_s: float = 5.0, log=None, clock=time.monotonic):
        self.total, self.label, self.every_s = total, label, every_s
        self.log, self.clock = log or _print, clock
        self._last = clock()

    def update(self, step: int) -> bool:
        """Report `step` if enough time passed or it is the last; returns whether it printed."""
        now = self.clock()
        if step < self.total and now - self._last < self.every_s:
            return False
        self._last = now
        prefix = f"{self.label}: " if self.label else ""
        self.log(f"lbbench: {prefix}step {step}/{self.total} ({100 * step / max(self.total, 1):.0f} %)")
        return True
