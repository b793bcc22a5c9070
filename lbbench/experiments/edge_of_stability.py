"""Edge of stability on MNIST-1D: full-batch GD (cross-entropy and MSE), SGD and Adam against their
stability thresholds.

    python -m lbbench.sweep edge_of_stability [--quick]

Three claims, each read off the curvature tracker (lbbench.instruments.curvature_tracker) every
EVERY steps, and analysed by lbbench.study.edge_of_stability (statistics, verdicts) and
lbbench.report.edge_of_stability (eos.md, figures):

* Full-batch GD (Cohen et al. 2021, ICLR, "Gradient descent on neural networks typically occurs at
  the edge of stability", Sec. 3): lambda_max of the training loss rises (progressive sharpening)
  to 2/eta and then hovers there. Their experiments mostly use the squared loss on one-hot targets
  (`loss="mse"`, lbbench.curvature.objectives), so GD runs twice: on cross-entropy (GD_LRS) and on
  MSE (MSE_GD_LRS), same subset, model and measurement.
* SGD (Andreyev & Beneventano 2024, "Edge of stochastic stability", Def. 1): the batch sharpness
  E_B[g_B^T H_B g_B / |g_B|^2] rises to 2/eta, while lambda_max of the full-data loss stays below
  it and falls as the batch size B shrinks. Several B at one eta; the cross-entropy GD run at the
  same eta is the B = SUBSET end of that family.
* Adam (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", Sec. 3): the
  preconditioned sharpness lambda_max(P^-1 H) rises to (2 + 2 beta1)/(eta (1 - beta1)) = 38/eta
  (beta1 = 0.9). Full batch.

Setup: the default MLP (2 x 256, ReLU, no BatchNorm) trained with plain GD/SGD ("sgd": no
momentum) and a constant learning rate on a fixed, seeded subset of SUBSET training examples
(Config.train_subset; `batch_size = SUBSET` is full-batch GD, one step per epoch). SGD and Adam
train the mean cross-entropy, whose sharpness also sharpens progressively but eventually falls as
the margins grow (Cohen et al. 2021, App. C).

How the learning rates were chosen (probe runs; their values are in BUILD_NOTES, "Edge of
stability" and "Issue 23: edge of stability under MSE"). Cross-entropy: 2/eta above lambda_max at
initialisation and below the level progressive sharpening reaches at a small step, so GD must
sharpen up to 2/eta. MSE has a different curvature scale: lambda_max at initialisation is far
larger than under cross-entropy (the squared loss's Hessian in the logits is the identity, not the
softmax covariance), so that rule would need an eta whose progressive sharpening is too slow to
reach 2/eta within any affordable run. Instead, probes at several eta showed that at any eta with
2/eta below the initial lambda_max the first steps catapult lambda_max far below 2/eta (Lewkowycz
et al. 2020), after which progressive sharpening brings it back up; MSE_GD_LRS are the rates at which
it reaches 2/eta within the first half of MSE_STEPS, below the smallest probed rate that diverged.
So on MSE, too, GD has to sharpen its way to 2/eta. MSE runs measure every MSE_EVERY steps rather
than EVERY: they are three times as long, and each measurement costs many train steps.

What lambda_max is measured on: `sharpness_examples = SUBSET`. The tracker measures on
`run_info.sharpness_subset(ds, n)` of the dataset the trainer holds, which is already the training
subset (train.py loads `data.load(...).subset(train_subset)`); with n equal to the subset size that
is a permutation of the whole subset, sorted back, i.e. exactly the training set of the run. So
lambda_max below is the top Hessian eigenvalue of the full-batch training loss GD descends (on MSE,
of the MSE: every curvature tool takes Config.loss), and, for SGD, of the full-data loss over the
same examples; batch sharpness is averaged over the SUBSET / B consecutive minibatches of that set.
Lanczos is warm-started from the previous measurement's top vector with `track_curvature_iters`
steps.

analyze() reports, per arm, statistics over the measurements in the second half of each run
(steps > T/2): for GD (both losses) the median lambda_max/(2/eta), its range, the fraction within
+-BAND and a verdict (lbbench.study.edge_of_stability); for SGD the median batch-sharpness ratio and
median lambda_max per B; for Adam the median preconditioned ratio (plus its peak). Measured
results and wall times: BUILD_NOTES. Quick mode (tiny_mlp, a few hundred examples, tens of steps)
only checks that every arm runs and the files are written.
"""

from __future__ import annotations

from lbbench.config import Config
from lbbench.report import edge_of_stability as report
from lbbench.study import edge_of_stability as study
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
# MSE (Cohen et al. 2021): after the first steps' catapult, sharpening takes over a thousand steps to
# reach 2/eta at 0.2 (probes, BUILD_NOTES); 2/eta = 10, 8, 6.7; 0.2 and 0.25 are also cross-entropy arms
MSE_GD_LRS = (0.2, 0.25, 0.3)
MSE_STEPS = 3000
MSE_EVERY = 50

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
    "mse_gd_lrs": (0.05, 0.1, 0.2),
    "mse_steps": 30,
    "mse_every": 10,
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
        "mse_gd_lrs": MSE_GD_LRS,
        "mse_steps": MSE_STEPS,
        "mse_every": MSE_EVERY,
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
            "optimizer": "sgd",
            "loss": "mse",
            "batch_size": n,
            "learning_rate": lr,
            "epochs": p["mse_steps"],
            "track_curvature_every": p["mse_every"],
            "run_name": f"gd_mse_lr{_lr_tag(lr)}",
        }
        for lr in p["mse_gd_lrs"]
    ]
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


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    """Second-half statistics and verdicts per arm (study.summarize); eos.md, the figures and
    eos_summary.json (report.write); analysis.json gets the summary, its conclusions included."""
    summary = study.summarize(results)
    report.write(sweep_dir, results, summary)
    falls = summary["lambda_max_falls_as_batch_shrinks"]
    return {
        "summary": {
            **{k: v for k, v in summary.items() if k != "lambda_max_falls_as_batch_shrinks"},
            **{f"lambda_max_falls_as_B_shrinks_lr{k}": v for k, v in falls.items()},
        }
    }
