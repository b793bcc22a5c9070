"""Cockpit's gradient tests (Schneider, Dangel & Hennig 2021, "Cockpit", App. C) from per-example
gradients of one minibatch.

With per-example gradients g_n of a batch of size B and their mean g (the batch gradient), each
test returns the smallest constant for which the test would pass, as Cockpit reports it
(cockpit/quantities/{norm,inner,ortho}_test.py):
  norm test (Byrd et al. 2012, eq. 3.9):  theta = sqrt( sum_n |g_n - g|^2 / (B-1) / (B |g|^2) )
  inner-product test (Bollapragada et al. 2018, eq. 2.6):
        theta = sqrt( (sum_n <g_n, g>^2 - B |g|^4) / (B-1) / (B |g|^4) )
  orthogonality test (Bollapragada et al. 2018, eq. 3.3):
        nu = sqrt( (sum_n |g_n|^2 - sum_n <g_n, g>^2 / |g|^2) / (B-1) / (B |g|^2) )
Values above 1 say the batch is too small for the gradient's direction (norm, inner) or
orthogonal part (ortho) to be trusted.

Cost: the batch gradient (one train step's backward pass) plus per-example gradients by `vmap`,
reduced to two numbers per example chunk by chunk so only (chunk, n_params) is ever held:
about 1 + 3 train steps by operation count (measured on the default MLP on CPU: bench_curvature).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lbbench.curvature.batch_sharpness import batch_loss
from lbbench.curvature.loss import Params, jit_with_logits


def _example_stats(logits_fn, params, flat_g, x, y, loss: str):
    """(|g_n|^2, <g_n, g>) for one example (x, y): the two numbers every test needs."""
    grad = jax.grad(lambda p: batch_loss(logits_fn, p, x[None], y[None], loss))(params)
    flat = ravel_pytree(grad)[0]
    return jnp.vdot(flat, flat), jnp.vdot(flat, flat_g)


@functools.partial(jit_with_logits, static_argnames=("chunk", "loss"))
def batch_gradient_stats(logits_fn, params, x, y, chunk: int = 64, loss: str = "cross_entropy") -> dict:
    """{"grad_sq": |g|^2, "sq_norms": |g_n|^2 (B,), "dots": <g_n, g> (B,), "grad": flat g}, gradients
    of the training loss `loss` (curvature.objectives)."""
    flat_g = ravel_pytree(jax.grad(lambda p: batch_loss(logits_fn, p, x, y, loss))(params))[0]
    stats = functools.partial(_example_stats, logits_fn, params, flat_g, loss=loss)
    sq_norms, dots = jax.lax.map(lambda xy: stats(*xy), (x, y), batch_size=chunk)
    return {"grad_sq": jnp.vdot(flat_g, flat_g), "sq_norms": sq_norms, "dots": dots, "grad": flat_g}


def norm_test(sq_norms, grad_sq) -> jax.Array:
    """Byrd et al. 2012 eq. 3.9 as in Cockpit: sqrt(sum|g_n - g|^2/(B-1) / (B|g|^2))."""
    b = sq_norms.shape[0]
    variance_l1 = (jnp.sum(sq_norms) - b * grad_sq) / (b - 1)  # = sum_n |g_n - g|^2 / (B-1)
    return jnp.sqrt(variance_l1 / (b * grad_sq))


def inner_product_test(dots, grad_sq) -> jax.Array:
    """Bollapragada et al. 2018 eq. 2.6 as in Cockpit: sample variance of <g_n, g> over B |g|^4."""
    b = dots.shape[0]
    variance = (jnp.sum(dots**2) - b * grad_sq**2) / (b - 1)
    return jnp.sqrt(variance / (b * grad_sq**2))


def orthogonality_test(sq_norms, dots, grad_sq) -> jax.Array:
    """Bollapragada et al. 2018 eq. 3.3 as in Cockpit: variance of g_n's part orthogonal to g."""
    b = dots.shape[0]
    variance = (jnp.sum(sq_norms) - jnp.sum(dots**2) / grad_sq) / (b - 1)
    return jnp.sqrt(variance / (b * grad_sq))


def gradient_tests(
    logits_fn: Callable, params: Params, x, y, chunk: int = 64, loss: str = "cross_entropy"
) -> dict[str, float]:
    """{"norm_test", "inner_product_test", "orthogonality_test", "grad_norm"} on batch (x, y)."""
    chunk = min(int(chunk), x.shape[0])
    s = batch_gradient_stats(logits_fn, params, jnp.asarray(x), jnp.asarray(y), chunk=chunk, loss=loss)
    return {
        "norm_test": float(norm_test(s["sq_norms"], s["grad_sq"])),
        "inner_product_test": float(inner_product_test(s["dots"], s["grad_sq"])),
        "orthogonality_test": float(orthogonality_test(s["sq_norms"], s["dots"], s["grad_sq"])),
        "grad_norm": float(jnp.sqrt(s["grad_sq"])),
    }
