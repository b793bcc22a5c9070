"""Curvature of the training loss: HVPs, Lanczos, trace, density, eps-sharpness, per-layer blocks,
and the edge-of-stability quantities tracked during training.

Modules (each one job; the import graph is acyclic, tests/test_curvature_imports.py):
objectives (the training losses by name: cross-entropy, MSE) -> loss (ChunkedLoss, make_loss,
jit binding) -> hvp -> lanczos -> trace, density, per_layer ->
measure (SharpnessOptions, measure); eps_sharpness; thresholds, preconditioned, batch_sharpness,
gradient_tests (tracked during training, used by lbbench.instruments).
"""

from lbbench.curvature.measure import SharpnessOptions, measure

__all__ = ["SharpnessOptions", "measure"]
