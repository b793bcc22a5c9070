"""lbbench.curvature.trace: Hutchinson against the exact trace."""

import jax
import numpy as np
from _curvature_toys import mlp  # noqa: F401 (fixture)

from lbbench.curvature.trace import hutchinson_trace


def test_hutchinson_trace_within_three_standard_errors(mlp):
    _, params, _, _, loss_fn, hess, _ = mlp
    mean, stderr = hutchinson_trace(loss_fn, params, num_probes=50, key=jax.random.PRNGKey(7))
    assert stderr > 0
    assert abs(mean - np.trace(hess)) <= 3 * stderr
