"""Stability thresholds: the sharpness at which an optimizer's step on a quadratic stops converging.

On f = a/2 x^2 an optimizer's iteration is linear; it is stable iff the roots of its characteristic
polynomial lie in the unit disc, and at the threshold one root is -1 (Cohen et al. 2021, ICLR,
"Gradient descent on neural networks typically occurs at the edge of stability", Sec. 2 and App. B
for momentum). Each function below is that root condition solved for a.
"""

from __future__ import annotations

GD_LIKE = ("sgd",)
HEAVY_BALL = ("momentum",)
NESTEROV = ("nesterov",)
ADAM_LIKE = ("adam", "adamw")  # lamb's trust ratio rescales the step per layer: no closed form


def gd_threshold(lr: float) -> float:
    """2/eta: x <- x - eta a x has factor 1 - eta a, which is -1 at a = 2/eta (Cohen et al. 2021)."""
    return 2.0 / lr


def heavy_ball_threshold(lr: float, momentum: float) -> float:
    """(2 + 2 beta)/eta for v <- beta v + g, x <- x - eta v (optax.sgd momentum; Cohen et al. 2021
    App. B): the characteristic polynomial z^2 - (1 + beta - eta a) z + beta has z = -1 there."""
    return (2.0 + 2.0 * momentum) / lr


def nesterov_threshold(lr: float, momentum: float) -> float:
    """(2 + 2 beta)/(eta (1 + 2 beta)) for v <- beta v + g, x <- x - eta (g + beta v) (optax.sgd
    nesterov; Cohen et al. 2021 App. B): z^2 - (1 + beta)(1 - eta a) z + beta (1 - eta a) at z = -1."""
    return (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))


def adam_threshold(lr: float, beta1: float) -> float:
    """(2 + 2 beta1)/(eta (1 - beta1)) = 38/eta at beta1 = 0.9: the threshold of the preconditioned
    sharpness lambda_max(P^-1 H) (Cohen et al. 2022, "Adaptive gradient methods at the edge of
    stability", Sec. 3) for m <- beta1 m + (1 - beta1) g, x <- x - eta P^-1 m with P frozen."""
    return (2.0 + 2.0 * beta1) / (lr * (1.0 - beta1))


def stability_threshold(optimizer: str, lr: float, momentum: float) -> float | None:
    """The threshold on lambda_max(H) for sgd/momentum/nesterov; None for every other optimizer.

    Adam-family optimizers are stable by their *preconditioned* sharpness (`adam_threshold`), and
    LARS, LAMB and SAM have no closed-form threshold (per-layer trust ratios, adversarial step).
    """
    if optimizer in GD_LIKE:
        return gd_threshold(lr)
    if optimizer in HEAVY_BALL:
        return heavy_ball_threshold(lr, momentum)
    if optimizer in NESTEROV:
        return nesterov_threshold(lr, momentum)
    return None
