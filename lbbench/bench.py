"""Benchmark (a script, not a test): train-step throughput and achieved FLOP/s vs the machine's matmul rate.

    python -m lbbench.bench [--batch_sizes=32,256,4096] [--model=mlp] [--json=bench.json]

For each batch size: compile time of one epoch (lax.scan of train steps), examples/s of a warm
epoch, FLOPs per step from XLA's cost analysis of the compiled step, and achieved GFLOP/s as a
percentage of a large float32 matmul measured in the same process (the practical peak).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from lbbench import parallel, steps, train
from lbbench.config import Config
from lbbench.data.dataset import Dataset


def define_flags(fv):
    flags.DEFINE_list("batch_sizes", ["32", "256", "4096"], "global batch sizes to measure", flag_values=fv)
    flags.DEFINE_string("model", "mlp", "model to measure", flag_values=fv)
    flags.DEFINE_string("optimizer", "adam", "optimizer", flag_values=fv)
    flags.DEFINE_integer("examples", 60000, "synthetic training examples (MNIST-1D shaped)", flag_values=fv)
    flags.DEFINE_integer("noise_scale_groups", 4, "sub-batches per step (as in a default run)", flag_values=fv)
    flags.DEFINE_integer("matmul_n", 4096, "size of the square matmul measuring the peak", flag_values=fv)
    flags.DEFINE_integer("repeats", 3, "timed warm epochs per batch size (median reported)", flag_values=fv)
    flags.DEFINE_string("json", "", "also write the results here", flag_values=fv)


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Achieved GFLOP/s of an n×n float32 matmul (2n³ FLOPs), best of `repeats`."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def synthetic_dataset(n: int) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset("bench", rng.normal(size=(n, 40)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32),
                   rng.normal(size=(1000, 40)).astype(np.float32), rng.integers(0, 10, 1000).astype(np.int32), 10)


def step_flops(trainer: train.Trainer, state) -> float:
    """FLOPs of one train step, from XLA's cost analysis of the compiled step."""
    step = steps.make_train_step(trainer.model, trainer.tx, trainer.schedule, trainer.spec)
    b = trainer.cfg.batch_size
    compiled = jax.jit(step).lower(state, trainer.ds.x_train[:b], trainer.ds.y_train[:b],
                                   jax.random.PRNGKey(0)).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", float("nan")))


def measure_batch(cfg: Config, ds: Dataset, repeats: int) -> dict:
    mesh = parallel.make_mesh()
    trainer = train.Trainer(cfg, ds, mesh)
    state = jax.device_put(train.init_state(cfg, trainer.model, trainer.tx, ds, jax.random.PRNGKey(0)),
                           parallel.replicated(mesh))
    flops = step_flops(trainer, state)
    compile_s = trainer.compile(state, jax.random.PRNGKey(1))
    state, _ = trainer.epoch_fn(state, jax.random.PRNGKey(2))  # first call: allocation, warm caches
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        state, m = trainer.epoch_fn(state, jax.random.PRNGKey(3 + i))
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t0)
    epoch_s = float(np.median(times))
    n_steps = trainer.steps_per_epoch
    return {"batch_size": cfg.batch_size, "steps_per_epoch": n_steps, "compile_s": compile_s,
            "epoch_s": epoch_s, "examples_per_s": n_steps * cfg.batch_size / epoch_s,
            "flops_per_step": flops, "gflops_per_s": flops * n_steps / epoch_s / 1e9}


def main(argv):
    fv = flags.FlagValues()
    define_flags(fv)
    if any(a in ("-h", "--help") for a in argv[1:]):
        print("usage: lbbench-bench [--batch_sizes=32,256,4096] [--model=mlp] [--json=FILE]   "
              "(or: python -m lbbench.bench ...)\n\n" + __doc__.split("\n\n")[0] + "\n\nflags:\n" +
              "\n".join(f"  --{n}={fv[n].default_as_str.strip(chr(39))}".ljust(34) + fv[n].help for n in fv))
        return 0
    try:
        fv(argv)
    except flags.Error as e:
        print(f"lbbench.bench: error: {e}", file=sys.stderr)
        return 2
    ds = synthetic_dataset(fv.examples)
    peak = matmul_peak(fv.matmul_n)
    rows = []
    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; matmul peak {peak:.1f} GFLOP/s "
          f"({fv.matmul_n}x{fv.matmul_n} float32)")
    print(f"{'batch':>6} {'compile s':>10} {'epoch s':>8} {'examples/s':>11} {'GFLOP/step':>11} "
          f"{'GFLOP/s':>8} {'% peak':>7}")
    for b in (int(x) for x in fv.batch_sizes):
        cfg = Config(model=fv.model, optimizer=fv.optimizer, batch_size=b, sharpness=False,
                     noise_scale_groups=fv.noise_scale_groups if b % fv.noise_scale_groups == 0 else 1)
        row = measure_batch(cfg, ds, fv.repeats)
        row["percent_of_peak"] = 100 * row["gflops_per_s"] / peak
        rows.append(row)
        print(f"{b:>6} {row['compile_s']:>10.2f} {row['epoch_s']:>8.3f} {row['examples_per_s']:>11,.0f} "
              f"{row['flops_per_step'] / 1e9:>11.4f} {row['gflops_per_s']:>8.2f} {row['percent_of_peak']:>6.1f}%")
    out = {"matmul_peak_gflops": peak, "model": fv.model, "optimizer": fv.optimizer, "rows": rows,
           "environment": train.environment()}
    if fv.json:
        with open(fv.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
