"""Training: state, step, epoch (scan + evaluation), trainer (compiled programs), loop (run, run_group),
result assembly, optimizers, schedules, data parallelism, preflight checks and progress output."""

from lbbench.training.loop import run, run_group

__all__ = ["run", "run_group"]
