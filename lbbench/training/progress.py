"""What a run prints while it runs: the start line, one line per epoch, and progress messages for
the silent parts (compilation, long epochs).

    with stage("compiling the epoch"):          # prints "compiling the epoch ..." then "done in 1.3 s"
        ...
    counter = StepCounter(total=1875, label="epoch 1")
    counter.update(500)                          # "epoch 1: step 500/1875 (27 %), ETA 9 s" at most every 5 s

Multi-host runs: pass `enabled=jax.process_index() == 0` to `stage` and a process-0-only `log` to
StepCounter, so only one process prints.
"""

from __future__ import annotations

import contextlib
import sys
import time

import jax
import numpy as np

from lbbench.config import Config
from lbbench.models import uses_batch_norm
from lbbench.runs import ticker


def _print(msg: str, end: str = "\n") -> None:
    sys.stdout.write(msg + end)
    sys.stdout.flush()


@contextlib.contextmanager
def stage(what: str, enabled: bool = True, log=None, every_s: float = ticker.EVERY_S):
    """Print `lbbench: what ... 5 s 10 s done in X s` (or `failed after X s`) around the block.

    One line on a terminal: the block is expected to be silent, so a heartbeat appends the elapsed
    seconds every `every_s` and the run is never silent for longer. Not on a terminal (a log file,
    a pipe), or given `log` (a function taking a whole line), start, heartbeats and end are separate
    lines. `enabled=False` prints nothing (pass `jax.process_index() == 0`).
    """
    t0 = time.perf_counter()
    if log is None and not sys.stdout.isatty():
        log = _print  # a log file or pipe gets whole lines: readers that go by lines see every beat
    if enabled:
        _print(f"lbbench: {what} ...", end=" ") if log is None else log(f"lbbench: {what} ...")
    beat = (lambda s: _print(f"{s:.0f} s", end=" ")) if log is None else ticker.still_running(what, log).beat
    ok = False
    try:
        with ticker.Ticker(beat if enabled else (lambda s: None), every_s):
            yield
        ok = True
    finally:
        if enabled:
            secs = time.perf_counter() - t0
            msg = f"done in {secs:.1f} s" if ok else f"failed after {secs:.1f} s"
            _print(msg) if log is None else log(f"lbbench: {what}: {msg}")


class StepCounter:
    """Prints `label: step i/total (p %), ETA 12 s` at most every `every_s` seconds (and at the end).

    The ETA extrapolates the steps done since the counter started at their mean rate."""

    def __init__(self, total: int, label: str = "", every_s: float = 5.0, log=None, clock=time.monotonic):
        self.total, self.label, self.every_s = total, label, every_s
        self.log, self.clock = log or _print, clock
        self._start = self._last = clock()

    def due(self) -> bool:
        """Whether an update now would print (`every_s` seconds since the last line)."""
        return self.clock() - self._last >= self.every_s

    def update(self, step: int) -> bool:
        """Report `step` if enough time passed or it is the last; returns whether it printed."""
        if step < self.total and not self.due():
            return False
        self._last = self.clock()
        prefix = f"{self.label}: " if self.label else ""
        eta = ""
        if 0 < step < self.total:
            eta = f", ETA {eta_text((self._last - self._start) * (self.total - step) / step)}"
        self.log(f"lbbench: {prefix}step {step}/{self.total} ({100 * step / max(self.total, 1):.0f} %){eta}")
        return True


def eta_text(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`: a remaining time a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def bn_message(cfg: Config) -> str:
    if not uses_batch_norm(cfg.model):
        return f"model {cfg.model} has no BatchNorm"
    if cfg.ghost_batch_size:
        return f"ghost BatchNorm: statistics over groups of {cfg.ghost_batch_size} examples"
    return f"BatchNorm statistics over the whole global batch of {cfg.batch_size} (no ghost batches)"


def start_line(cfgs: list[Config], steps_per_epoch: int, ds, plan=None) -> str:
    """What the run trains, in one line; `plan`: its batch-size phases (training/phases.py), if scheduled."""
    cfg = cfgs[0]
    lrs = sorted({c.scaled_learning_rate for c in cfgs})
    lr = f"lr {lrs[0]:.4g}" if len(lrs) == 1 else f"lr {lrs[0]:.3g}..{lrs[-1]:.3g}"
    trials = f"{len(cfgs)} trials in one program (seeds {sorted({c.seed for c in cfgs})}), " if len(cfgs) > 1 else ""
    return (
        f"lbbench: {cfg.dataset} ({ds.num_train} train, {ds.num_val} validation, {len(ds.y_test)} test), {cfg.model}, "
        f"{cfg.optimizer}, batch {cfg.batch_size} on {jax.device_count()} {jax.devices()[0].platform} "
        f"device(s), {trials}{lr} ({cfg.lr_scaling} scaling), {cfg.schedule}; "
        f"{steps_per_epoch} steps/epoch, {ds.num_train % cfg.batch_size} examples dropped per epoch; "
        f"{bn_message(cfg)}" + (f"; batch schedule {plan.describe()}" if plan is not None and plan.scheduled else "")
    )


def epoch_line(epoch: int, cfg: Config, rec: dict) -> str:
    val = f"val acc {rec['val_accuracy']:.4f}  " if "val_accuracy" in rec else ""
    return (
        f"epoch {epoch:3d}/{cfg.epochs}  loss {rec['train_loss']:.4f}  acc {rec['train_accuracy']:.4f}  "
        f"{val}test acc {rec['test_accuracy']:.4f}  gap {rec['generalization_gap']:+.4f}  "
        f"lr {rec['learning_rate']:.3g}  {rec['examples_per_s']:,.0f} ex/s"
    )


def group_epoch_line(epoch: int, cfg: Config, recs: dict, seconds: float, n_trials: int) -> str:
    """One line per epoch of a group: each trial's validation accuracy (test without a validation set)."""
    key = "val_accuracy" if all("val_accuracy" in recs[i] for i in recs) else "test_accuracy"
    accs = [recs[i][key] for i in sorted(recs)]
    shown = " ".join(f"{a:.3f}" for a in accs[:8]) + (" ..." if len(accs) > 8 else "")
    return (
        f"epoch {epoch:3d}/{cfg.epochs}  {key.split('_')[0]} acc {shown}  (mean {np.mean(accs):.4f}; "
        f"{len(accs)} of {n_trials} trials training)  {seconds:.1f} s"
    )
