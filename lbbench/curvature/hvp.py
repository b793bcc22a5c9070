"""Hessian-vector products of a loss, as pytrees and as jitted flat matvecs.

One jitted flat matvec is shared by every estimator (Lanczos, Hutchinson, SLQ, trackers), so the
HVP graph compiles once per measurement.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lbbench.curvature.loss import ChunkedLoss, LossFn, MatVec, Params, jit_bound


def hvp(loss_fn: LossFn, params: Params, v: Params) -> Params:
    """Hessian-vector product H v by forward-over-reverse differentiation (Pearlmutter 1994).

    Cost: about 2-3 gradients (one forward-mode pass through the backward pass).
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def krylov_dtype(flat: jax.Array):
    """Krylov vectors are kept in at least float32 even for low-precision params."""
    return jnp.promote_types(flat.dtype, jnp.float32)


def flat_hvp(loss_fn, params, v):
    """H v for a flat vector v (ravel_pytree order), returned flat in v's dtype."""
    unravel = ravel_pytree(params)[1]
    return ravel_pytree(hvp(loss_fn, params, unravel(v)))[0].astype(v.dtype)


def linearized_grad(loss_fn, params):
    """v -> H v with the primal forward/backward pass done once (`jax.linearize` of the gradient).

    Each product then skips the primal half of forward-over-reverse (by matmul count ~2 gradients
    instead of ~3), at the price of storing the primal residuals: O(n examples) memory.
    """
    if isinstance(loss_fn, ChunkedLoss):
        loss_fn = dataclasses.replace(loss_fn, remat=False)  # remat would recompute the primal
    return jax.linearize(jax.grad(loss_fn), params)[1]


@jax.jit
def _apply_flat(linear, params_like, v):
    """linear(v) on flat vectors; params_like only supplies the unravel structure (no static
    closure, so a new measurement with the same shapes reuses the compiled program)."""
    unravel = ravel_pytree(params_like)[1]
    return ravel_pytree(linear(unravel(v)))[0].astype(v.dtype)


def residual_bytes(loss_fn, params) -> int:
    """Memory `linearized_grad` would hold, from shapes only (nothing is computed)."""
    linear = jax.eval_shape(functools.partial(linearized_grad, loss_fn), params)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(linear))


def flat_matvec(loss_fn: LossFn, params: Params, cache_bytes: int = 0) -> tuple[MatVec, int, Any]:
    """Jitted v -> H v on flat vectors, plus (n, dtype): one compile, reused by every estimator.

    If the linearisation's residuals fit in `cache_bytes`, the primal pass is computed once and
    every product reuses it (`linearized_grad`); otherwise plain forward-over-reverse `hvp`.
    """
    flat = ravel_pytree(params)[0]
    dtype = krylov_dtype(flat)
    if cache_bytes and residual_bytes(loss_fn, params) <= cache_bytes:
        linear = jax.block_until_ready(jit_bound(linearized_grad, loss_fn, params)())
        matvec = functools.partial(_apply_flat, linear, params)
    else:
        matvec = jit_bound(flat_hvp, loss_fn, params)
    return matvec, flat.size, dtype
