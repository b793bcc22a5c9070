"""Fabricated result.json dicts for the study-layer tests (no training), and their helpers."""

import math

from lbbench.sweep import experiment_file

N_TRAIN = 60000


def fake_result(
    batch,
    acc,
    *,
    seed=0,
    lr=0.1,
    status="completed",
    momentum=0.9,
    optimizer="momentum",
    noise=None,
    gap=0.02,
    lam=10.0,
    eps=5.0,
    b_simple=None,
    n_train=N_TRAIN,
    val=None,
    **cfg,
):
    """A result.json-shaped dict whose test accuracy per epoch is `acc` (a list) and whose validation
    accuracy is `val` (default: the same list)."""
    val = list(acc) if val is None else list(val)
    spe = n_train // batch
    n = len(acc)
    config = {
        "batch_size": batch,
        "learning_rate": lr,
        "momentum": momentum,
        "optimizer": optimizer,
        "seed": seed,
        "epochs": n,
        "run_name": "",
        "workdir": "w",
        **cfg,
    }
    return {
        "status": status,
        "config": config,
        "dataset": {"num_classes": 10, "num_train": n_train},
        "final": {"test_accuracy": acc[-1], "val_accuracy": val[-1], "generalization_gap": gap},
        "sharpness": {"lambda_max": lam, "epsilon_sharpness": {"full_0.001": eps, "full_0.0005": eps / 2}},
        "noise_scale": {"b_simple": b_simple},
        "history": {
            "epoch": list(range(1, n + 1)),
            "step": [spe * e for e in range(1, n + 1)],
            "test_accuracy": list(acc),
            "val_accuracy": val,
            "noise_b_simple": noise or [None] * n,
        },
    }


def model_curve(batch, epochs, s_min=300.0, b_crit=1000.0, target=0.7, a_max=0.9, scale=1.0, n_train=N_TRAIN):
    """Accuracy per epoch crossing `target` after S(B) = s_min (1 + b_crit / B) · scale steps."""
    spe = n_train // batch
    s_star = s_min * (1 + b_crit / batch) * scale
    tau = s_star / -math.log(1 - target / a_max)
    return [a_max * (1 - math.exp(-spe * e / tau)) for e in range(1, epochs + 1)]


def run_followups(m, results, fab, quick=False):
    """What the sweep runner does: call followup until it adds nothing new; returns the rounds."""
    rounds = 0
    while True:
        new = [p for p in m.followup(results, quick) if p["run_name"] not in results]
        if not new:
            return rounds
        names = [p["run_name"] for p in new]
        assert len(names) == len(set(names))
        for p in new:
            results[p["run_name"]] = fab(p)
        rounds += 1
        assert rounds < 10, "followup() keeps adding points"


def load_experiment(name):
    """The shipped experiment `name` as a module, through the sweep's own loader."""
    return experiment_file.load_experiment(name)
