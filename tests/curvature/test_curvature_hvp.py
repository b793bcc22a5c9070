"""lbbench.curvature.hvp against the exact Hessian (jax.hessian of the flattened loss)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import mlp  # noqa: F401 (fixture)
from jax.flatten_util import ravel_pytree

from lbbench.curvature.hvp import flat_matvec, hvp


def test_hvp_matchesexact_hessian(mlp):
    _, params, _, _, loss_fn, hess, _ = mlp
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(2), flat.shape)
    hv = jax.jit(hvp)(loss_fn, params, unravel(v))
    got = np.asarray(ravel_pytree(hv)[0], np.float64)
    want = hess @ np.asarray(v, np.float64)
    assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_flat_matvec_matchesexact_hessian(mlp, cache_bytes):
    """Both the plain forward-over-reverse matvec and the cached linearisation equal H v."""
    _, params, _, _, loss_fn, hess, _ = mlp
    matvec, n, dtype = flat_matvec(loss_fn, params, cache_bytes)
    assert n == hess.shape[0] and dtype == jnp.float32
    for seed in (2, 3):
        v = jax.random.normal(jax.random.PRNGKey(seed), (n,))
        want = hess @ np.asarray(v, np.float64)
        got = np.asarray(matvec(v), np.float64)
        assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)
