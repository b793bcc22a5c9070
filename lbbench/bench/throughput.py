"""Benchmark (a script, not a test): throughput of vmapped trials vs sequential runs, noise-scale cost.

    lbbench-bench --what=throughput [--batch_sizes=32,256,4096] [--trials=1,4,8,16] [--json=bench.json]

Everything is measured in one process, one program after another, so the ratios share the
machine's state. Per batch size:
- trial-examples/s of N trials vmapped in one compiled epoch (learning rates differ, one seed, so the
  batch is gathered once and shared; and N = 8 with N different seeds, each its own data order),
  against N sequential runs (N × the epoch time of the one-trial program);
- the gradient-noise-scale cost: examples/s of a default run (4 sub-batches measured every
  `noise_scale_every` steps) and of a run measuring every step, relative to noise off;
- FLOPs of one train step (XLA cost analysis) and GFLOP/s vs an in-process float32 matmul.
Epoch time = median of `--repeats` warm epochs, after one untimed epoch.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.config import Config
from lbbench.data.dataset import Dataset
from lbbench.runs.provenance import environment
from lbbench.training import parallel
from lbbench.training import trainer as trainer_lib
from lbbench.training.state import init_state
from lbbench.training.step import make_train_step


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Achieved GFLOP/s of an n×n float32 matmul (2n³ FLOPs), best of `repeats`."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def synthetic_dataset(n: int) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(
        "bench",
        rng.normal(size=(n, 40)).astype(np.float32),
        rng.integers(0, 10, n).astype(np.int32),
        rng.normal(size=(1000, 40)).astype(np.float32),
        rng.integers(0, 10, 1000).astype(np.int32),
        10,
    )


def step_flops(trainer: trainer_lib.Trainer) -> float:
    """FLOPs of one (unmeasured) train step of one trial, from XLA's cost analysis of the compiled step."""
    state = init_state(trainer.cfg, trainer.model, trainer.ds, trainer.steps_per_epoch)
    step = functools.partial(make_train_step(trainer.model, trainer.tx, trainer.spec), measure=False)
    b = trainer.cfg.batch_size
    x, y = trainer.ds.x_train[:b], trainer.ds.y_train[:b]
    compiled = jax.jit(step).lower(state, x, y, jax.random.PRNGKey(0)).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", float("nan")))


def epoch_seconds(cfgs: list[Config], ds: Dataset, repeats: int) -> tuple[float, float, trainer_lib.Trainer]:
    """(median warm epoch seconds, compile seconds, trainer) of the group `cfgs` as one program."""
    trainer = trainer_lib.Trainer(cfgs, ds, parallel.make_mesh())
    state = trainer.init_state()
    compile_s = trainer.compile(state)
    state, m = trainer.epoch_fn(state, 0)  # first call: allocation, warm caches
    jax.block_until_ready((state, m))
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        state, m = trainer.epoch_fn(state, (i + 1) * trainer.steps_per_epoch)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), compile_s, trainer


def trial_configs(base: Config, n: int, distinct_seeds: bool) -> list[Config]:
    """n trials of `base` with log-spaced learning rates (and seeds 0..n-1 if `distinct_seeds`)."""
    lrs = base.learning_rate * np.logspace(-0.5, 0.5, n) if n > 1 else [base.learning_rate]
    return [
        base.replace(learning_rate=float(lr), seed=i if distinct_seeds else 0, run_name=f"t{i}")
        for i, lr in enumerate(lrs)
    ]


def bench_trials(base: Config, ds: Dataset, counts: list[int], repeats: int) -> list[dict]:
    examples = (ds.num_train // base.batch_size) * base.batch_size
    solo_s, _, _ = epoch_seconds([base], ds, repeats)
    rows = []
    variants = [(n, False) for n in counts if n > 1] + ([(8, True)] if 8 in counts else [])
    for n, distinct in variants:
        s, compile_s, _ = epoch_seconds(trial_configs(base, n, distinct), ds, repeats)
        rows.append(
            {
                "batch_size": base.batch_size,
                "trials": n,
                "data": "per-trial" if distinct else "shared",
                "epoch_s": s,
                "compile_s": compile_s,
                "trial_examples_per_s": n * examples / s,
                "sequential_s": n * solo_s,
                "sequential_trial_examples_per_s": examples / solo_s,
                "speedup": n * solo_s / s,
            }
        )
    return rows


def bench_noise(base: Config, ds: Dataset, repeats: int) -> dict:
    """examples/s with the noise scale off, at its default interval, and measured every step."""
    examples = (ds.num_train // base.batch_size) * base.batch_size
    out = {"batch_size": base.batch_size, "groups": base.noise_scale_groups, "every": base.noise_scale_every}
    variants = {
        "off": base.replace(noise_scale_groups=1),
        "default": base,
        "every_step": base.replace(noise_scale_every=1),
    }
    for name, cfg in variants.items():
        s, _, trainer = epoch_seconds([cfg], ds, repeats)
        out[f"{name}_examples_per_s"] = examples / s
    out["default_vs_off"] = out["default_examples_per_s"] / out["off_examples_per_s"]
    out["every_step_vs_off"] = out["every_step_examples_per_s"] / out["off_examples_per_s"]
    out["flops_per_step"] = step_flops(trainer)
    return out


def run(
    batch_sizes=(32, 256, 4096),
    trials=(1, 4, 8, 16),
    model: str = "mlp",
    optimizer: str = "adam",
    examples: int = 60000,
    matmul_n: int = 4096,
    repeats: int = 3,
    log=print,
) -> dict:
    """Every measurement of the module docstring, one program after another in this process."""
    ds = synthetic_dataset(examples)
    peak = matmul_peak(matmul_n)
    log(
        f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; matmul peak {peak:.1f} GFLOP/s "
        f"({matmul_n}x{matmul_n} float32); {model}, {optimizer}, {examples} examples"
    )
    noise_rows, trial_rows = [], []
    for b in batch_sizes:
        groups = 4 if b % 4 == 0 else 1
        base = Config(model=model, optimizer=optimizer, batch_size=b, sharpness=False, noise_scale_groups=groups)
        row = bench_noise(base, ds, repeats)
        row["gflops_per_s_off"] = row["flops_per_step"] * row["off_examples_per_s"] / b / 1e9
        row["percent_of_peak_off"] = 100 * row["gflops_per_s_off"] / peak
        noise_rows.append(row)
        log(
            f"B={b:>5} noise scale: off {row['off_examples_per_s']:>10,.0f} ex/s | default (every "
            f"{row['every']} steps) {row['default_examples_per_s']:>10,.0f} = {row['default_vs_off']:.3f}x | "
            f"every step {row['every_step_examples_per_s']:>10,.0f} = {row['every_step_vs_off']:.3f}x | "
            f"{row['gflops_per_s_off']:.1f} GFLOP/s ({row['percent_of_peak_off']:.1f}% of peak)"
        )
        for r in bench_trials(base, ds, list(trials), repeats):
            trial_rows.append(r)
            log(
                f"B={b:>5} {r['trials']:>2} trials ({r['data']:>9} data): {r['trial_examples_per_s']:>11,.0f} "
                f"trial-ex/s vs sequential {r['sequential_trial_examples_per_s']:>10,.0f} -> "
                f"speedup {r['speedup']:.2f}x (compile {r['compile_s']:.1f} s)"
            )
    return {
        "matmul_peak_gflops": peak,
        "model": model,
        "optimizer": optimizer,
        "noise_scale": noise_rows,
        "trials": trial_rows,
        "environment": environment(),
    }
