"""Cockpit's gradient tests: hand-computed values, and brute force from explicit per-example
gradients (jax.jacobian of the per-example losses) with the tests written from their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import mlp, per_example_losses  # noqa: F401 (mlp is a fixture)

from lbbench.curvature import cockpit as gt


def test_hand_computed_two_examples():
    """g_1 = e1, g_2 = e2: g = (1/2, 1/2), |g|^2 = 1/2, so norm = 1, inner = 0, ortho = 1."""
    sq_norms, dots, grad_sq = jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array(0.5)
    np.testing.assert_allclose(gt.norm_test(sq_norms, grad_sq), 1.0, rtol=1e-6)
    np.testing.assert_allclose(gt.inner_product_test(dots, grad_sq), 0.0, atol=1e-6)
    np.testing.assert_allclose(gt.orthogonality_test(sq_norms, dots, grad_sq), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_gradient_tests_match_explicit_per_example_gradients(mlp):
    logits_fn, params, x, y, *_ = mlp
    xb, yb = x[:24], y[:24]
    per_example, flat = per_example_losses(logits_fn, params, xb, yb)
    grads = np.asarray(jax.jacobian(per_example)(flat), np.float64)  # (B, n)
    b, g = grads.shape[0], grads.mean(0)
    gg = g @ g
    proj = grads @ g
    ortho = grads - np.outer(proj / gg, g)  # parts of g_n orthogonal to g (their mean is 0)
    want = {
        "norm_test": np.sqrt(np.var(grads, axis=0, ddof=1).sum() / (b * gg)),
        "inner_product_test": np.sqrt(np.var(proj, ddof=1) / (b * gg**2)),
        "orthogonality_test": np.sqrt((ortho**2).sum() / (b - 1) / (b * gg)),
        "grad_norm": np.sqrt(gg),
    }
    got = gt.gradient_tests(logits_fn, params, xb, yb, chunk=5)  # 5 does not divide 24
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, err_msg=k)
