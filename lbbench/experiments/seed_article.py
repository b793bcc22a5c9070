"""The seed article's three runs on the random-label toy and on MNIST-1D, side by side.

    python -m lbbench.sweep experiments/seed_article.py [--quick]

Time on a 2-core CPU: quick ≈ 20 s (tiny MLP, 1 epoch, B 256/512, 4 runs); full ≈ 10 min (MLP, 20 epochs:
the B=32 MNIST-1D run dominates at ~10 s/epoch; the random toy runs take seconds; sharpness on).

Batch 32, batch 256 and batch 256 with 5 warmup epochs; Adam, lr 1e-3, 20 epochs, MLP. On the
`random` toy (1000 × 20 inputs, *random* binary labels) no generalization gap between batch sizes
can exist: test accuracy is 50 % in expectation for every run, so any "gap" there is noise. MNIST-1D
(or $LBBENCH_DATASET) has learnable labels, where the small-batch advantage can actually show.
"""

from lbbench.config import Config
from lbbench.sweep import env_dataset

NAME = "seed_article"
ARMS = (("b32", 32, "constant"), ("b256", 256, "constant"), ("b256_warmup", 256, "warmup"))


def base_config(quick: bool) -> Config:
    return Config(
        model="tiny_mlp" if quick else "mlp",
        optimizer="adam",
        learning_rate=1e-3,
        lr_scaling="none",
        epochs=1 if quick else 20,
        warmup_epochs=0.5 if quick else 5.0,
        sharpness=not quick,
        save_params=False,
        noise_scale_groups=1 if quick else 4,
    )


def grid(quick: bool) -> list[dict]:
    datasets = ("random", env_dataset())
    arms = (("b256", 256, "constant"), ("b512", 512, "constant")) if quick else ARMS
    return [
        {"dataset": d, "batch_size": b, "schedule": s, "seed": 0, "run_name": f"{d}_{name}"}
        for d in datasets
        for name, b, s in arms
    ]
