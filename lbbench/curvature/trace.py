"""Hutchinson's trace estimator on a flat Hessian matvec."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.loss import LossFn, MatVec, Params


def hutchinson_mv(matvec: MatVec, n: int, dtype, num_probes: int, key) -> tuple[float, float]:
    """(mean, stderr) of z_i^T H z_i over `num_probes` Rademacher z_i; one HVP per probe."""
    samples = []
    for i in range(num_probes):
        z = jax.random.rademacher(jax.random.fold_in(key, i), (n,), dtype)
        samples.append(jnp.vdot(z, matvec(z)))
    samples = np.asarray(jnp.stack(samples), np.float64)
    stderr = samples.std(ddof=1) / np.sqrt(num_probes) if num_probes > 1 else float("nan")
    return float(samples.mean()), float(stderr)


def hutchinson_trace(loss_fn: LossFn, params: Params, num_probes: int, key) -> tuple[float, float]:
    """Hutchinson (1989) estimate tr H ~ mean_i z_i^T H z_i, Rademacher z_i; returns (mean, stderr).

    Unbiased; the standard error is the sample std (ddof=1) / sqrt(num_probes), NaN for one probe.
    """
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return hutchinson_mv(matvec, n, dtype, num_probes, key)
