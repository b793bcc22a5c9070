"""Instruments: measurements the training loop runs every N steps, every epoch or at the end.

One module per instrument (sharpness, noise_scale, curvature_tracker, gradient_tests, ...), each
with NAME and `build(cfg, ctx)`; `registry` finds them, `scheduler` runs them, `base` is the
interface (DESIGN.md). Importing this package imports no instrument.
"""

from lbbench.instruments.base import BuildContext, Columns, Instrument, TopVectors, TrialView

__all__ = ["BuildContext", "Columns", "Instrument", "TopVectors", "TrialView"]
