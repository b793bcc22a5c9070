"""Shallue et al. 2019: steps to reach a target test accuracy vs batch size, with the noise scale.

    python -m lbbench.sweep experiments/shallue.py [--quick]

Time on a 2-core CPU: quick ≈ 20 s (tiny MLP, 2 epochs, B 256/1024, 2 learning rates, 4 runs);
full ≈ 40 min (MLP, B = 32 … 8192 × 5 learning rates = 45 runs, 10-40 epochs each; the B=32
runs, ~12 s/epoch, are a third of it).

Momentum SGD with constant LR; the LR is tuned per batch size over a small grid (base lr × √(B/256),
base ∈ {0.025 … 0.4}). Each run's history (step, test accuracy per epoch) gives the first step at
which the test accuracy reaches TARGET (epoch granularity). `analyze` keeps, per batch size, the best
trial (fewest steps), labels each doubling of B as perfect scaling (steps roughly halve),
diminishing returns, or maximal data parallelism (steps no longer drop), and overlays the gradient
noise scale B_simple (McCandlish et al. 2018) measured during training, averaged over all runs:
the batch size around which the curve should bend.
"""

import numpy as np

from lbbench.config import Config
from lbbench.sweep import env_dataset

NAME = "shallue"
TARGET = {"mnist1d": 0.7, "mnist": 0.97, "fashion_mnist": 0.85, "cifar10": 0.7}
QUICK_TARGET = 0.15
PERFECT, MAXIMAL = 1.6, 1.15  # steps(B) / steps(2B) above PERFECT: ~halving; below MAXIMAL: flat


def _epochs(b: int, quick: bool) -> int:
    return 2 if quick else {8192: 40, 4096: 30, 2048: 20, 1024: 15}.get(b, 10)


def target(quick: bool) -> float:
    return QUICK_TARGET if quick else TARGET.get(env_dataset(), 0.7)


def base_config(quick: bool) -> Config:
    return Config(dataset=env_dataset(), model="tiny_mlp" if quick else "mlp", optimizer="momentum",
                  momentum=0.9, lr_scaling="sqrt", base_batch_size=256, schedule="constant",
                  sharpness=False, save_params=False)


def grid(quick: bool) -> list[dict]:
    batches = (256, 1024) if quick else tuple(2 ** k for k in range(5, 14))
    lrs = (0.1, 0.4) if quick else (0.025, 0.05, 0.1, 0.2, 0.4)
    return [{"batch_size": b, "learning_rate": lr, "epochs": _epochs(b, quick), "seed": 0,
             "run_name": f"b{b}_lr{lr:g}"} for b in batches for lr in lrs]


def steps_to_target(result: dict, goal: float):
    """First recorded step at which test accuracy ≥ goal (None if never, or the run diverged)."""
    if result["status"] != "completed":
        return None
    h = result["history"]
    return next((int(s) for s, a in zip(h["step"], h["test_accuracy"]) if a is not None and a >= goal), None)


def regions(best: list[dict]) -> list[dict]:
    """Label each interval [B, B'] of consecutive batch sizes by the step ratio per doubling of B:
    ~2 = perfect scaling, ~1 = maximal data parallelism, in between = diminishing returns."""
    out = []
    pts = [b for b in best if b["steps"] is not None]
    for lo, hi in zip(pts, pts[1:]):
        doublings = np.log2(hi["batch_size"] / lo["batch_size"])
        ratio = float((lo["steps"] / hi["steps"]) ** (1.0 / doublings))  # step ratio per doubling
        name = ("perfect scaling" if ratio >= PERFECT else "maximal data parallelism" if ratio <= MAXIMAL
                else "diminishing returns")
        out.append({"from": lo["batch_size"], "to": hi["batch_size"], "ratio": ratio, "region": name})
    return out


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    goal = target(quick)
    by_batch: dict = {}
    for name, r in results.items():
        by_batch.setdefault(r["config"]["batch_size"], []).append((steps_to_target(r, goal), name, r))
    best = []
    for b in sorted(by_batch):
        hits = sorted((s, n, r) for s, n, r in by_batch[b] if s is not None)
        s, n, r = hits[0] if hits else (None, None, None)
        best.append({"batch_size": b, "steps": s, "run": n,
                     "learning_rate": r["config"]["learning_rate"] if r else None})
    noise = [r["noise_scale"]["b_simple"] for r in results.values()
             if r["status"] == "completed" and (r.get("noise_scale") or {}).get("b_simple")]
    stt = {"target": goal, "best": best, "regions": regions(best),
           "noise_scale_b_simple": float(np.mean(noise)) if noise else None}
    return {"summary": stt, "steps_to_target": stt}
