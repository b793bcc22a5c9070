"""`measure`: every end-of-run sharpness metric from one shared HVP (what result.json records).

Everything needs only the loss of `logits_fn` on a fixed subset (the run's training loss,
`SharpnessOptions.loss`: curvature.objectives); the Hessian is never formed.
Curvature is read off the Krylov space of H via Lanczos (top eigenvalues, spectral density),
random probes (trace), and a box-constrained maximisation (Keskar et al. 2017 eps-sharpness).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

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
    epsilons: tuple[float, ...] = (1e-3,)  # empty = skip eps-sharpness
    subspace_dim: int = 100  # p for Keskar's random-subspace variant; 0 = full space only
    lbfgs_iters: int = 10
    chunk_size: int = 512  # examples per chunk when summing the loss
    per_layer: bool = False  # also lambda_max and trace of each layer's diagonal block
    hvp_cache_bytes: int = 1 << 30  # reuse the HVP's primal pass if its residuals fit (0 = never)
    loss: str = "cross_entropy"  # the training loss whose Hessian is measured (curvature.objectives)


class _Clock:
    """Runs the parts of a measurement, records each one's seconds and reports it when done.

    Results are host values, so the clock includes device work (and compilation)."""

    def __init__(self, report=None, started=None, safe_point: Callable[[], None] = lambda: None):
        self.seconds: dict[str, float] = {}
        self.report, self.started, self.safe_point = report, started, safe_point

    def __call__(self, name: str, fn, *args):
        self.safe_point()  # between parts: an interrupt the caller recorded stops the measurement here
        if self.started is not None:
            self.started(name)
        start = time.perf_counter()
        out = fn(*args)
        self.seconds[name] = time.perf_counter() - start
        if self.report is not None:
            self.report(name, self.seconds[name])
        return out


def _interruptible(matvec, safe_point: Callable[[], None]):
    """The matvec with a safe point before every product (host loops call it; an interrupt stops there)."""

    def checked(v):
        safe_point()
        return matvec(v)

    return checked


def _hessian_metrics(matvec, n, dtype, params, options: SharpnessOptions, key, clock: _Clock) -> dict:
    """lambda_max / top-k, optional power iteration, trace and SLQ density from one matvec."""
    keys = dict(zip(["lanczos", "power", "trace", "density", "layers"], jax.random.split(key, 5)))
    top = clock(
        "lambda_max", top_eigenvalues_mv, matvec, n, dtype, options.top_k, options.lanczos_iters, keys["lanczos"]
    )
    out = {
        "lambda_max": float(top[0]),
        "top_eigenvalues": [float(t) for t in top],
        "hessian_trace": None,
        "hessian_trace_stderr": None,
    }
    if options.power_iters:
        out["power_iteration_lambda_max"] = clock(
            "power_iteration", power_iteration_mv, matvec, n, dtype, options.power_iters, keys["power"]
        )
    clock.seconds["trace"] = clock.seconds["density"] = 0.0
    if options.hutchinson_probes:
        out["hessian_trace"], out["hessian_trace_stderr"] = clock(
            "trace", hutchinson_mv, matvec, n, dtype, options.hutchinson_probes, keys["trace"]
        )
    if options.density:
        grid, values = clock(
            "density",
            slq_mv,
            matvec,
            n,
            dtype,
            options.density_runs,
            options.density_iters,
            keys["density"],
            1000,
            None,
        )
        out["density"] = {"grid": grid.tolist(), "values": values.tolist()}
    if options.per_layer:
        out["per_layer"] = clock(
            "per_layer",
            per_layer,
            matvec,
            params,
            n,
            dtype,
            options.lanczos_iters,
            options.hutchinson_probes,
            keys["layers"],
        )
    return out


def measure(
    logits_fn: Callable,
    params: Params,
    x,
    y,
    options: SharpnessOptions,
    key,
    report: Callable[[str, float], None] | None = None,
    started: Callable[[str], None] | None = None,
    safe_point: Callable[[], None] = lambda: None,
) -> dict:
    """All sharpness metrics of the mean training loss `options.loss` (cross-entropy by default) of
    `logits_fn` on (x, y) at `params`.

    Returns a JSON-serialisable dict of Python floats/lists: "loss", "num_params", "num_examples",
    "lambda_max", "top_eigenvalues" (descending), "power_iteration_lambda_max" (if power_iters),
    "hessian_trace" and "hessian_trace_stderr" (None if probes=0), "epsilon_sharpness"
    ({"full_<eps:g>", "subspace_<eps:g>"}: percent, Keskar Metric 2.1; {} if no epsilons),
    "density" ({"grid", "values"}, only if options.density), "per_layer" (if asked) and "seconds"
    (hvp_setup, lambda_max, trace, epsilon, density, total; plus power_iteration / per_layer if
    run; all include compile time). Nothing in `params`, or in any state that `logits_fn` closes
    over, is mutated. `report(part, seconds)` is called as each part finishes and `started(part)` as it
    starts (progress output). `safe_point()` is called between parts, before every Hessian-vector
    product and every L-BFGS-B evaluation: the caller raises there to stop (lbbench passes
    `runs.signals.check`, so a Ctrl-C never lands inside JAX; this package stays free of run state).
    """
    if options.top_k > options.lanczos_iters:
        raise ValueError(f"top_k={options.top_k} > lanczos_iters={options.lanczos_iters}")
    t_start = time.perf_counter()
    hessian_key, epsilon_key = jax.random.split(key)
    loss_fn = make_loss(logits_fn, x, y, options.chunk_size, options.loss)
    out = {
        "loss": loss_value(loss_fn, params),
        "num_params": int(ravel_pytree(params)[0].size),
        "num_examples": int(loss_fn.num_examples),
    }
    clock = _Clock(report, started, safe_point)
    matvec, n, dtype = clock("hvp_setup", flat_matvec, loss_fn, params, options.hvp_cache_bytes)
    matvec = _interruptible(matvec, safe_point)
    out.update(_hessian_metrics(matvec, n, dtype, params, options, hessian_key, clock))
    del matvec  # frees a cached linearisation before eps-sharpness needs the memory
    out["epsilon_sharpness"] = clock(
        "epsilon", all_epsilon_sharpness, loss_fn, params, options, epsilon_key, safe_point
    )
    clock.seconds["total"] = time.perf_counter() - t_start
    out["seconds"] = clock.seconds
    return out
