"""Cost of one measurement of each training-time instrument: `lbbench-bench --what=curvature`.

Default MLP (40 -> 256 -> 256 -> 10), Adam, a 2048-example measurement subset, against one plain
jitted Adam train step at B = 256 (value_and_grad + optax update; lbbench's real step also vmaps
the noise-scale sub-batches, so it is somewhat dearer). Each instrument is timed cold (first call,
including compiles) and warm (median of --reps calls, each with a new `BoundLogits` around the
same apply_fn, as a training loop would pass, each followed by 20 train steps whose median is
the ratio's denominator; a fresh plain closure per call recompiles, which is
also timed). Timings are wall clock on whatever machine runs
this; report the load with them.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import optax

from lbbench.config import Config
from lbbench.curvature.batch_sharpness import batch_sharpness, split_batches
from lbbench.curvature.cockpit import gradient_tests
from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.lanczos import warm_lambda_max
from lbbench.curvature.loss import BoundLogits, make_loss
from lbbench.curvature.objectives import mean_loss
from lbbench.curvature.preconditioned import adam_preconditioner, find_adam_state, preconditioned_sharpness
from lbbench.curvature.step_quality import step_alpha
from lbbench.instruments import TopVectors, TrialView
from lbbench.instruments.curvature_tracker import CurvatureTracker
from lbbench.instruments.gradient_tests import GradientTests
from lbbench.models import build_model


def _train_step(model, tx):
    def loss(params, x, y):
        logits = model.apply({"params": params}, x, train=True)
        return mean_loss("cross_entropy", logits, y)

    @jax.jit
    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def _seconds(fn, reps: int) -> float:
    """Median wall time of fn() over `reps` calls; fn returns host values (blocking)."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _setup(num_examples: int, batch_size: int, seed: int):
    kx, ky, kinit = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(kx, (num_examples, 40))
    y = jax.random.randint(ky, (num_examples,), 0, 10)
    model = build_model("mlp", num_classes=10)
    params = model.init(kinit, x[:1], train=False)["params"]
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    step = _train_step(model, tx)
    opt_state = tx.init(params)
    for _ in range(3):  # real Adam steps, so nu and count are not trivial
        params, opt_state, _ = step(params, opt_state, x[:batch_size], y[:batch_size])
    return model, tx, step, params, opt_state, x, y


def run(num_examples: int = 2048, batch_size: int = 256, iters: int = 5, reps: int = 5, seed: int = 0) -> dict:
    model, tx, step, params, opt_state, x, y = _setup(num_examples, batch_size, seed)
    xb, yb = x[:batch_size], y[:batch_size]
    train_s = _seconds(lambda: step(params, opt_state, xb, yb), reps * 4)
    train_min_s = min(_seconds(lambda: step(params, opt_state, xb, yb), 1) for _ in range(reps * 20))

    def apply_fn(p, batch_stats, xs):  # built once per run: BoundLogits reuse compiled programs
        return model.apply({"params": p}, xs, train=False)

    def make_logits_fn():  # what a loop that rebuilds a closure per measurement would pass
        return lambda p, xs: model.apply({"params": p}, xs, train=False)

    logits_fn = BoundLogits(apply_fn, {})
    view = lambda i, fn=logits_fn: TrialView(  # noqa: E731
        trial=0,
        step=i,
        cfg=None,
        params=params,
        batch_stats={},
        opt_state=opt_state,
        learning_rate=1e-3,
        logits_fn=fn,
        measure_x=x,
        measure_y=y,
        batch_x=xb,
        batch_y=yb,
        key=jax.random.PRNGKey(i),
        update_fn=lambda g, s, p: tx.update(g, s, p)[0],
    )
    cfg = Config(
        batch_size=batch_size,
        sharpness_examples=num_examples,
        track_curvature_every=1,
        gradient_tests_every=1,
        track_curvature_iters=iters,
    )
    out = {
        "device": str(jax.devices()[0]),
        "num_examples": num_examples,
        "batch_size": batch_size,
        "iters": iters,
        "reps": reps,
        "train_step_s": train_s,
        "train_step_min_s": train_min_s,
        "instruments": {},
    }
    counter = iter(range(10**6))
    for inst in (CurvatureTracker.from_config(cfg), GradientTests.from_config(cfg, TopVectors())):
        run_once = lambda fn=logits_fn, inst=inst: dict(inst.run(view(next(counter), fn)))  # noqa: E731
        start = time.perf_counter()
        values = run_once()
        cold = time.perf_counter() - start
        warm, steps = [], []
        for _ in range(reps):  # interleaved with train steps, so load drift hits both alike
            warm.append(_seconds(lambda run=run_once: run(BoundLogits(apply_fn, {})), 1))
            steps.append(_seconds(lambda: step(params, opt_state, xb, yb), 20))
        fresh = _seconds(lambda run=run_once: run(make_logits_fn()), 2)
        out["instruments"][inst.name] = {
            "cold_s": cold,
            "warm_s": statistics.median(warm),
            "warm_min_s": min(warm),
            "fresh_closure_s": fresh,
            "warm_over_train_step": statistics.median(w / s for w, s in zip(warm, steps)),
            "min_over_min_train_step": min(warm) / min(steps),
            "estimate": inst.describe_cost(),
            "declared_cost_steps": inst.cost_steps(),
            "values": values,
        }
    out["components_s"] = _components(logits_fn, params, opt_state, x, y, xb, yb, iters, reps)
    return out


def _components(logits_fn, params, opt_state, x, y, xb, yb, iters: int, reps: int) -> dict:
    """Fastest warm seconds of each piece the two instruments are made of (compiled first)."""
    loss = make_loss(logits_fn, x, y, 512)
    matvec, n, dtype = flat_matvec(loss, params, 0)
    _, vec = warm_lambda_max(matvec, n, dtype, None, iters, jax.random.PRNGKey(0))
    adam = find_adam_state(opt_state)
    diag_p = adam_preconditioner(adam, 0.9, 0.999, 1e-8)
    xs, ys = split_batches(x, y, xb.shape[0])
    grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)
    pieces = {
        "linearize_and_one_cached_hvp": lambda: flat_matvec(loss, params, 1 << 30)[0](vec),
        "one_hvp (forward-over-reverse)": lambda: matvec(vec),
        "gradient_of_subset": lambda: _grad(loss, params),
        "warm_lambda_max": lambda: warm_lambda_max(matvec, n, dtype, vec, iters, jax.random.PRNGKey(1))[0],
        "preconditioned_sharpness": lambda: preconditioned_sharpness(
            matvec, diag_p, None, iters, jax.random.PRNGKey(2)
        )[0],
        "batch_sharpness": lambda: batch_sharpness(logits_fn, params, xs, ys)[0],
        "per_example_gradient_tests": lambda: gradient_tests(logits_fn, params, xb, yb),
        "step_alpha": lambda: step_alpha(logits_fn, params, grads, xb, yb),
    }
    for fn in pieces.values():
        jax.block_until_ready(fn())
    return {name: min(_seconds(fn, 1) for _ in range(reps)) for name, fn in pieces.items()}


@jax.jit
def _grad(loss, params):
    return jax.grad(loss)(params)


def format_table(r: dict) -> str:
    lines = [
        f"device {r['device']}; {r['num_examples']} measurement examples; B = {r['batch_size']};"
        f" {r['iters']} warm Lanczos steps",
        f"train step (Adam, B = {r['batch_size']}): median {r['train_step_s'] * 1e3:.2f} ms, "
        f"fastest {r['train_step_min_s'] * 1e3:.2f} ms",
    ]
    for name, m in r["instruments"].items():
        lines.append(
            f"{name}: warm {m['warm_s'] * 1e3:.1f} ms = {m['warm_over_train_step']:.1f} "
            f"train steps (fastest {m['warm_min_s'] * 1e3:.1f} ms = "
            f"{m['min_over_min_train_step']:.1f} fastest train steps); cold (compiles) {m['cold_s']:.2f} s; "
            "new logits_fn closure "
            f"{m['fresh_closure_s']:.2f} s; estimate {m['estimate']}"
        )
    for name, sec in r["components_s"].items():
        lines.append(f"  {name} (fastest): {sec * 1e3:.1f} ms = {sec / r['train_step_min_s']:.1f} fastest train steps")
    return "\n".join(lines)
