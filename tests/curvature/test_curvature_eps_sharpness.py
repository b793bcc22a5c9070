"""Keskar eps-sharpness (lbbench.curvature.eps_sharpness) against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import mlp  # noqa: F401 (fixture)

from lbbench.curvature import eps_sharpness as eps_sh
from lbbench.curvature.measure import SharpnessOptions


def _quadratic(d, c):
    return lambda p: 0.5 * jnp.sum(d * p["w"] ** 2) + c


@pytest.mark.parametrize("epsilon", [1e-2, 1e-3])
def test_epsilon_sharpness_quadratic_closed_form(epsilon):
    """f = 1/2 sum d_i w_i^2 + c with d_i > 0 is maximised over the box at the corner
    y_i = sign(x_i) eps (|x_i| + 1) (Keskar Metric 2.1 with A = I)."""
    kd, kx = jax.random.split(jax.random.PRNGKey(9))
    d = np.asarray(jax.random.uniform(kd, (12,), minval=0.5, maxval=2.0), np.float64)
    x = np.asarray(jax.random.normal(kx, (12,)), np.float64)
    c = 0.3
    f = lambda w: 0.5 * np.sum(d * w**2) + c
    corner = x + np.sign(x) * epsilon * (np.abs(x) + 1)
    want = (f(corner) - f(x)) / (1 + f(x)) * 100
    got = eps_sh.epsilon_sharpness(
        _quadratic(jnp.asarray(d, jnp.float32), c),
        {"w": jnp.asarray(x, jnp.float32)},
        epsilon,
        jax.random.PRNGKey(0),
        subspace_dim=0,
        maxiter=10,
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_subspace_coordinates_are_pseudo_inverse():
    x = jax.random.normal(jax.random.PRNGKey(10), (50,))
    a, coords = eps_sh.subspace(jax.random.PRNGKey(11), x, 7)
    want = np.linalg.pinv(np.asarray(a, np.float64)) @ np.asarray(x, np.float64)
    np.testing.assert_allclose(coords, want, rtol=1e-4, atol=1e-6)


def test_epsilon_sharpness_subspace_linear_closed_form():
    """Linear f = g.w + c: the subspace-box max gain is sum_i |(A^T g)_i| eps(|(A^+ x)_i| + 1)."""
    kg, kx, ka = jax.random.split(jax.random.PRNGKey(12), 3)
    g, x = jax.random.normal(kg, (40,)), jax.random.normal(kx, (40,))
    c, eps, p = 2.0, 1e-2, 6
    loss_fn = lambda params: jnp.dot(g, params["w"]) + c
    a, coords = eps_sh.subspace(ka, x, p)
    f0 = float(jnp.dot(g, x)) + c
    gain = np.sum(np.abs(np.asarray(a.T @ g, np.float64)) * eps * (np.abs(coords) + 1))
    got = eps_sh.epsilon_sharpness(loss_fn, {"w": x}, eps, ka, subspace_dim=p, maxiter=10)
    np.testing.assert_allclose(got, gain / (1 + f0) * 100, rtol=1e-4)


def test_epsilon_sharpness_nonnegative_and_monotone(mlp):
    """Larger boxes contain smaller ones; checked through measure's path (one shared compile)."""
    _, params, _, _, loss_fn, _, _ = mlp
    opts = SharpnessOptions(epsilons=(1e-4, 5e-4, 1e-3), subspace_dim=20, lbfgs_iters=10)
    out = eps_sh.all_epsilon_sharpness(loss_fn, params, opts, jax.random.PRNGKey(13))
    for space in ("full", "subspace"):
        values = [out[f"{space}_{eps:g}"] for eps in opts.epsilons]
        assert values[0] > 0 and values[0] <= values[1] <= values[2], (space, values)
