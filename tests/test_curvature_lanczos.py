"""lbbench.curvature.lanczos: top eigenvalues, breakdown, power iteration, warm starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from _curvature_toys import mlp  # noqa: F401 (fixture)
from lbbench.curvature.lanczos import lanczos, power_iteration, ritz, top_eigenvalues

def test_top_eigenvalues_match_eigvalsh(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    top = np.asarray(top_eigenvalues(loss_fn, params, 3, 30, jax.random.PRNGKey(3)))
    want = eigs[::-1][:3]
    assert top.shape == (3,) and np.all(np.diff(top) <= 0)
    np.testing.assert_allclose(top, want, rtol=1e-4)


def test_lanczos_survives_breakdown_and_recovers_whole_spectrum():
    """diag(1,1,2,2,3) has only 3 distinct eigenvalues: the Krylov space is exhausted after 3 steps,
    so the restart path must supply the remaining directions (with beta = 0)."""
    d = jnp.array([1.0, 1.0, 2.0, 2.0, 3.0])
    alphas, betas = lanczos(lambda v: d * v, jnp.zeros(5), 30, jax.random.PRNGKey(4))
    assert alphas.shape == (5,) and betas.shape == (4,)
    values, weights = ritz(alphas, betas)
    np.testing.assert_allclose(values, np.sort(np.asarray(d)), atol=1e-5)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)


def test_power_iteration_agrees_with_lanczos(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    assert eigs[-1] > abs(eigs[0])  # precondition: the top eigenvalue has the largest magnitude
    power = power_iteration(loss_fn, params, num_iters=300, key=jax.random.PRNGKey(5))
    lanczos_top = float(top_eigenvalues(loss_fn, params, 1, 20, jax.random.PRNGKey(6))[0])
    np.testing.assert_allclose(power, lanczos_top, rtol=1e-3)
    np.testing.assert_allclose(power, eigs[-1], rtol=1e-3)
