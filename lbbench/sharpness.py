"""Sharpness of a minimum from Hessian-vector products (HVPs) of the full-data training loss.

Everything here needs only `loss_fn(params) -> scalar`; the Hessian is never formed. Curvature is
read off the Krylov space of H via Lanczos (top eigenvalues, spectral density), random probes
(trace), and a box-constrained maximisation (Keskar et al. 2017 eps-sharpness, in eps_sharpness.py).

BatchNorm: the caller passes a `logits_fn` that closes over the running statistics and runs the
model with `train=False`, so the loss is a pure function of the trainable parameters and nothing
is mutated.

Compilation: `measure` builds one jitted flat HVP and shares it between Lanczos, power iteration,
Hutchinson and SLQ, so the (expensive) HVP graph compiles once per call; the eps-sharpness runs
share one jitted gradient. Data and params always enter jitted code as arguments (`ChunkedLoss` is
a pytree): arrays a jitted function closes over are embedded in the program as constants, which
XLA then constant-folds (minutes of compile on a 1M-parameter MLP).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

Params = Any
LossFn = Callable[[Params], jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class SharpnessOptions:
    """What `measure` computes and how hard it tries."""

    lanczos_iters: int = 20  # Lanczos steps for lambda_max / top-k
    top_k: int = 1  # how many top eigenvalues to report
    power_iters: int = 0  # 0 = skip the power-iteration cross-check
    hutchinson_probes: int = 20  # 0 = skip trace
    density: bool = False  # stochastic Lanczos quadrature spectral density
    density_runs: int = 2  # SLQ random starting vectors
    density_iters: int = 30
    epsilons: tuple[float, ...] = (1e-3, 5e-4)  # empty = skip eps-sharpness
    subspace_dim: int = 100  # p for Keskar's random-subspace variant; 0 = full space only
    lbfgs_iters: int = 10
    chunk_size: int = 512  # examples per chunk when summing the loss
    per_layer: bool = False  # also lambda_max and trace of each layer's diagonal block
    hvp_cache_bytes: int = 1 << 30  # reuse the HVP's primal pass if its residuals fit (0 = never)


# ----------------------------------------------------------------------------- loss and HVP


def _sum_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted sum of softmax cross-entropy (integer labels), accumulated in at least float32."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(weights.astype(ce.dtype) * ce)


def _pad_to_chunks(a: jax.Array, chunk: int) -> jax.Array:
    """Pad the leading axis to a multiple of `chunk` with copies of the first rows, then split it.

    Padding with real examples (weight 0) rather than zeros keeps every logit finite, so the
    zero weights can never meet a NaN/inf.
    """
    pad = -a.shape[0] % chunk
    a = jnp.concatenate([a, a[:pad]]) if pad else a
    return a.reshape((a.shape[0] // chunk, chunk) + a.shape[1:])


@functools.partial(jax.tree_util.register_dataclass, data_fields=("xs", "ys", "ws"),
                   meta_fields=("logits_fn", "num_examples", "remat"))
@dataclasses.dataclass(frozen=True, eq=False)
class ChunkedLoss:
    """params -> mean cross-entropy over chunked data (built by `make_loss`).

    A pytree whose leaves are the data, so jitted code takes it as an *argument*: arrays a jitted
    function closes over become constants that XLA embeds and constant-folds (slow compiles,
    programs the size of the data set).
    """

    logits_fn: Callable
    xs: jax.Array  # (num_chunks, chunk, ...)
    ys: jax.Array  # (num_chunks, chunk)
    ws: jax.Array  # (num_chunks, chunk): 1 for real examples, 0 for padding
    num_examples: int
    remat: bool = True  # checkpoint each chunk: reverse mode keeps one chunk's activations

    def _chunk_sum(self, params, xb, yb, wb):
        return _sum_cross_entropy(self.logits_fn(params, xb), yb, wb)

    def __call__(self, params) -> jax.Array:
        if self.xs.shape[0] == 1:
            return self._chunk_sum(params, self.xs[0], self.ys[0], self.ws[0]) / self.num_examples
        chunk_sum = jax.checkpoint(self._chunk_sum) if self.remat else self._chunk_sum

        def body(total, batch):
            return total + chunk_sum(params, *batch), None

        total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (self.xs, self.ys, self.ws))
        return total / self.num_examples


def make_loss(logits_fn: Callable, x, y, chunk_size: int) -> ChunkedLoss:
    """Mean softmax cross-entropy over all of (x, y), summed chunk by chunk with `lax.scan`.

    The last chunk is padded (weight 0) so any n works; the result is the plain mean up to float
    summation order. Each chunk is `jax.checkpoint`-ed, so reverse mode (and hence HVPs) keeps only
    one chunk's activations alive: memory is O(chunk_size), not O(n).
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    chunk = max(1, min(int(chunk_size), n))
    weights = (jnp.arange(-(-n // chunk) * chunk) < n).astype(jnp.float32)
    return ChunkedLoss(logits_fn, _pad_to_chunks(x, chunk), _pad_to_chunks(y, chunk),
                       weights.reshape(-1, chunk), n)


def _is_array_tree(obj) -> bool:
    leaves = jax.tree.leaves(obj)
    return bool(leaves) and all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)


def _jit_bound(fn: Callable, loss_fn, *bound) -> Callable:
    """jit fn(loss_fn, *bound, *rest), returned as a function of *rest; compiles on first call.

    `bound` (params) and an array-pytree `loss_fn` (a ChunkedLoss) are traced arguments, never
    embedded constants; any other `loss_fn` (a plain function) is closed over.
    """
    if _is_array_tree(loss_fn):
        return functools.partial(jax.jit(fn), loss_fn, *bound)
    return functools.partial(jax.jit(functools.partial(fn, loss_fn)), *bound)


def hvp(loss_fn: LossFn, params: Params, v: Params) -> Params:
    """Hessian-vector product H v by forward-over-reverse differentiation (Pearlmutter 1994)."""
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def _krylov_dtype(flat: jax.Array):
    """Krylov vectors are kept in at least float32 even for low-precision params."""
    return jnp.promote_types(flat.dtype, jnp.float32)


def _flat_hvp(loss_fn, params, v):
    unravel = ravel_pytree(params)[1]
    return ravel_pytree(hvp(loss_fn, params, unravel(v)))[0].astype(v.dtype)


def _linearized_grad(loss_fn, params):
    """v -> H v with the primal forward/backward pass done once (`jax.linearize` of the gradient).

    Each product then skips the primal half of forward-over-reverse (by matmul count ~2 gradients
    instead of ~3), at the price of storing the primal residuals: O(n examples) memory.
    """
    if isinstance(loss_fn, ChunkedLoss):
        loss_fn = dataclasses.replace(loss_fn, remat=False)  # remat would recompute the primal
    return jax.linearize(jax.grad(loss_fn), params)[1]


def _apply_flat(linear, unravel, v):
    return ravel_pytree(linear(unravel(v)))[0].astype(v.dtype)


def _residual_bytes(loss_fn, params) -> int:
    """Memory `_linearized_grad` would hold, from shapes only (nothing is computed)."""
    linear = jax.eval_shape(functools.partial(_linearized_grad, loss_fn), params)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(linear))


def flat_matvec(loss_fn: LossFn, params: Params, cache_bytes: int = 0) -> tuple[MatVec, int, Any]:
    """Jitted v -> H v on flat vectors, plus (n, dtype): one compile, reused by every estimator.

    If the linearisation's residuals fit in `cache_bytes`, the primal pass is computed once and
    every product reuses it (`_linearized_grad`); otherwise plain forward-over-reverse `hvp`.
    """
    flat, unravel = ravel_pytree(params)
    dtype = _krylov_dtype(flat)
    if cache_bytes and _residual_bytes(loss_fn, params) <= cache_bytes:
        linear = jax.block_until_ready(_jit_bound(_linearized_grad, loss_fn, params)())
        matvec = functools.partial(jax.jit(_apply_flat, static_argnums=1), linear, unravel)
    else:
        matvec = _jit_bound(_flat_hvp, loss_fn, params)
    return matvec, flat.size, dtype


# ----------------------------------------------------------------------------- Lanczos


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


def _unit_normal(key, n: int, dtype) -> jax.Array:
    v = jax.random.normal(key, (n,), dtype)
    return v / jnp.linalg.norm(v)


def lanczos(matvec: MatVec, params_like, num_iters: int, key) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos tridiagonalisation T = V^T H V from a random unit start, full reorthogonalisation.

    `matvec` acts on flat vectors shaped like `ravel_pytree(params_like)[0]`. The Krylov basis is
    stored as a (m, n) array, m = min(num_iters, n). Returns float64 numpy alphas (m,) and
    betas (m-1,): the diagonal and off-diagonal of T.
    """
    flat = ravel_pytree(params_like)[0]
    n, dtype = flat.size, _krylov_dtype(flat)
    m = max(1, min(int(num_iters), n))
    start_key, restart_key = jax.random.split(key)
    basis = jnp.zeros((m, n), dtype).at[0].set(_unit_normal(start_key, n, dtype))
    alphas, betas = [], []
    for j in range(m - 1):
        basis, alpha, beta = _lanczos_step(basis, j, matvec(basis[j]), restart_key)
        alphas.append(alpha)
        betas.append(beta)
    alphas.append(jnp.vdot(basis[m - 1], matvec(basis[m - 1])))
    betas = jnp.array(betas, dtype)
    return np.asarray(jnp.stack(alphas), np.float64), np.asarray(betas, np.float64)


def ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) of tridiagonal T and Gauss-quadrature weights tau_i = (e_1^T u_i)^2.

    The weights are the squared first components of T's eigenvectors (Golub & Welsch 1969), the
    nodes/weights used by stochastic Lanczos quadrature.
    """
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, vectors = np.linalg.eigh(t)
    return values, vectors[0] ** 2


def _top_eigenvalues_mv(matvec: MatVec, n: int, dtype, k: int, num_iters: int, key) -> np.ndarray:
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
    return jnp.asarray(_top_eigenvalues_mv(matvec, n, dtype, k, num_iters, key))


# ----------------------------------------------------------------------------- power iteration


@jax.jit
def _rayleigh_step(v, w):
    """Rayleigh quotient v.Hv (for unit v) and the next normalised iterate Hv/|Hv|."""
    return jnp.vdot(v, w), w / jnp.linalg.norm(w)


def _power_iteration_mv(matvec: MatVec, n: int, dtype, num_iters: int, key) -> float:
    v, quotient = _unit_normal(key, n, dtype), jnp.nan
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
    return _power_iteration_mv(matvec, n, dtype, num_iters, key)


# ----------------------------------------------------------------------------- trace


def _hutchinson_mv(matvec: MatVec, n: int, dtype, num_probes: int, key) -> tuple[float, float]:
    samples = []
    for i in range(num_probes):
        z = jax.random.rademacher(jax.random.fold_in(key, i), (n,), dtype)
        samples.append(jnp.vdot(z, matvec(z)))
    samples = np.asarray(jnp.stack(samples), np.float64)
    stderr = samples.std(ddof=1) / np.sqrt(num_probes) if num_probes > 1 else float("nan")
    return float(samples.mean()), float(stderr)


def hutchinson_trace(loss_fn: LossFn, params: Params, num_probes: int, key) -> tuple[float, float]:
    """Hutchinson (1989) estimate tr H ~ mean_i z_i^T H z_i, Rademacher z_i; returns (mean, stderr).

    Unbiased; the standard error is the sample std (ddof=1) / sqrt(num_probes), NaN for one probe.
    """
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return _hutchinson_mv(matvec, n, dtype, num_probes, key)


# ----------------------------------------------------------------------------- spectral density


def gaussian_density(nodes, weights, grid, sigma: float) -> np.ndarray:
    """sum_i w_i N(t; node_i, sigma^2) on the grid: the Gaussian-smoothed spectral density."""
    z = (np.asarray(grid)[:, None] - np.asarray(nodes)[None, :]) / sigma
    return (np.exp(-0.5 * z**2) @ np.asarray(weights)) / (sigma * np.sqrt(2 * np.pi))


def _slq_mv(matvec, n, dtype, num_runs, num_iters, key, grid_size, sigma):
    nodes, weights = [], []
    for run_key in jax.random.split(key, num_runs):
        values, tau = ritz(*lanczos(matvec, jnp.zeros((n,), dtype), num_iters, run_key))
        nodes.append(values)
        weights.append(tau / num_runs)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    lo, hi = nodes.min(), nodes.max()
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(abs(hi), 1.0)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size)
    return grid, gaussian_density(nodes, weights, grid, sigma)


def spectral_density(
    loss_fn: LossFn, params: Params, num_runs: int, num_iters: int, key, grid_size: int = 1000,
    sigma: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019).

    phi_sigma(t) = (1/n) sum_i N(t; lambda_i, sigma^2) is estimated as the average over `num_runs`
    random unit starts of sum_j tau_j N(t; theta_j, sigma^2), with Ritz values theta_j and weights
    tau_j from `ritz`. The grid spans the Ritz values +- 5 sigma (default sigma = 1% of that range),
    so the returned density integrates to ~1.
    """
    matvec, n, dtype = flat_matvec(loss_fn, params)
    return _slq_mv(matvec, n, dtype, num_runs, num_iters, key, grid_size, sigma)


# ----------------------------------------------------------------------------- measure


def _call(fn, *args):
    return fn(*args)


def _timed(fn, *args):
    """(fn(*args), seconds); results are host values, so the clock includes device work."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _hessian_metrics(matvec, n, dtype, params, options: SharpnessOptions, key, seconds: dict) -> dict:
    """lambda_max / top-k, optional power iteration, trace and SLQ density from one matvec."""
    keys = dict(zip(["lanczos", "power", "trace", "density", "layers"], jax.random.split(key, 5)))
    top, seconds["lambda_max"] = _timed(
        _top_eigenvalues_mv, matvec, n, dtype, options.top_k, options.lanczos_iters,
        keys["lanczos"])
    out = {"lambda_max": float(top[0]), "top_eigenvalues": [float(t) for t in top],
           "hessian_trace": None, "hessian_trace_stderr": None}
    if options.power_iters:
        out["power_iteration_lambda_max"], seconds["power_iteration"] = _timed(
            _power_iteration_mv, matvec, n, dtype, options.power_iters, keys["power"])
    seconds["trace"] = seconds["density"] = 0.0
    if options.hutchinson_probes:
        (out["hessian_trace"], out["hessian_trace_stderr"]), seconds["trace"] = _timed(
            _hutchinson_mv, matvec, n, dtype, options.hutchinson_probes, keys["trace"])
    if options.density:
        (grid, values), seconds["density"] = _timed(
            _slq_mv, matvec, n, dtype, options.density_runs, options.density_iters,
            keys["density"], 1000, None)
        out["density"] = {"grid": grid.tolist(), "values": values.tolist()}
    if options.per_layer:
        from lbbench.layer_sharpness import per_layer  # builds on this module's estimators

        out["per_layer"], seconds["per_layer"] = _timed(
            per_layer, matvec, params, n, dtype, options.lanczos_iters, options.hutchinson_probes,
            keys["layers"])
    return out


def measure(logits_fn: Callable, params: Params, x, y, options: SharpnessOptions, key) -> dict:
    """All sharpness metrics of the mean cross-entropy of `logits_fn` on (x, y) at `params`.

    Returns a JSON-serialisable dict of Python floats/lists: "loss", "num_params", "num_examples",
    "lambda_max", "top_eigenvalues" (descending), "power_iteration_lambda_max" (if power_iters),
    "hessian_trace" and "hessian_trace_stderr" (None if probes=0), "epsilon_sharpness"
    ({"full_<eps:g>", "subspace_<eps:g>"}: percent, Keskar Metric 2.1; {} if no epsilons),
    "density" ({"grid", "values"}, only if options.density) and "seconds" (hvp_setup, lambda_max,
    trace, epsilon, density, total; plus power_iteration if run; all include compile time).
    Nothing in `params`, or in any state that `logits_fn` closes over, is mutated.
    """
    if options.top_k > options.lanczos_iters:
        raise ValueError(f"top_k={options.top_k} > lanczos_iters={options.lanczos_iters}")
    t_start = time.perf_counter()
    hessian_key, epsilon_key = jax.random.split(key)
    loss_fn = make_loss(logits_fn, x, y, options.chunk_size)
    out = {"loss": float(_jit_bound(_call, loss_fn, params)()),
           "num_params": int(ravel_pytree(params)[0].size),
           "num_examples": int(loss_fn.num_examples)}
    seconds = {}
    (matvec, n, dtype), seconds["hvp_setup"] = _timed(
        flat_matvec, loss_fn, params, options.hvp_cache_bytes)
    out.update(_hessian_metrics(matvec, n, dtype, params, options, hessian_key, seconds))
    del matvec  # frees a cached linearisation before eps-sharpness needs the memory
    from lbbench import eps_sharpness  # imported here: eps_sharpness builds on this module

    out["epsilon_sharpness"], seconds["epsilon"] = _timed(
        eps_sharpness.all_epsilon_sharpness, loss_fn, params, options, epsilon_key)
    seconds["total"] = time.perf_counter() - t_start
    out["seconds"] = seconds
    return out
