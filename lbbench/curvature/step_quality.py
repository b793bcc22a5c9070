"""Where a step lands on the local 1-D quadratic (Cockpit's alpha), and how much of the gradient
lies along the top Hessian eigenvector (Gur-Ari, Roberts & Dyer 2018).

alpha (Schneider, Dangel & Hennig 2021, "Cockpit", Sec. 3 and cockpit/quantities/alpha.py): fit
f(s) = c0 + c1 s + c2 s^2 along the step direction d/|d| to the loss and directional derivative
at s = 0 and s = |d| by least squares weighted by their per-example variances; then
alpha = 2|d| / (-c1/c2) - 1 is -1 for no step, 0 for a step to the minimum of the fit and
+1 for a step to the far point of equal loss (above 1: overshooting). A concave fit gives -1,
as in Cockpit. Unlike Cockpit, which observes the end point on the *next* minibatch, both
points here use the same minibatch, so for a quadratic loss the fit is exact.
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

VARIANCE_FLOOR = 1e-10  # Cockpit's stand-in for a zero variance


def fit_quadratic(t: float, fs, dfs, var_fs, var_dfs) -> np.ndarray | None:
    """(c0, c1, c2) of f(s) = c0 + c1 s + c2 s^2 from f(0), f(t), f'(0), f'(t) (Cockpit's
    `_fit_quadratic`): weighted least squares with weights 1/variance; None if singular."""
    phi = np.array([[1, 0, 0], [1, t, t**2], [0, 1, 0], [0, 1, 2 * t]], np.float64).T
    variances = np.maximum(np.asarray(list(var_fs) + list(var_dfs), np.float64), VARIANCE_FLOOR)
    weights = np.diag(1.0 / variances)
    try:
        return np.linalg.solve(phi @ weights @ phi.T, phi @ weights @ np.asarray(list(fs) + list(dfs), np.float64))
    except np.linalg.LinAlgError:
        return None


def alpha_from_fit(mu, t: float) -> float:
    """Cockpit's `_get_alpha`: 2t/(-c1/c2) - 1; -1 if concave (c2 < 0), the step is 0 or no fit."""
    if mu is None or t == 0.0 or mu[2] < 0:
        return -1.0
    return float(2.0 * t / (-mu[1] / mu[2]) - 1.0)


@functools.partial(jit_with_logits, static_argnames="loss")
def _losses_and_slopes(logits_fn, params, unit_direction, x, y, loss: str):
    """Per-example losses and their derivatives along the unit direction: one jvp."""
    per_example = objectives.per_example(loss)
    return jax.jvp(lambda p: per_example(logits_fn(p, x), y), (params,), (unit_direction,))


def step_alpha(logits_fn: Callable, params: Params, step: Params, x, y, loss: str = "cross_entropy") -> float:
    """Cockpit's alpha for the update `step` (params -> params + step) on the minibatch (x, y),
    along the training loss `loss` (curvature.objectives).

    Cost: two jvps of the per-example losses, about one gradient of the batch: ~1 train step.
    """
    flat_step, unravel = ravel_pytree(step)
    t = float(jnp.linalg.norm(flat_step))
    if t == 0.0:
        return -1.0
    unit = unravel(flat_step / t)
    end = jax.tree.map(jnp.add, params, step)
    points = [_losses_and_slopes(logits_fn, p, unit, x, y, loss=loss) for p in (params, end)]
    points = [(np.asarray(f, np.float64), np.asarray(df, np.float64)) for f, df in points]
    mu = fit_quadratic(
        t,
        [f.mean() for f, _ in points],
        [df.mean() for _, df in points],
        [f.var(ddof=1) for f, _ in points],
        [df.var(ddof=1) for _, df in points],
    )
    return alpha_from_fit(mu, t)


def top_overlap(gradient: jax.Array, top_vector: jax.Array) -> float:
    """(v^T g)^2 / |g|^2 for a unit top Hessian eigenvector v: the fraction of the gradient's
    squared norm in the top eigenspace: Gur-Ari, Roberts & Dyer 2018 (Sec. 2) overlap with k = 1.
    Cost: nothing beyond the gradient and the vector (one dot product)."""
    g = jnp.asarray(gradient, jnp.float32)
    return float(jnp.vdot(top_vector, g) ** 2 / jnp.vdot(g, g))
