"""`measure`: every end-of-run sharpness metric from one shared HVP (what result.json records).

Everything needs only the loss of `logits_fn` on a fixed subset; the Hessian is never formed.
Curvature is read off the Krylov space of H via Lanczos (top eigenvalues, spectral density),
random probes (trace), and a box-constrained maximisation (Keskar et al. 2017 eps-sharpness).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
from jax.flatten_util import ravel_pytree

from lbbench.curvature.density import slq_mv
from lbbench.curvature.eps_sharpness import all_epsilon_sharpness
from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.lanczos import power_iteration_mv, top_eigenvalues_mv
from lbbench.curvature.loss import Params, loss_value, make_loss
from lbbench.curvature.per_layer import per_layer
from lbbench.curvature.trace import hutchinson_mv


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


def _timed(fn, *args):
    """(fn(*args), seconds); results are host values, so the clock includes device work."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _hessian_metrics(matvec, n, dtype, params, options: SharpnessOptions, key, seconds: dict) -> dict:
    """lambda_max / top-k, optional power iteration, trace and SLQ density from one matvec."""
    keys = dict(zip(["lanczos", "power", "trace", "density", "layers"], jax.random.split(key, 5)))
    top, seconds["lambda_max"] = _timed(
        top_eigenvalues_mv, matvec, n, dtype, options.top_k, options.lanczos_iters,
        keys["lanczos"])
    out = {"lambda_max": float(top[0]), "top_eigenvalues": [float(t) for t in top],
           "hessian_trace": None, "hessian_trace_stderr": None}
    if options.power_iters:
        out["power_iteration_lambda_max"], seconds["power_iteration"] = _timed(
            power_iteration_mv, matvec, n, dtype, options.power_iters, keys["power"])
    seconds["trace"] = seconds["density"] = 0.0
    if options.hutchinson_probes:
        (out["hessian_trace"], out["hessian_trace_stderr"]), seconds["trace"] = _timed(
            hutchinson_mv, matvec, n, dtype, options.hutchinson_probes, keys["trace"])
    if options.density:
        (grid, values), seconds["density"] = _timed(
            slq_mv, matvec, n, dtype, options.density_runs, options.density_iters,
            keys["density"], 1000, None)
        out["density"] = {"grid": grid.tolist(), "values": values.tolist()}
    if options.per_layer:
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
    "density" ({"grid", "values"}, only if options.density), "per_layer" (if asked) and "seconds"
    (hvp_setup, lambda_max, trace, epsilon, density, total; plus power_iteration / per_layer if
    run; all include compile time). Nothing in `params`, or in any state that `logits_fn` closes
    over, is mutated.
    """
    if options.top_k > options.lanczos_iters:
        raise ValueError(f"top_k={options.top_k} > lanczos_iters={options.lanczos_iters}")
    t_start = time.perf_counter()
    hessian_key, epsilon_key = jax.random.split(key)
    loss_fn = make_loss(logits_fn, x, y, options.chunk_size)
    out = {"loss": loss_value(loss_fn, params),
           "num_params": int(ravel_pytree(params)[0].size),
           "num_examples": int(loss_fn.num_examples)}
    seconds = {}
    (matvec, n, dtype), seconds["hvp_setup"] = _timed(
        flat_matvec, loss_fn, params, options.hvp_cache_bytes)
    out.update(_hessian_metrics(matvec, n, dtype, params, options, hessian_key, seconds))
    del matvec  # frees a cached linearisation before eps-sharpness needs the memory
    out["epsilon_sharpness"], seconds["epsilon"] = _timed(
        all_epsilon_sharpness, loss_fn, params, options, epsilon_key)
    seconds["total"] = time.perf_counter() - t_start
    out["seconds"] = seconds
    return out
