"""Cockpit's step-size quality alpha and the gradient/top-eigenvector overlap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import mlp, per_example_losses  # noqa: F401 (mlp is a fixture)
from jax.flatten_util import ravel_pytree

from lbbench.curvature import step_quality as sq


@pytest.mark.parametrize("fraction,alpha", [(0.5, -0.5), (1.0, 0.0), (2.0, 1.0), (3.0, 2.0)])
def test_alpha_on_exact_quadratic(fraction, alpha):
    """f(s) = 3 - 2 s + 0.5 s^2 has its minimum at s* = 2: a step of fraction * s* gives
    alpha = fraction - 1 whatever the variances, because the observations are exact."""
    f = lambda s: 3 - 2 * s + 0.5 * s**2  # noqa: E731
    df = lambda s: -2 + s  # noqa: E731
    t = 2.0 * fraction
    mu = sq.fit_quadratic(t, [f(0), f(t)], [df(0), df(t)], [0.1, 0.3], [0.2, 0.05])
    np.testing.assert_allclose(mu, [3, -2, 0.5], rtol=1e-8, atol=1e-8)
    assert sq.alpha_from_fit(mu, t) == pytest.approx(alpha)


def test_alpha_concave_and_zero_step_are_minus_one():
    assert sq.alpha_from_fit(np.array([0.0, -1.0, -0.5]), 1.0) == -1.0
    assert sq.alpha_from_fit(np.array([0.0, -1.0, 0.5]), 0.0) == -1.0


@pytest.mark.slow
def test_step_alpha_matches_brute_force_fit(mlp):
    """f, f' and their per-example variances from explicit per-example jacobians, then the fit."""
    logits_fn, params, x, y, *_ = mlp
    xb, yb = x[:32], y[:32]
    per_example, flat = per_example_losses(logits_fn, params, xb, yb)
    unravel = ravel_pytree(params)[1]
    g = jax.grad(lambda f: per_example(f).mean())(flat)
    step = -0.5 * g
    t = float(jnp.linalg.norm(step))
    d = np.asarray(step / t, np.float64)
    obs = []
    for point in (flat, flat + step):
        losses = np.asarray(per_example(point), np.float64)
        slopes = np.asarray(jax.jacobian(per_example)(point), np.float64) @ d
        obs.append((losses, slopes))
    mu = sq.fit_quadratic(
        t,
        [o[0].mean() for o in obs],
        [o[1].mean() for o in obs],
        [o[0].var(ddof=1) for o in obs],
        [o[1].var(ddof=1) for o in obs],
    )
    want = sq.alpha_from_fit(mu, t)
    got = sq.step_alpha(logits_fn, params, unravel(step), xb, yb)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert -1.0 < got  # a descent step of finite length on a convex-looking line


def test_top_overlap_hand_computed():
    assert sq.top_overlap(jnp.array([3.0, 4.0]), jnp.array([1.0, 0.0])) == pytest.approx(9 / 25)
    assert sq.top_overlap(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0])) == pytest.approx(0.0)
