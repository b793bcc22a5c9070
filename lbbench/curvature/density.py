"""Hessian spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.lanczos import lanczos, ritz
from lbbench.curvature.loss import LossFn, Params


def gaussian_density(nodes, weights, grid, sigma: float) -> np.ndarray:
    """sum_i w_i N(t; node_i, sigma^2) on the grid: the Gaussian-smoothed spectral density."""
    z = (np.asarray(grid)[:, None] - np.asarray(nodes)[None, :]) / sigma
    return (np.exp(-0.5 * z**2) @ np.asarray(weights)) / (sigma * np.sqrt(2 * np.pi))


def slq_mv(matvec, n, dtype, num_runs, num_iters, key, grid_size, sigma):
    """(grid, density) from `num_runs` Lanczos runs of `num_iters` HVPs each on a flat matvec."""
    nodes, weights = [], []
    for run_key in jax.random.split(key, num_runs):
        values, tau = ritz(*lanczos(matvec, jnp.zeros((n,), dtype), num_iters, run_key))
        nodes.append(values)
        weights.append(tau / num_runs)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    lo, hi = nodes.min(), nodes.max()
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(abs(hi), 1.0)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size)
    return grid, gaussian_density(nodes, weights, grid, sigma)


def spectral_density(
    loss_fn: LossFn,
    params: Params,
    num_runs: int,
    num_iters: int,
    key,
    grid_size: int = 1000,
    sigma: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019).

    phi_sigma(t) = (1/n) sum_i N(t; lambda_i, sigma^2) is estimated as the average over `num_runs`
    random unit starts of sum_j tau_j N(t; theta_j, sigma^2), with Ritz values theta_j and weights
    tau_j from `ritz`. The grid spans the Ritz values +- 5 sigma (default sigma = 1% of that range),
    so the returned density integrates to ~1.
    """
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return slq_mv(matvec, n, dtype, num_runs, num_iters, key, grid_size, sigma)
