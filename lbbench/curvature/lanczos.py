"""Extreme Hessian eigenvalues: Lanczos with full reorthogonalisation, power iteration, warm starts.

Everything acts on a flat matvec v -> H v (see hvp.flat_matvec); one Lanczos step costs one HVP
(about 2.2 gradients with the cached linearisation, BUILD_NOTES).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lbbench.curvature.hvp import flat_matvec, krylov_dtype
from lbbench.curvature.loss import LossFn, MatVec, Params


def _orthogonalise(basis: jax.Array, w: jax.Array) -> jax.Array:
    """Remove the span of `basis` rows from w: classical Gram-Schmidt twice ("twice is enough")."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


@functools.partial(jax.jit, donate_argnums=0)
def _lanczos_step(basis, j, w, key):
    """Given w = H v_j, return (basis with row j+1 = v_{j+1}, alpha_j, beta_j); rows > j are zero.

    Full reorthogonalisation against all stored rows. On breakdown (beta ~ 0: an invariant Krylov
    subspace was found) a fresh random orthogonal vector continues the basis and beta is set to 0,
    which makes T block-diagonal and its eigenvalues still exact.
    """
    alpha = jnp.vdot(basis[j], w)
    w_norm = jnp.linalg.norm(w)
    w = _orthogonalise(basis, w)
    beta = jnp.linalg.norm(w)

    def restart(_):
        r = jax.random.normal(jax.random.fold_in(key, j), w.shape, w.dtype)
        r = _orthogonalise(basis, r)
        return r / jnp.linalg.norm(r), jnp.zeros_like(beta)

    breakdown = beta <= 100 * jnp.finfo(w.dtype).eps * w_norm
    nxt, beta = jax.lax.cond(breakdown, restart, lambda _: (w / beta, beta), None)
    return basis.at[j + 1].set(nxt), alpha, beta


def unit_normal(key, n: int, dtype) -> jax.Array:
    """A uniformly random unit vector in R^n."""
    v = jax.random.normal(key, (n,), dtype)
    return v / jnp.linalg.norm(v)


def lanczos_basis(matvec: MatVec, start: jax.Array, num_iters: int, key):
    """Lanczos from the unit vector `start`: (alphas, betas) as float64 numpy, and the basis V.

    V is the (m, n) device array of Krylov vectors, m = min(num_iters, n); T = V^T H V has
    diagonal alphas and off-diagonal betas. Costs m HVPs.
    """
    n = start.size
    m = max(1, min(int(num_iters), n))
    basis = jnp.zeros((m, n), start.dtype).at[0].set(start)
    alphas, betas = [], []
    for j in range(m - 1):
        basis, alpha, beta = _lanczos_step(basis, j, matvec(basis[j]), key)
        alphas.append(alpha)
        betas.append(beta)
    alphas.append(jnp.vdot(basis[m - 1], matvec(basis[m - 1])))
    betas = jnp.array(betas, start.dtype)
    return np.asarray(jnp.stack(alphas), np.float64), np.asarray(betas, np.float64), basis


def lanczos_basis_until(matvec: MatVec, start: jax.Array, min_iters: int, max_iters: int, tol: float, key):
    """lanczos_basis that stops early: after at least `min_iters` steps, as soon as the last step moved
    the top Ritz value by less than `tol` relative (`ritz_change`), else after `max_iters`.

    One host round trip per step (the step's alpha and beta) on top of its HVP, which dominates."""
    n = start.size
    cap = max(1, min(int(max_iters), n))
    basis = jnp.zeros((cap, n), start.dtype).at[0].set(start)
    alphas, betas = [], []
    for j in range(cap):
        w = matvec(basis[j])
        if j == cap - 1:
            alphas.append(float(jnp.vdot(basis[j], w)))
            break
        basis, alpha, beta = _lanczos_step(basis, j, w, key)
        alphas.append(float(alpha))
        if j + 1 >= min_iters and ritz_change(np.array(alphas), np.array(betas)) < tol:
            break
        betas.append(float(beta))
    m = len(alphas)
    return np.asarray(alphas, np.float64), np.asarray(betas[: m - 1], np.float64), basis[:m]


def lanczos(matvec: MatVec, params_like, num_iters: int, key) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos tridiagonalisation T = V^T H V from a random unit start, full reorthogonalisation.

    `matvec` acts on flat vectors shaped like `ravel_pytree(params_like)[0]`. Returns float64 numpy
    alphas (m,) and betas (m-1,), m = min(num_iters, n): the diagonal and off-diagonal of T.
    """
    flat = ravel_pytree(params_like)[0]
    start_key, restart_key = jax.random.split(key)
    start = unit_normal(start_key, flat.size, krylov_dtype(flat))
    alphas, betas, _ = lanczos_basis(matvec, start, num_iters, restart_key)
    return alphas, betas


def ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) of tridiagonal T and Gauss-quadrature weights tau_i = (e_1^T u_i)^2.

    The weights are the squared first components of T's eigenvectors (Golub & Welsch 1969), the
    nodes/weights used by stochastic Lanczos quadrature.
    """
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, vectors = np.linalg.eigh(t)
    return values, vectors[0] ** 2


def top_eigenvalues_mv(matvec: MatVec, n: int, dtype, k: int, num_iters: int, key) -> np.ndarray:
    """The k largest Ritz values (descending) of `num_iters` Lanczos steps on a flat matvec."""
    alphas, betas = lanczos(matvec, jnp.zeros((n,), dtype), num_iters, key)
    values, _ = ritz(alphas, betas)
    return values[::-1][:k]


def top_eigenvalues(loss_fn: LossFn, params: Params, k: int, num_iters: int, key) -> jax.Array:
    """The k largest Hessian eigenvalues (descending): top Ritz values of `num_iters` Lanczos steps.

    Extreme eigenvalues converge first, so ~20 steps suffice for lambda_max; k must be <= num_iters.
    """
    if k > num_iters:
        raise ValueError(f"top_k={k} needs at least as many Lanczos steps, got {num_iters}")
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return jnp.asarray(top_eigenvalues_mv(matvec, n, dtype, k, num_iters, key))


def ritz_change(alphas: np.ndarray, betas: np.ndarray) -> float:
    """How much the last Lanczos step still moved the top Ritz value, relative to it:
    (θ_max(T_m) − θ_max(T_{m−1})) / |θ_max(T_m)| ≥ 0 (Cauchy interlacing), inf for m = 1.

    A convergence indicator that costs no HVP: the top Ritz value rises monotonically to λ_max, so
    a step that still moves it by p % says the value may still be p % (or more) low; 0 once it stopped
    moving (Saad 2011, "Numerical Methods for Large Eigenvalue Problems", §6.6)."""
    if len(alphas) < 2:
        return float("inf")
    top = ritz(alphas, betas)[0][-1]
    previous = ritz(alphas[:-1], betas[:-1])[0][-1]  # T_{m-1}: the leading (m-1) x (m-1) block
    return float(max(top - previous, 0.0) / max(abs(top), np.finfo(float).tiny))


def top_eigenpair_checked(
    matvec: MatVec, start: jax.Array, num_iters: int, key, max_iters: int = 0, tol: float = 0.0
) -> tuple[float, jax.Array, float]:
    """top_eigenpair plus `ritz_change` of its last step (how far from converged the value may be);
    with `max_iters` > num_iters, steps go on until that change is below `tol` (lanczos_basis_until)."""
    start = start / jnp.linalg.norm(start)
    if max_iters > num_iters:
        alphas, betas, basis = lanczos_basis_until(matvec, start, num_iters, max_iters, tol, key)
    else:
        alphas, betas, basis = lanczos_basis(matvec, start, num_iters, key)
    values, vectors = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
    vec = basis.T @ jnp.asarray(vectors[:, -1], basis.dtype)
    return float(values[-1]), vec / jnp.linalg.norm(vec), ritz_change(alphas, betas)


def top_eigenpair(matvec: MatVec, start: jax.Array, num_iters: int, key) -> tuple[float, jax.Array]:
    """(largest Ritz value, its unit Ritz vector V^T u) of `num_iters` Lanczos steps from `start`.

    Warm start (Lanczos 1950; the tracking use follows Cohen et al. 2021, who track lambda_max
    during training): started from the previous step's top eigenvector, the start already lies
    almost in the top eigenspace, so a few steps (each one HVP) reach the accuracy a cold start
    needs ~20 for. The returned vector is the next call's start.
    """
    value, vec, _ = top_eigenpair_checked(matvec, start, num_iters, key)
    return value, vec


def warm_lambda_max(matvec: MatVec, n: int, dtype, previous, num_iters: int, key):
    """(lambda_max, top eigenvector) from `num_iters` Lanczos steps started at `previous`.

    `previous` is the last call's vector, or None for a random start (the first measurement).
    Cost: `num_iters` HVPs on the n measured examples, each ~2.4 gradients (forward-over-reverse),
    i.e. ~2.4 num_iters n/B train steps at batch size B (40 at k = 5, n = 2048, B = 256).
    """
    value, vec, _ = warm_lambda_max_checked(matvec, n, dtype, previous, num_iters, key)
    return value, vec


def warm_lambda_max_checked(
    matvec: MatVec, n: int, dtype, previous, num_iters: int, key, max_iters: int = 0, tol: float = 0.0, mix: float = 0.0
):
    """warm_lambda_max plus the `ritz_change` of its last step (the tracker's convergence indicator).

    `max_iters`/`tol`: keep stepping until the change is below `tol` (at most `max_iters` steps).
    `mix`: add that fraction of a random unit vector to the warm start, so a direction that has just
    overtaken the previous top one is in the Krylov space from the first step (a pure warm start can
    converge to the old, now second, eigenvalue and report it as converged)."""
    start = unit_normal(key, n, dtype) if previous is None else jnp.asarray(previous, dtype)
    if previous is not None and mix > 0:
        start = start / jnp.linalg.norm(start) + mix * unit_normal(jax.random.fold_in(key, 2), n, dtype)
    return top_eigenpair_checked(matvec, start, num_iters, jax.random.fold_in(key, 1), max_iters, tol)


@jax.jit
def _rayleigh_step(v, w):
    """Rayleigh quotient v.Hv (for unit v) and the next normalised iterate Hv/|Hv|."""
    return jnp.vdot(v, w), w / jnp.linalg.norm(w)


def power_iteration_mv(matvec: MatVec, n: int, dtype, num_iters: int, key) -> float:
    """Rayleigh quotient after `num_iters` power iterations from a random unit vector."""
    v, quotient = unit_normal(key, n, dtype), jnp.nan
    for _ in range(max(1, int(num_iters))):
        quotient, v = _rayleigh_step(v, matvec(v))
    return float(quotient)


def power_iteration(loss_fn: LossFn, params: Params, num_iters: int, key) -> float:
    """Power iteration on H; returns the Rayleigh quotient of the last iterate.

    Converges to the eigenvalue of largest *magnitude* (returned signed), at rate
    (|lambda_2|/|lambda_1|)^k, so it equals lambda_max only when lambda_max > |lambda_min|.
    A cross-check for Lanczos, not a replacement.
    """
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return power_iteration_mv(matvec, n, dtype, num_iters, key)
