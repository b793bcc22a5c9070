"""Instruments: measurements the training loop runs every N steps or at the end (DESIGN.md).

`build(cfg)` returns the configured instruments; each has `name`, `every`, `run(view)` yielding
(name, value) pairs and `cost()`. `run_due` and `Columns` collect their output per step.
"""

from lbbench.curvature.loss import BoundLogits
from lbbench.instruments.base import Columns, Instrument, TopVectors, TrialView, is_due, run_due
from lbbench.instruments.curvature_tracker import CurvatureTracker
from lbbench.instruments.gradient_tests import GradientTests


def build(cfg) -> list[Instrument]:
    """CurvatureTracker (if cfg.track_curvature_every) and GradientTests (if
    cfg.gradient_tests_every), sharing one per-trial top-eigenvector store (tracker first, so a
    vector it finds is reused by the overlap at the same step)."""
    vectors = TopVectors()
    out: list[Instrument] = []
    if cfg.track_curvature_every:
        out.append(CurvatureTracker.from_config(cfg, vectors))
    if cfg.gradient_tests_every:
        out.append(GradientTests.from_config(cfg, vectors))
    return out


__all__ = ["BoundLogits", "Columns", "CurvatureTracker", "GradientTests", "Instrument", "TopVectors",
           "TrialView", "build", "is_due", "run_due"]
