"""Sweeps: experiment files → Configs → packed groups → run folders; workers, follow-ups, analysis.

Experiment files import `env_dataset` from here.
"""

from lbbench.sweep.experiment_file import SweepError, env_dataset

__all__ = ["SweepError", "env_dataset"]
