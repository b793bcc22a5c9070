"""Edge of stability on MNIST-1D: full-batch GD, SGD and Adam against their stability thresholds.

    python -m lbbench.sweep experiments/edge_of_stability.py [--quick]

Three claims, each read off the curvature tracker (lbbench.instruments.curvature) every EVERY steps:

* Full-batch GD (Cohen et al. 2021, ICLR, "Gradient descent on neural networks typically occurs at
  the edge of stability", Sec. 3): lambda_max of the training loss rises (progressive sharpening)
  to 2/eta and then hovers there. Three learning rates with 2/eta above the sharpness at
  initialisation (~6 for this MLP on this subset) and below the level progressive sharpening
  reaches at a small step (~16.6 at eta = 0.08, where it plateaus without reaching 2/eta = 25).
* SGD (Andreyev & Beneventano 2024, "Edge of stochastic stability", Def. 1): the batch sharpness
  E_B[g_B^T H_B g_B / |g_B|^2] rises to 2/eta, while lambda_max of the full-data loss stays below
  it and falls as the batch size B shrinks. Several B at one eta; the full-batch GD run at the same
  eta is the B = SUBSET end of that family.
* Adam (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", Sec. 3): the
  preconditioned sharpness lambda_max(P^-1 H) rises to (2 + 2 beta1)/(eta (1 - beta1)) = 38/eta
  (beta1 = 0.9). Full batch.

Setup: the default MLP (2 x 256, ReLU, no BatchNorm) trained with plain GD/SGD ("sgd": no
momentum) and a constant learning rate on a fixed, seeded subset of SUBSET training examples
(Config.train_subset; `batch_size = SUBSET` is full-batch GD, one step per epoch). The loss is the
mean cross-entropy, not the MSE Cohen et al. (2021) mostly use: cross-entropy's sharpness also
sharpens progressively but eventually falls as the margins grow (their App. C). The GD runs stop
while the loss is still 0.07-0.36; the SGD runs at B >= 160 and both Adam runs fit the subset
(loss <= 0.02) and their curvature falls with the loss: the tables give first-half and peak values
beside the second-half statistics.

What lambda_max is measured on: `sharpness_examples = SUBSET`. The tracker measures on
`run_info.sharpness_subset(ds, n)` of the dataset the trainer holds, which is already the training
subset (train.py loads `data.load(...).subset(train_subset)`); with n equal to the subset size that
is a permutation of the whole subset, sorted back, i.e. exactly the training set of the run. So
lambda_max below is the top Hessian eigenvalue of the full-batch training loss GD descends (and,
for SGD, of the full-data loss over the same 4000 examples; batch sharpness is averaged over the
SUBSET / B consecutive minibatches of that set). Lanczos is warm-started from the previous
measurement's top vector with `track_curvature_iters` steps.

analyze() reports, per arm, statistics over the measurements in the second half of each run
(steps > T/2): for GD the fraction of lambda_max/(2/eta) within +-BAND and its median; for SGD the
median batch-sharpness ratio and median lambda_max per B; for Adam the median preconditioned ratio
(plus its peak). Measured (BUILD_NOTES, "Edge of stability"): GD's lambda_max reaches 2/eta and then
sits 1.2-1.4x above it, so it did not stay within +-20 % at any of the three learning rates.

Time on a 2-core CPU: 8 runs in 8 min wall, sharing the CPU with another study (BUILD_NOTES,
"Edge of stability"). Quick mode: tiny_mlp on 256 examples, 30 steps, about 45 s for its 6 runs.
"""

from __future__ import annotations

import os

import numpy as np

from lbbench.config import Config
from lbbench.curvature.thresholds import adam_threshold
from lbbench.report import figures
from lbbench.runs import atomic
from lbbench.sweep import env_dataset

NAME = "edge_of_stability"

SUBSET = 4000
STEPS = 1000  # per GD run (1000 epochs of one full-batch step)
SGD_STEPS = 2000  # per SGD run: batch sharpness at B = 32 is still rising at step 1000 (probe)
EVERY = 20  # curvature tracker interval in steps
ITERS = 10  # warm-started Lanczos steps per measurement
GD_LRS = (0.13, 0.2, 0.25)  # 2/eta = 15.4, 10, 8; sharpness at init ~6.1 (measured, BUILD_NOTES)
SGD_LR = 0.2
SGD_BATCHES = (32, 160, 800)  # divide SUBSET: no example dropped per epoch
ADAM_LRS = (1e-3, 3e-3)  # full batch; 38/eta = 38000, 12667
ADAM_STEPS = 400  # Adam fits the 4000 examples (loss ~1e-3 by step 600 at 2e-3): the edge is early
ADAM_EVERY = 10
BAND = 0.2  # "within +-20 % of the threshold"

QUICK = {
    "subset": 256,
    "steps": 30,
    "sgd_steps": 30,
    "every": 10,
    "iters": 5,
    "gd_lrs": (0.1, 0.5, 1.0),
    "sgd_batches": (64,),
    "adam_lrs": (3e-3,),
    "adam_steps": 30,
    "adam_every": 10,
}


def _plan(quick: bool) -> dict:
    if quick:
        return {**QUICK, "sgd_lr": 0.5}
    return {
        "subset": SUBSET,
        "steps": STEPS,
        "sgd_steps": SGD_STEPS,
        "every": EVERY,
        "iters": ITERS,
        "gd_lrs": GD_LRS,
        "sgd_batches": SGD_BATCHES,
        "adam_lrs": ADAM_LRS,
        "sgd_lr": SGD_LR,
        "adam_steps": ADAM_STEPS,
        "adam_every": ADAM_EVERY,
    }


def base_config(quick: bool) -> Config:
    p = _plan(quick)
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        optimizer="sgd",
        schedule="constant",
        lr_scaling="none",
        train_subset=p["subset"],
        batch_size=p["subset"],
        epochs=p["steps"],
        sharpness=False,
        noise_scale_groups=1,
        save_params=False,
        train_eval_examples=min(1000, p["subset"]),
        track_curvature_every=p["every"],
        track_curvature_iters=p["iters"],
        sharpness_examples=p["subset"],
    )


def _lr_tag(lr: float) -> str:
    return f"{lr:g}".replace(".", "p")


def grid(quick: bool) -> list[dict]:
    p = _plan(quick)
    n, steps = p["subset"], p["steps"]
    points = [
        {"optimizer": "sgd", "batch_size": n, "learning_rate": lr, "epochs": steps, "run_name": f"gd_lr{_lr_tag(lr)}"}
        for lr in p["gd_lrs"]
    ]
    for b in p["sgd_batches"]:
        if n % b:
            raise ValueError(f"SGD batch {b} does not divide the subset of {n}")
        points.append(
            {
                "optimizer": "sgd",
                "batch_size": b,
                "learning_rate": p["sgd_lr"],
                "epochs": max(1, p["sgd_steps"] * b // n),
                "run_name": f"sgd_b{b}_lr{_lr_tag(p['sgd_lr'])}",
            }
        )
    points += [
        {
            "optimizer": "adam",
            "batch_size": n,
            "learning_rate": lr,
            "epochs": p["adam_steps"],
            "track_curvature_every": p["adam_every"],
            "run_name": f"adam_lr{_lr_tag(lr)}",
        }
        for lr in p["adam_lrs"]
    ]
    return points


# ---------------------------------------------------------------------------- analysis


def arm_of(result: dict) -> str | None:
    """ "gd" (sgd at the full subset), "sgd" (smaller batches) or "adam"; None for anything else."""
    cfg = result.get("config", {})
    n = cfg.get("train_subset") or (result.get("dataset") or {}).get("num_train")
    if cfg.get("optimizer") == "adam":
        return "adam"
    if cfg.get("optimizer") == "sgd":
        return "gd" if n and cfg.get("batch_size", 0) >= n else "sgd"
    return None


def total_steps(result: dict) -> int:
    """Steps the run trained (timing.steps), else the last tracked step."""
    steps = (result.get("timing") or {}).get("steps")
    if steps:
        return int(steps)
    return int(max((result.get("curvature") or {}).get("step") or [0]))


def second_half(result: dict, key: str, first: bool = False) -> np.ndarray:
    """Values of curvature column `key` measured at steps > T/2 (T = total steps), None dropped;
    with first=True those at steps <= T/2 instead."""
    curv = result.get("curvature") or {}
    half = total_steps(result) / 2.0
    vals = [
        v
        for s, v in zip(curv.get("step") or [], curv.get(key) or [])
        if (s <= half if first else s > half) and v is not None
    ]
    return np.asarray(vals, np.float64)


def _median(a: np.ndarray) -> float | None:
    return float(np.median(a)) if a.size else None


def _within(a: np.ndarray, band: float = BAND) -> float | None:
    """Fraction of ratios in [1 - band, 1 + band]."""
    return float(np.mean(np.abs(a - 1.0) <= band)) if a.size else None


def _lr(result: dict) -> float:
    return float(result["config"]["learning_rate"])


def summarize(results: dict, band: float = BAND) -> dict:
    """Per-arm second-half statistics (see the module docstring); pure, no files."""
    by_arm: dict[str, list] = {"gd": [], "sgd": [], "adam": []}
    for name, r in sorted(results.items()):
        arm = arm_of(r)
        if arm:
            by_arm[arm].append((name, r))
    gd = []
    for name, r in sorted(by_arm["gd"], key=lambda t: _lr(t[1])):
        ratio = second_half(r, "lambda_max_ratio")
        within = _within(ratio, band)
        gd.append(
            {
                "run": name,
                "status": r.get("status"),
                "lr": _lr(r),
                "two_over_eta": 2.0 / _lr(r),
                "n_second_half": int(ratio.size),
                "frac_within_band": within,
                "median_ratio": _median(ratio),
                "min_ratio": float(ratio.min()) if ratio.size else None,
                "max_ratio": float(ratio.max()) if ratio.size else None,
                "median_lambda_max": _median(second_half(r, "lambda_max")),
                "median_batch_sharpness_ratio": _median(second_half(r, "batch_sharpness_ratio")),
                "stayed_within_band": bool(within == 1.0) if within is not None else None,
                "final_train_loss": (r.get("final") or {}).get("train_loss"),
            }
        )
    sgd_lrs = sorted({_lr(r) for _, r in by_arm["sgd"]})
    sgd = []
    family = by_arm["sgd"] + [(n, r) for n, r in by_arm["gd"] if _lr(r) in sgd_lrs]  # B = subset end
    for name, r in sorted(family, key=lambda t: (_lr(t[1]), t[1]["config"]["batch_size"])):
        sgd.append(
            {
                "run": name,
                "status": r.get("status"),
                "lr": _lr(r),
                "batch_size": int(r["config"]["batch_size"]),
                "n_second_half": int(second_half(r, "batch_sharpness_ratio").size),
                "median_batch_sharpness_ratio": _median(second_half(r, "batch_sharpness_ratio")),
                "frac_batch_sharpness_within_band": _within(second_half(r, "batch_sharpness_ratio"), band),
                "median_lambda_max": _median(second_half(r, "lambda_max")),
                "median_lambda_max_ratio": _median(second_half(r, "lambda_max_ratio")),
                # the first half too: at B >= 160 the loss nears zero in the second half (see notes)
                "first_half_median_batch_sharpness_ratio": _median(second_half(r, "batch_sharpness_ratio", first=True)),
                "first_half_median_lambda_max": _median(second_half(r, "lambda_max", first=True)),
                "steps": total_steps(r),
                "final_train_loss": (r.get("final") or {}).get("train_loss"),
            }
        )
    adam = []
    for name, r in sorted(by_arm["adam"], key=lambda t: _lr(t[1])):
        ratio = second_half(r, "preconditioned_ratio")
        adam.append(
            {
                "run": name,
                "status": r.get("status"),
                "lr": _lr(r),
                "batch_size": int(r["config"]["batch_size"]),
                "threshold": adam_threshold(_lr(r), float(r["config"].get("momentum", 0.9))),
                "n_second_half": int(ratio.size),
                "median_preconditioned_ratio": _median(ratio),
                **_peak(r, "preconditioned_ratio"),
                "frac_within_band": _within(ratio, band),
                "median_lambda_max": _median(second_half(r, "lambda_max")),
                "final_train_loss": (r.get("final") or {}).get("train_loss"),
            }
        )
    summary = {"band": band, "gd": gd, "sgd": sgd, "adam": adam}
    summary["lambda_max_falls_as_batch_shrinks"] = _falls_as_batch_shrinks(sgd)
    return summary


def _peak(result: dict, key: str) -> dict:
    """The largest value of a curvature column over the whole run and the step it was measured at."""
    steps, vals = _series(result, key)
    if not vals:
        return {"peak_ratio": None, "peak_step": None}
    i = int(np.argmax(vals))
    return {"peak_ratio": float(vals[i]), "peak_step": int(steps[i])}


def _falls_as_batch_shrinks(rows: list[dict]) -> dict:
    """Per SGD learning rate: is the second-half median lambda_max non-decreasing in B?"""
    out = {}
    for lr in sorted({r["lr"] for r in rows}):
        pts = sorted(
            (r["batch_size"], r["median_lambda_max"])
            for r in rows
            if r["lr"] == lr and r["median_lambda_max"] is not None
        )  # second half
        if len(pts) >= 2:
            out[f"{lr:g}"] = bool(all(a[1] <= b[1] for a, b in zip(pts, pts[1:])))
    return out


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    return f"{v:.{digits}g}"


def markdown(summary: dict) -> str:
    """The eos.md tables."""
    pct = f"±{summary['band'] * 100:g} %"
    lines = [
        "# Edge of stability (MNIST-1D)",
        "",
        "Statistics are over the tracked measurements in the second half of each run (steps > T/2, "
        "T = the run's steps) unless a column says first half (steps <= T/2).",
        "",
        "## Full-batch GD: lambda_max vs 2/eta (Cohen et al. 2021)",
        "",
        f"| eta | 2/eta | measurements | within {pct} of 2/eta | median lambda_max/(2/eta) | min | max | "
        f"median lambda_max | median batch sharpness/(2/eta) | stayed within {pct} | final train loss | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["gd"]:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k])
                for k in (
                    "lr",
                    "two_over_eta",
                    "n_second_half",
                    "frac_within_band",
                    "median_ratio",
                    "min_ratio",
                    "max_ratio",
                    "median_lambda_max",
                    "median_batch_sharpness_ratio",
                    "stayed_within_band",
                    "final_train_loss",
                )
            )
            + f" | {r['status']} |"
        )
    lines += [
        "",
        "## SGD: batch sharpness vs 2/eta, lambda_max vs B (Andreyev & Beneventano 2024)",
        "",
        "| eta | B | steps | measurements | median batch sharpness/(2/eta) | batch sharpness within "
        f"{pct} | median lambda_max | median lambda_max/(2/eta) | first half: median batch sharpness/(2/eta) "
        "| first half: median lambda_max | final train loss | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["sgd"]:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k])
                for k in (
                    "lr",
                    "batch_size",
                    "steps",
                    "n_second_half",
                    "median_batch_sharpness_ratio",
                    "frac_batch_sharpness_within_band",
                    "median_lambda_max",
                    "median_lambda_max_ratio",
                    "first_half_median_batch_sharpness_ratio",
                    "first_half_median_lambda_max",
                    "final_train_loss",
                )
            )
            + f" | {r['status']} |"
        )
    falls = summary["lambda_max_falls_as_batch_shrinks"]
    if falls:
        lines += [
            "",
            "lambda_max (second-half median) falls monotonically as B shrinks: "
            + ", ".join(f"eta {k}: {_fmt(v)}" for k, v in falls.items()),
        ]
    lines += [
        "",
        "## Adam: preconditioned sharpness vs 38/eta (Cohen et al. 2022)",
        "",
        f"| eta | B | 38/eta | measurements | median lambda_max(P^-1 H)/(38/eta) | within {pct} | "
        "peak ratio (whole run) | at step | median lambda_max(H) | final train loss | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["adam"]:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k])
                for k in (
                    "lr",
                    "batch_size",
                    "threshold",
                    "n_second_half",
                    "median_preconditioned_ratio",
                    "frac_within_band",
                    "peak_ratio",
                    "peak_step",
                    "median_lambda_max",
                    "final_train_loss",
                )
            )
            + f" | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def _series(result: dict, key: str):
    curv = result.get("curvature") or {}
    pts = [(s, v) for s, v in zip(curv.get("step") or [], curv.get(key) or []) if v is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _b_label(result: dict) -> str:
    return f"B = {result['config']['batch_size']}" + (" (full batch)" if arm_of(result) == "gd" else "")


def ratio_panels(results: dict) -> list[dict]:
    """The four ratio panels (figures.ratio_figure): GD lambda_max/(2/eta); SGD batch sharpness/(2/eta)
    and lambda_max/(2/eta); Adam lambda_max(P^-1 H)/(38/eta); each with T/2 of its runs' lengths."""
    specs = [
        ("gd", "lambda_max_ratio", "full-batch GD: λ_max / (2/η)", lambda r: f"η = {_lr(r):g}"),
        ("sgd+", "batch_sharpness_ratio", "SGD: batch sharpness / (2/η)", _b_label),
        ("sgd+", "lambda_max_ratio", "SGD: λ_max / (2/η)", _b_label),
        ("adam", "preconditioned_ratio", "Adam: λ_max(P⁻¹H) / (38/η)", lambda r: f"η = {_lr(r):g}"),
    ]
    sgd_lrs = {_lr(r) for r in results.values() if arm_of(r) == "sgd"}
    panels = []
    for arm, key, title, label in specs:
        if arm == "sgd+":
            runs = [r for r in results.values() if arm_of(r) == "sgd" or (arm_of(r) == "gd" and _lr(r) in sgd_lrs)]
            runs.sort(key=lambda r: r["config"]["batch_size"])
        else:
            runs = sorted((r for r in results.values() if arm_of(r) == arm), key=_lr)
        panels.append(
            {
                "title": title,
                "halves": sorted({total_steps(r) / 2.0 for r in runs}),
                "curves": [(label(r), *_series(r, key)) for r in runs],
            }
        )
    return panels


def gd_curves(results: dict) -> list[dict]:
    """Per GD run (figures.gd_figure): its label, train-loss history, lambda_max series and 2/eta."""
    runs = sorted((r for r in results.values() if arm_of(r) == "gd"), key=_lr)
    return [
        {
            "label": f"η = {_lr(r):g}",
            "loss": ((r.get("history") or {}).get("step") or [], (r.get("history") or {}).get("train_loss") or []),
            "lambda_max": _series(r, "lambda_max"),
            "threshold": 2.0 / _lr(r),
            "eval_examples": r["config"].get("train_eval_examples"),
        }
        for r in runs
    ]


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    """Second-half statistics per arm (summarize), eos.md, eos_ratios.png and eos_gd.png."""
    summary = summarize(results)
    atomic.write_text(os.path.join(sweep_dir, "eos.md"), markdown(summary))
    figures.save(figures.ratio_figure(ratio_panels(results), BAND), os.path.join(sweep_dir, "eos_ratios.png"))
    figures.save(figures.gd_figure(gd_curves(results)), os.path.join(sweep_dir, "eos_gd.png"))
    atomic.write_json(os.path.join(sweep_dir, "eos_summary.json"), summary)
    return {
        "summary": {
            "gd": summary["gd"],
            "sgd": summary["sgd"],
            "adam": summary["adam"],
            "band": summary["band"],
            **{
                f"lambda_max_falls_as_B_shrinks_lr{k}": v
                for k, v in summary["lambda_max_falls_as_batch_shrinks"].items()
            },
        }
    }
