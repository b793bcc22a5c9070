"""Keskar et al. 2017 ε-sharpness (Metric 2.1): the largest relative loss rise in a small box.

The box maximisation runs scipy's L-BFGS-B (as Keskar et al. did) on a jitted value-and-gradient of
the same chunked loss the Hessian tools in `lbbench.curvature` use, in the full parameter space or in a
random p-dimensional subspace.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree

from lbbench.curvature.loss import LossFn, Params, jit_bound


def subspace(key, x: jax.Array, p: int) -> tuple[jax.Array, np.ndarray]:
    """Random Gaussian A (n x p) and A^+ x, the least-squares coordinates of x in span(A).

    A^+ x solves the p x p normal equations A^T A z = A^T x in float64 (min-norm lstsq, so p >= n
    also works); a tall Gaussian A is well conditioned, so this equals pinv(A) @ x to float error.
    """
    a = jax.random.normal(key, (x.size, p), x.dtype)
    gram = np.asarray(a.T @ a, np.float64)
    rhs = np.asarray(a.T @ x, np.float64)
    return a, np.linalg.lstsq(gram, rhs, rcond=None)[0]


def _negated_loss_at(loss_fn, params, z):
    """(-f(x + z), -grad f(x + z)) for a flat offset z from x = ravel(params)."""
    x, unravel = ravel_pytree(params)
    return jax.value_and_grad(lambda d: -loss_fn(unravel(x + d)))(z)


def _offset_value_and_grad(loss_fn: LossFn, params: Params):
    """(x, jitted z -> (-f(x + z), -grad f(x + z))): one compile shared by every eps run."""
    return ravel_pytree(params)[0], jit_bound(_negated_loss_at, loss_fn, params)


def _box_objective(offset_vg, dtype, a: jax.Array | None):
    """y -> (-f(x + A y), -A^T grad f) as float64 numpy for scipy's L-BFGS-B (A = I when None)."""

    def objective(y: np.ndarray) -> tuple[float, np.ndarray]:
        y = jnp.asarray(y, dtype)
        value, grad = offset_vg(y if a is None else a @ y)
        grad = grad if a is None else grad @ a
        return float(value), np.asarray(grad, np.float64)

    return objective


def _maximise_in_box(objective, half_width: np.ndarray, maxiter: int, safe_point=lambda: None) -> tuple[float, float]:
    """(f(x), max f(x + A y) over |y_i| <= half_width_i) by L-BFGS-B on -f from y = 0 (as Keskar).

    Returns the best value L-BFGS-B evaluated (its iterates stay inside the box), so the max is
    never below f(x), which is evaluated by the same jitted function at y = 0.
    """
    best = [-np.inf]

    def tracked(y):
        safe_point()  # between L-BFGS-B evaluations: where the caller may stop the maximisation
        value, grad = objective(y)
        best[0] = max(best[0], -value)
        return value, grad

    f0 = -objective(np.zeros_like(half_width))[0]
    scipy.optimize.minimize(
        tracked,
        np.zeros_like(half_width),
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(-half_width, half_width),
        options={"maxiter": int(maxiter)},
    )
    return f0, max(best[0], f0)


def _sharpness_value(f0: float, fmax: float) -> float:
    """Keskar Metric 2.1 from f(x) and the box max, clipped at 0 (only float noise could go < 0)."""
    return max(0.0, (fmax - f0) / (1.0 + f0) * 100.0)


def _box_half_width(epsilon: float, coords) -> np.ndarray:
    """Half-widths of C_eps: eps (|(A^+ x)_i| + 1), Keskar et al. 2017 Metric 2.1."""
    return epsilon * (np.abs(np.asarray(coords, np.float64)) + 1.0)


def _sharpness_setup(x: jax.Array, offset_vg, key, subspace_dim: int):
    """(objective over y, A^+ x) for the full space (A = I, subspace_dim=0) or a random subspace."""
    if subspace_dim:
        a, coords = subspace(key, x, int(subspace_dim))
        return _box_objective(offset_vg, x.dtype, a), coords
    return _box_objective(offset_vg, x.dtype, None), np.asarray(x, np.float64)


def epsilon_sharpness(
    loss_fn: LossFn, params: Params, epsilon: float, key, subspace_dim: int = 0, maxiter: int = 10
) -> float:
    """Keskar et al. 2017 (ICLR) eps-sharpness, Metric 2.1:

        phi_{x,f}(eps, A) = (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)) * 100,
        C_eps = {z in R^p : -eps(|(A^+ x)_i| + 1) <= z_i <= eps(|(A^+ x)_i| + 1)},

    with A = I_n (full space, subspace_dim=0) or a random n x p Gaussian A (p = subspace_dim,
    A^+ its pseudo-inverse). The max is approximated by `maxiter` L-BFGS-B iterations from y = 0,
    so it is a lower bound on the true max. The value is >= 0: the box contains y = 0.
    """
    x, offset_vg = _offset_value_and_grad(loss_fn, params)
    objective, coords = _sharpness_setup(x, offset_vg, key, subspace_dim)
    return _sharpness_value(*_maximise_in_box(objective, _box_half_width(epsilon, coords), maxiter))


def all_epsilon_sharpness(loss_fn, params, options, key, safe_point=lambda: None) -> dict[str, float]:
    """{"full_<eps:g>": .., "subspace_<eps:g>": ..}; one jitted loss gradient shared by all;
    `safe_point()` runs before every L-BFGS-B evaluation (the caller raises there to stop).

    `options` is any object with `epsilons`, `subspace_dim` and `lbfgs_iters` (a SharpnessOptions).
    """
    if not options.epsilons:
        return {}
    x, offset_vg = _offset_value_and_grad(loss_fn, params)
    spaces = {"full": 0}
    if options.subspace_dim:
        spaces["subspace"] = options.subspace_dim
    out = {}
    for name, p in spaces.items():
        objective, coords = _sharpness_setup(x, offset_vg, key, p)
        for eps in options.epsilons:
            box = _box_half_width(eps, coords)
            best = _maximise_in_box(objective, box, options.lbfgs_iters, safe_point)
            out[f"{name}_{eps:g}"] = _sharpness_value(*best)
    return out
