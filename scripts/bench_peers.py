"""Throughput of one warm MLP training epoch in lbbench, Keras 3 (JAX backend) and PyTorch (eager), side by side.

    scripts/bench_env.sh
    .bench-venv/bin/python scripts/bench_peers.py [--batch_sizes 32,256,4096] [--rounds 2] [--examples 60000]
        [--epochs 3] [--torch_threads 2] [--json out.json]

Why: to place lbbench's training loop (one compiled epoch, gradient noise scale measured by default) against
what the same model costs in the frameworks people would otherwise use. Keras and PyTorch live only in the
separate .bench-venv/ made by bench_env.sh; they are never lbbench dependencies.

Same work everywhere: MLP 40 -> 256 -> 256 -> 10 (ReLU, logits), Adam(lr 1e-3), softmax cross-entropy,
lbbench's seeded synthetic MNIST-1D-shaped data (`synthetic_dataset`), shuffled every epoch, the last partial
batch dropped (lbbench drops it; Keras is given the first (N // B) * B examples, PyTorch stops before it), all
on the CPU (the venv's jax is PyPI's CPU build; torch tensors are never moved to a GPU). Measured per framework:
- lbbench: `epoch_seconds` (median of warm epochs after compilation and one untimed epoch), default Config
  (noise scale on) and with noise_scale_groups=1 (off);
- Keras: `model.fit(..., epochs=1)` timed per call after one untimed warm-up call (which compiles);
- PyTorch: a loop over `torch.randperm` batches of in-memory tensors after one untimed warm-up epoch.
Each measurement runs in its own fresh interpreter (KERAS_BACKEND must be set before keras is imported, and
the frameworks must not share a process's threads); rounds interleave the frameworks, so slow drifts of the
machine hit all of them. Also reports the float32 matmul peak once and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

COLUMNS = [("lbbench", "default"), ("lbbench", "noise_off"), ("keras", "jax"), ("torch", "eager")]
RATIOS = [
    ("lbbench default / Keras", ("lbbench", "default"), ("keras", "jax")),
    ("lbbench default / PyTorch", ("lbbench", "default"), ("torch", "eager")),
    ("lbbench noise-off / Keras", ("lbbench", "noise_off"), ("keras", "jax")),
    ("noise-on / noise-off", ("lbbench", "default"), ("lbbench", "noise_off")),
]


def versions(*names: str) -> dict:
    return {n: metadata.version(n) for n in names}


def timed_epochs(epoch_fn, epochs: int) -> tuple[list[float], float]:
    """(seconds of each of `epochs` timed calls of epoch_fn, seconds of the untimed warm-up call before them,
    which includes any compilation)."""
    t0 = time.perf_counter()
    epoch_fn()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch_fn()
        times.append(time.perf_counter() - t0)
    return times, warmup_s


def run_lbbench(variant: str, b: int, x, y, epochs: int) -> dict:
    from lbbench.bench.throughput import epoch_seconds, synthetic_dataset
    from lbbench.config import Config

    cfg = Config(model="mlp", optimizer="adam", batch_size=b, sharpness=False)
    if variant == "noise_off":
        cfg = cfg.replace(noise_scale_groups=1)
    ds = synthetic_dataset(len(x))
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)
    median_s, compile_s, _ = epoch_seconds([cfg], ds, epochs)
    # epoch_seconds returns only the median, so there is no per-epoch list here
    return {"epoch_s": None, "median_s": median_s, "compile_s": compile_s, "versions": versions("lbbench", "jax")}


def run_keras(b: int, x, y, epochs: int) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    n = (len(x) // b) * b
    times, warmup_s = timed_epochs(
        lambda: model.fit(x[:n], y[:n], batch_size=b, epochs=1, shuffle=True, verbose=0), epochs
    )
    return {"epoch_s": times, "warmup_s": warmup_s, "versions": versions("keras", "jax")}


def run_torch(b: int, x, y, epochs: int, threads: int) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    model = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(len(xt))
        for i in range(len(xt) // b):
            idx = perm[i * b : (i + 1) * b]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()

    times, warmup_s = timed_epochs(epoch, epochs)
    return {"epoch_s": times, "warmup_s": warmup_s, "versions": versions("torch")}


def run_matmul() -> dict:
    from lbbench.bench.throughput import matmul_peak

    return {"matmul_peak_gflops": matmul_peak(4096), "versions": versions("jax")}


def worker(args) -> dict:
    """One measurement in this (fresh) interpreter; the dict the driver gets back as one JSON line."""
    if args.worker == "matmul":
        return {"framework": "matmul", **run_matmul()}
    data = np.load(args.data)
    x, y = data["x"], data["y"]
    b = args.batch_size
    if args.worker == "lbbench":
        out = run_lbbench(args.variant, b, x, y, args.epochs)
    elif args.worker == "keras":
        out = run_keras(b, x, y, args.epochs)
    else:
        out = run_torch(b, x, y, args.epochs, args.torch_threads)
    if "median_s" not in out:
        out["median_s"] = statistics.median(out["epoch_s"])
    examples = (len(x) // b) * b
    return {
        "framework": args.worker,
        "variant": args.variant,
        "batch_size": b,
        "examples": examples,
        "examples_per_s": examples / out["median_s"],
        **out,
    }


def spawn(args, *extra: str) -> dict:
    """Runs this script as a worker in a fresh interpreter; its last stdout line, or an error record."""
    cmd = [sys.executable, __file__, "--epochs", str(args.epochs), "--torch_threads", str(args.torch_threads), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"FAILED: {' '.join(extra)}\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"error": proc.stderr[-3000:], "examples_per_s": float("nan")}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(b: int, rows: dict) -> str:
    """Markdown: examples/s per round and column, then the ratios (median over rounds of each round's ratio)."""
    rounds = len(rows[COLUMNS[0]])
    lines = [
        f"### batch size {b}",
        "",
        "| round | lbbench default | lbbench noise off | Keras (JAX) | PyTorch |",
        "|---|---|---|---|---|",
    ]
    for r in range(rounds):
        lines.append(f"| {r + 1} | " + " | ".join(f"{rows[c][r]['examples_per_s']:,.0f}" for c in COLUMNS) + " |")
    lines += ["", "| " + " | ".join(name for name, _, _ in RATIOS) + " |", "|---" * len(RATIOS) + "|"]
    medians = [
        statistics.median(rows[a][r]["examples_per_s"] / rows[c][r]["examples_per_s"] for r in range(rounds))
        for _, a, c in RATIOS
    ]
    lines.append("| " + " | ".join(f"{m:.2f}" for m in medians) + " |")
    return "\n".join(lines)


def drive(args) -> dict:
    from lbbench.bench.throughput import synthetic_dataset

    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    if load_before[0] > 1.5:
        print("WARNING: 1-minute load above 1.5: not a quiet machine, the numbers will be noisy")
    batch_sizes = [int(s) for s in args.batch_sizes.split(",")]
    ds = synthetic_dataset(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=ds.x_train, y=ds.y_train)
        peak = spawn(args, "--worker", "matmul")
        print(f"float32 matmul peak (4096x4096): {peak.get('matmul_peak_gflops', float('nan')):.1f} GFLOP/s")
        results = {b: {c: [] for c in COLUMNS} for b in batch_sizes}
        for r in range(args.rounds):
            for b in batch_sizes:
                for fw, variant in COLUMNS:
                    out = spawn(args, "--worker", fw, "--variant", variant, "--batch_size", str(b), "--data", data)
                    out.update(round=r + 1, framework=fw, variant=variant, batch_size=b)
                    results[b][(fw, variant)].append(out)
                    print(f"round {r + 1} B={b} {fw} {variant}: {out['examples_per_s']:,.0f} examples/s", flush=True)
    for b in batch_sizes:
        print("\n" + table(b, results[b]))
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return {
        "args": vars(args),
        "load_before": load_before,
        "load_after": load_after,
        "matmul": peak,
        "runs": [row for b in batch_sizes for c in COLUMNS for row in results[b][c]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch_sizes", default="32,256,4096")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--examples", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=3, help="timed warm epochs per measurement (median reported)")
    p.add_argument("--torch_threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--json", default=None, help="write every measurement here")
    p.add_argument("--worker", choices=["lbbench", "keras", "torch", "matmul"], help=argparse.SUPPRESS)
    p.add_argument("--variant", default="", help=argparse.SUPPRESS)
    p.add_argument("--batch_size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    out = drive(args)
    if args.json:
        from lbbench.runs.atomic import write_json

        write_json(args.json, out)  # strict JSON: a failed measurement's NaN becomes null
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
