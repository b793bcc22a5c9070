"""Keskar et al. 2017: small batch (256) vs large batch (10 % of the training set), sharp minima.

    python -m lbbench.sweep experiments/keskar.py [--quick]

Time on a 2-core CPU: quick ≈ 20 s (tiny BN-MLP, 1 epoch, 2 runs, sharpness off, plus one
interpolation; the quick grid drops C1 and the sharpness measurement to stay fast); full ≈ 45 min:
F1 5 seeds × 20 epochs (~7 s/epoch at B=256), C1 8 epochs with 2 SB seeds and 1 LB seed (see
FULL_PLAN: ~35 s/epoch at B=256, ~180 s/epoch at B=6000 on XLA:CPU); every run is followed by
λ_max, trace, ε-sharpness and the spectral density. Measured: about 85 min in all.

Adam (lr 1e-3) for the same number of epochs at both batch sizes, F1 (5×512 MLP with BN) and the C1
convnet. The end-of-run measurements are Keskar's ε-sharpness (Metric 2.1) in the full
space and a random subspace, λ_max and the Hessian trace. `analyze` runs the 1-D interpolation
θ(α) = α·θ_LB + (1 − α)·θ_SB (Fig. 3) between the seed-0 SB and LB runs of each model and saves it
as interpolation_<model>.json/.png in the sweep directory.
"""

import json
import os

import numpy as np

from lbbench.config import Config
from lbbench.report.curvature_figures import interpolation_figure
from lbbench.sweep import env_dataset
from lbbench.training.interpolate import interpolate

NAME = "keskar"
LB_BATCH = {"mnist1d": 6000, "mnist": 6000, "fashion_mnist": 6000, "cifar10": 5000, "cifar100": 5000}


def _models(quick: bool):
    return ("tiny_bn_mlp",) if quick else ("f1", "c1")


def base_config(quick: bool) -> Config:
    cfg = Config(
        dataset=env_dataset(),
        optimizer="adam",
        learning_rate=1e-3,
        lr_scaling="none",
        schedule="constant",
        epochs=1 if quick else 20,
        sharpness=not quick,
        spectral_density=not quick,
    )
    return cfg.replace(noise_scale_groups=1) if quick else cfg


# Per model: seeds per arm and epochs of the full study. On XLA:CPU (2 cores) C1 trains at ~1,800
# examples/s at B=256 but only ~330 examples/s at B=6000 (about 25 min per 8-epoch run), so on a
# CPU C1 gets 2 SB seeds and 1 LB seed of 8 epochs; on an accelerator use {"sb": 5, "lb": 5, "epochs": 20}.
FULL_PLAN = {"f1": {"sb": 5, "lb": 5, "epochs": 20}, "c1": {"sb": 2, "lb": 1, "epochs": 8}}
QUICK_PLAN = {"sb": 1, "lb": 1, "epochs": 1}


def grid(quick: bool) -> list[dict]:
    lb = LB_BATCH.get(env_dataset(), 6000)
    points = []
    for m in _models(quick):
        plan = QUICK_PLAN if quick else FULL_PLAN[m]
        points += [
            {"model": m, "batch_size": b, "seed": s, "epochs": plan["epochs"], "run_name": f"{m}_{arm}_s{s}"}
            for arm, b in (("sb", 256), ("lb", lb))
            for s in range(plan[arm])
        ]
    return points


def _summary(results: dict, model: str) -> dict:
    out = {}
    for arm in ("sb", "lb"):
        runs = [r for k, r in results.items() if k.startswith(f"{model}_{arm}_") and r["status"] == "completed"]
        for key, get in (
            ("test_accuracy", lambda r: r["final"]["test_accuracy"]),
            ("generalization_gap", lambda r: r["final"]["generalization_gap"]),
            ("lambda_max", lambda r: (r.get("sharpness") or {}).get("lambda_max")),
        ):
            vals = [v for v in map(get, runs) if v is not None]
            out[f"{arm}_{key}"] = float(np.mean(vals)) if vals else None
    return out


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    """Interpolate seed-0 SB → LB for each model; summarise SB vs LB accuracy, gap and λ_max."""

    curves, summary = [], {}
    for m in _models(quick):
        summary[m] = _summary(results, m)
        sb, lb = results.get(f"{m}_sb_s0"), results.get(f"{m}_lb_s0")
        if not (sb and lb and sb["status"] == lb["status"] == "completed"):
            continue
        curve = interpolate(os.path.join(sweep_dir, f"{m}_sb_s0"), os.path.join(sweep_dir, f"{m}_lb_s0"))
        curves.append(curve)
        with open(os.path.join(sweep_dir, f"interpolation_{m}.json"), "w") as f:
            json.dump(curve, f, indent=1)
        interpolation_figure(curve).savefig(os.path.join(sweep_dir, f"interpolation_{m}.png"), dpi=110)
    return {"summary": summary, "interpolation": curves}
