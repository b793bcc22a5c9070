"""Benchmark the sharpness measurement on Keskar's F1 network: `lbbench-bench --what=sharpness`.

Reports the cost of one gradient and one Hessian-vector product of the chunked subset loss (jitted,
warm, median of --reps, interleaved so load drifts hit all alike): `hvp` (forward-over-reverse),
and the flat matvec `measure` uses with and without the cached linearisation; their ratios to the
gradient; and the wall time of `lbbench.curvature.measure` with default options (including compiles).
"""

from __future__ import annotations

import statistics
import time

import jax

from lbbench.curvature.hvp import flat_matvec, hvp
from lbbench.curvature.loss import make_loss
from lbbench.curvature.measure import SharpnessOptions, measure
from lbbench.models import build_model

HVP_OVER_GRAD_TARGET = 2.2


def _median_seconds(fns: dict, reps: int) -> dict:
    """{name: median wall time of fn()} over `reps` interleaved rounds, after one warm-up each."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _setup(num_examples: int, seed: int):
    """F1 with non-trivial running BatchNorm statistics; random x of shape (40,), 10 classes."""
    kx, ky, kinit = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(kx, (num_examples, 40))
    y = jax.random.randint(ky, (num_examples,), 0, 10)
    model, source = (build_model("f1", num_classes=10), "lbbench.models f1")
    variables = jax.jit(model.init, static_argnames="train")(kinit, x, train=False)
    train_apply = jax.jit(lambda v, xb: model.apply(v, xb, train=True, mutable=["batch_stats"]))
    _, stats = train_apply(variables, x)
    params, batch_stats = variables["params"], stats["batch_stats"]

    def logits_fn(p, xb):
        return model.apply({"params": p, "batch_stats": batch_stats}, xb, train=False)

    return logits_fn, params, x, y, source


def run(num_examples: int = 2048, reps: int = 10, seed: int = 0) -> dict:
    logits_fn, params, x, y, source = _setup(num_examples, seed)
    options = SharpnessOptions()
    loss_fn = make_loss(logits_fn, x, y, options.chunk_size)
    v = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(seed + 1), p.shape, p.dtype), params)
    grad_fn = jax.jit(lambda f, p: jax.grad(f)(p))  # the loss (with its data) is an argument
    hvp_fn = jax.jit(hvp)
    plain_mv, n, dtype = flat_matvec(loss_fn, params, cache_bytes=0)
    cached_mv, _, _ = flat_matvec(loss_fn, params, cache_bytes=options.hvp_cache_bytes)
    flat_v = jax.random.normal(jax.random.PRNGKey(seed + 3), (n,), dtype)
    t = _median_seconds(
        {
            "grad": lambda: grad_fn(loss_fn, params),
            "hvp": lambda: hvp_fn(loss_fn, params, v),
            "flat": lambda: plain_mv(flat_v),
            "cached": lambda: cached_mv(flat_v),
        },
        reps,
    )
    cached_mv = None  # frees the cached linearisation before `measure` needs the memory
    report = measure(logits_fn, params, x, y, options, jax.random.PRNGKey(seed + 2))
    return {
        "device": str(jax.devices()[0]),
        "model": source,
        "num_params": n,
        "num_examples": num_examples,
        "chunk_size": options.chunk_size,
        "reps": reps,
        "grad_s": t["grad"],
        "hvp_s": t["hvp"],
        "flat_hvp_s": t["flat"],
        "cached_flat_hvp_s": t["cached"],
        "hvp_over_grad": t["hvp"] / t["grad"],
        "cached_hvp_over_grad": t["cached"] / t["grad"],
        "hvp_over_grad_target": HVP_OVER_GRAD_TARGET,
        "measure_seconds": report["seconds"],
        "measure": {
            k: report[k] for k in ("loss", "lambda_max", "hessian_trace", "hessian_trace_stderr", "epsilon_sharpness")
        },
    }


def _ratio_text(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target <= {target}x: {'ok' if ratio <= target else 'ABOVE TARGET'})"


def format_table(r: dict) -> str:
    target = r["hvp_over_grad_target"]
    rows = [
        ("device", r["device"]),
        ("model", f"{r['model']} ({r['num_params']:,} params)"),
        ("examples / chunk", f"{r['num_examples']} / {r['chunk_size']}"),
        ("gradient (median)", f"{r['grad_s'] * 1e3:.2f} ms"),
        ("HVP, forward-over-reverse", f"{r['hvp_s'] * 1e3:.2f} ms"),
        ("flat HVP (no cache)", f"{r['flat_hvp_s'] * 1e3:.2f} ms"),
        ("flat HVP, cached primal (measure)", f"{r['cached_flat_hvp_s'] * 1e3:.2f} ms"),
        ("HVP / gradient", _ratio_text(r["hvp_over_grad"], target)),
        ("cached HVP / gradient", _ratio_text(r["cached_hvp_over_grad"], target)),
    ]
    rows += [(f"measure: {k} (incl. compile)", f"{s:.2f} s") for k, s in r["measure_seconds"].items()]
    m = r["measure"]
    rows += [
        ("loss", f"{m['loss']:.4f}"),
        ("lambda_max", f"{m['lambda_max']:.4f}"),
        ("trace", f"{m['hessian_trace']:.2f} +- {m['hessian_trace_stderr']:.2f}"),
    ]
    rows += [(f"eps-sharpness {k}", f"{val:.4g}") for k, val in m["epsilon_sharpness"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {val}" for k, val in rows)
