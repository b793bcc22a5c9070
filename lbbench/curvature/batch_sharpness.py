"""Batch sharpness (Andreyev & Beneventano 2024, "Edge of stochastic stability", Def. 1):

    BS = E_B [ g_B^T H_B g_B / |g_B|^2 ],

the curvature of each minibatch's own loss L_B along that minibatch's own gradient g_B = grad L_B,
averaged over minibatches. Under SGD it rises to and hovers at 2/eta, where lambda_max of the
full-data Hessian stays below 2/eta.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lbbench.curvature import objectives
from lbbench.curvature.loss import Params, jit_with_logits


def batch_loss(logits_fn: Callable, params: Params, xb, yb, loss: str = "cross_entropy") -> jax.Array:
    """Mean training loss `loss` (curvature.objectives) of one minibatch: the L_B whose Hessian H_B is taken."""
    return objectives.mean_loss(loss, logits_fn(params, xb), yb)


def gradient_curvature(loss_fn: Callable, params: Params) -> jax.Array:
    """g^T H g / |g|^2 with g = grad loss_fn(params): one `jax.linearize` of the gradient.

    The primal pass of the linearisation *is* g, so the cost is one HVP (~2.2-3 gradients).
    """
    g, hvp = jax.linearize(jax.grad(loss_fn), params)
    flat_g = ravel_pytree(g)[0]
    return jnp.vdot(flat_g, ravel_pytree(hvp(g))[0]) / jnp.vdot(flat_g, flat_g)


@functools.partial(jit_with_logits, static_argnames=("map_batches", "loss"))
def _per_batch(logits_fn, params, xs, ys, map_batches: int, loss: str):
    """g_B^T H_B g_B / |g_B|^2 for every batch (xs[i], ys[i]), `map_batches` at a time."""

    def one(batch):
        return gradient_curvature(functools.partial(batch_loss, logits_fn, xb=batch[0], yb=batch[1], loss=loss), params)

    return jax.lax.map(one, (xs, ys), batch_size=map_batches)


def split_batches(x, y, batch_size: int, max_batches: int = 0):
    """(xs, ys) of shape (k, batch_size, ...): the first k = n // batch_size (<= max_batches if >0)
    consecutive minibatches of (x, y); k = 0 when batch_size > n."""
    k = x.shape[0] // batch_size
    k = min(k, max_batches) if max_batches else k
    xs = jnp.asarray(x[: k * batch_size]).reshape((k, batch_size) + x.shape[1:])
    return xs, jnp.asarray(y[: k * batch_size]).reshape((k, batch_size))


def batch_sharpness(
    logits_fn: Callable, params: Params, xs, ys, chunk_examples: int = 2048, loss: str = "cross_entropy"
) -> tuple[float, float]:
    """(mean, standard error) over the k minibatches (xs, ys) of shape (k, B, ...) of
    g_B^T H_B g_B / |g_B|^2 (Andreyev & Beneventano 2024), H_B and g_B of the mean loss `loss`
    (curvature.objectives) of each batch. Batches are processed
    max(1, chunk_examples // B) at a time (memory). Cost: one linearised HVP per batch, about
    3 gradients of each batch: ~3k train steps (24 for 2048 examples at B = 256). stderr is NaN
    for k = 1.
    """
    map_batches = max(1, int(chunk_examples) // xs.shape[1])
    values = np.asarray(_per_batch(logits_fn, params, xs, ys, map_batches=map_batches, loss=loss), np.float64)
    stderr = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(stderr)
