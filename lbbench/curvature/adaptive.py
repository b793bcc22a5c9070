"""Adaptive (scale-invariant) worst-case sharpness (Kwon et al. 2021, ASAM; Andriushchenko et al. 2023).

    S_ρ(w) = max_{‖δ ⊘ |w|‖₂ ≤ ρ} L(w + δ) − L(w)            (Andriushchenko et al. 2023, Eq. 2)

The perturbation is measured relative to each weight's own magnitude (δ = |w| ⊙ u, ‖u‖₂ ≤ ρ), so
rescaling a ReLU layer by α and the next by 1/α — which leaves the function unchanged — leaves S_ρ
unchanged too, where λ_max and plain ε-sharpness change (Dinh et al. 2017's objection to sharpness
as a generalization measure). Biases and normalisation parameters count like weights; a mask can
exclude leaves.

The inner maximum is found by projected gradient ascent on u (Andriushchenko et al. use Auto-PGD;
a fixed number of normalised steps of size 2ρ/steps, from a random start on the sphere of radius
ρ/2, is the plain PGD they compare against): u ← Π(u + η g/‖g‖), g = ∇_u L(w + |w| ⊙ u) =
|w| ⊙ ∇L(w + δ), Π the projection onto the ρ-ball. The reported value is the largest loss rise seen
along the path, so more steps can only raise it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lbbench.curvature.loss import LossFn, Params, is_array_tree


def _ascent(loss_fn, params, key, rho, scale_mask, steps: int):
    """(largest loss rise along the PGD path, loss at w): a scan over `steps` projected steps."""
    w, unravel = ravel_pytree(params)
    scale = jnp.abs(w) * scale_mask
    base = loss_fn(params)

    def loss_at(u):
        return loss_fn(unravel(w + scale * u))

    u0 = jax.random.normal(key, w.shape, w.dtype) * scale_mask
    u0 = 0.5 * rho * u0 / jnp.maximum(jnp.linalg.norm(u0), 1e-12)
    eta = 2.0 * rho / max(steps, 1)

    def project(u):
        norm = jnp.linalg.norm(u)
        return jnp.where(norm > rho, u * (rho / norm), u)

    def body(carry, _):
        u, best = carry
        value, g = jax.value_and_grad(loss_at)(u)
        g = g * scale_mask
        u = project(u + eta * g / jnp.maximum(jnp.linalg.norm(g), 1e-12))
        return (u, jnp.maximum(best, value)), None

    (u, best), _ = jax.lax.scan(body, (u0, loss_at(u0)), None, length=steps)
    return jnp.maximum(best, loss_at(u)) - base, base


_ascent_traced = jax.jit(_ascent, static_argnames="steps")  # a ChunkedLoss is a pytree argument


def adaptive_sharpness(loss_fn: LossFn, params: Params, rho: float, steps: int, key, mask=None) -> dict:
    """{"adaptive_sharpness", "loss", "rho", "steps"}: S_ρ of `loss_fn` at `params` (module docstring).

    `mask` (a pytree of bools like params, or None = every leaf) picks the leaves that are perturbed.
    """
    mask = jax.tree.map(lambda _: True, params) if mask is None else mask
    flat_mask = ravel_pytree(jax.tree.map(lambda p, m: jnp.full(p.shape, m, p.dtype), params, mask))[0]
    rho = jnp.asarray(rho, flat_mask.dtype)
    if is_array_tree(loss_fn):
        rise, base = _ascent_traced(loss_fn, params, key, rho, flat_mask, steps=steps)
    else:  # a plain function is closed over (tests, small models)
        rise, base = jax.jit(functools.partial(_ascent, loss_fn), static_argnames="steps")(
            params, key, rho, flat_mask, steps=steps
        )
    return {"adaptive_sharpness": float(rise), "loss": float(base), "rho": float(rho), "steps": int(steps)}
