"""Toy models, data and exact references shared by the curvature tests.

Everything runs in float32 on a ~200-parameter tanh MLP, where `jax.hessian` of the flattened
loss is cheap and exact; tolerances are float32 ones.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lbbench.curvature.loss import make_loss

N_EXAMPLES, N_IN, N_HIDDEN, N_CLASSES = 64, 5, 20, 3


class TinyMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(N_CLASSES)(jnp.tanh(nn.Dense(N_HIDDEN)(x)))


class TinyBNNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Dense(8)(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.5)(h)
        return nn.Dense(N_CLASSES)(jnp.tanh(h))


def data(seed=0):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (N_EXAMPLES, N_IN))
    y = jax.random.randint(ky, (N_EXAMPLES,), 0, N_CLASSES)
    return x, y


def plain_loss(logits_fn, params, x, y):
    """Independent reference: one-shot mean cross-entropy, no chunking."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y).mean()


def per_example_losses(logits_fn, params, xb, yb):
    """(f -> losses of each example at unravel(f), flat params): for explicit per-example jacobians."""
    flat, unravel = ravel_pytree(params)
    return (lambda f: optax.softmax_cross_entropy_with_integer_labels(logits_fn(unravel(f), xb), yb)), flat


def exact_hessian(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))(flat), np.float64)


@pytest.fixture(scope="module")
def mlp():
    """(logits_fn, params, x, y, loss_fn, exact Hessian, eigenvalues ascending)."""
    x, y = data()
    model = TinyMLP()
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)["params"]
    logits_fn = lambda p, xb: model.apply({"params": p}, xb)
    loss_fn = make_loss(logits_fn, x, y, chunk_size=16)
    hess = exact_hessian(lambda p: plain_loss(logits_fn, p, x, y), params)
    return logits_fn, params, x, y, loss_fn, hess, np.linalg.eigvalsh(hess)


def linear_mse_toy(seed=0, n=N_EXAMPLES, d=N_IN, c=N_CLASSES):
    """A linear model logits = x W under Cohen et al.'s MSE, whose Hessian is known in closed form.

    0.5 * mean_i |x_i W - onehot(y_i)|^2 is quadratic in W with Hessian I_c (x) X^T X / n (W flattened
    row-major: kron(X^T X / n, I_c)); its eigenvalues are those of X^T X / n, each c times.
    Returns (logits_fn, params, x, y, gram = X^T X / n in float64)."""
    kx, ky, kw = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(kx, (n, d)) * jnp.linspace(0.5, 2.0, d)  # distinct scales: a clear top eigenvalue
    y = jax.random.randint(ky, (n,), 0, c)
    params = {"w": 0.1 * jax.random.normal(kw, (d, c))}
    xs = np.asarray(x, np.float64)
    return (lambda p, xb: xb @ p["w"]), params, x, y, xs.T @ xs / n
