"""Batch sharpness (Andreyev & Beneventano 2024) against a quadratic closed form and against exact
per-batch Hessians (jax.hessian of each minibatch's flattened loss) on a tiny MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _curvature_toys import mlp  # noqa: F401 (fixture)
from jax.flatten_util import ravel_pytree

from lbbench.curvature.batch_sharpness import batch_sharpness, gradient_curvature, split_batches


def test_gradient_curvature_quadratic_closed_form():
    """f = 1/2 x^T A x - b^T x: g = A x - b and g^T A g / g^T g in closed form."""
    ka, kb, kx = jax.random.split(jax.random.PRNGKey(0), 3)
    m = jax.random.normal(ka, (7, 7))
    a = m @ m.T + jnp.eye(7)
    b, x = jax.random.normal(kb, (7,)), jax.random.normal(kx, (7,))
    got = gradient_curvature(lambda p: 0.5 * p["x"] @ a @ p["x"] - b @ p["x"], {"x": x})
    g = np.asarray(a @ x - b, np.float64)
    want = g @ np.asarray(a, np.float64) @ g / (g @ g)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_split_batches_shapes():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    xs, ys = split_batches(x, y, 3)
    assert xs.shape == (3, 3, 2) and ys.shape == (3, 3) and int(ys[2, 2]) == 8
    assert split_batches(x, y, 3, max_batches=2)[0].shape[0] == 2
    assert split_batches(x, y, 11)[0].shape[0] == 0


def test_batch_sharpness_matches_exact_per_batch_hessians(mlp):
    logits_fn, params, x, y, *_ = mlp
    flat, unravel = ravel_pytree(params)
    xs, ys = split_batches(x, y, 16)
    loss = lambda f, xb, yb: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
        logits_fn(unravel(f), xb), yb
    ).mean()
    grad_and_hessian = jax.jit(lambda xb, yb: (jax.grad(loss)(flat, xb, yb), jax.hessian(loss)(flat, xb, yb)))
    want = []
    for xb, yb in zip(xs, ys):
        g, hess = (np.asarray(a, np.float64) for a in grad_and_hessian(xb, yb))
        want.append(g @ hess @ g / (g @ g))
    mean, stderr = batch_sharpness(logits_fn, params, xs, ys, chunk_examples=32)  # 2 at a time
    np.testing.assert_allclose(mean, np.mean(want), rtol=1e-4)
    np.testing.assert_allclose(stderr, np.std(want, ddof=1) / 2, rtol=1e-3)
