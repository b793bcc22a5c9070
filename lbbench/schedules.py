"""Learning-rate schedules as optax schedules, in optimizer steps.

Warmup follows the seed article and Goyal et al. 2017 §2.2 (gradual warmup): during the first W
steps lr(t) = lr · (t + 1) / W, so step 0 already moves and step W − 1 reaches the full rate.
"""

from __future__ import annotations

import optax

from lbbench.config import Config


def warmup_steps(cfg: Config, steps_per_epoch: int) -> int:
    return int(round(cfg.warmup_epochs * steps_per_epoch)) if cfg.schedule != "constant" else 0


def decay_boundaries(cfg: Config, steps_per_epoch: int) -> list[int]:
    """Steps at which warmup_step divides by 10 (Goyal et al.: epochs 30, 60, 80 of 90; default 50 %, 75 %)."""
    epochs = cfg.decay_epochs or (cfg.epochs * 0.5, cfg.epochs * 0.75)
    return [int(round(e * steps_per_epoch)) for e in epochs]


def _after_warmup(cfg: Config, lr: float, steps_per_epoch: int, w: int) -> optax.Schedule:
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "warmup_cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=max(total - w, 1))
    if cfg.schedule == "warmup_step":
        return optax.piecewise_constant_schedule(
            lr, {max(b - w, 0): 0.1 for b in decay_boundaries(cfg, steps_per_epoch)})
    return optax.constant_schedule(lr)


def make_schedule(cfg: Config, steps_per_epoch: int) -> optax.Schedule:
    """The configured schedule, peaking at the batch-size-scaled learning rate."""
    lr = cfg.scaled_learning_rate
    w = warmup_steps(cfg, steps_per_epoch)
    rest = _after_warmup(cfg, lr, steps_per_epoch, w)
    if w <= 1:
        return rest
    ramp = optax.linear_schedule(init_value=lr / w, end_value=lr, transition_steps=w - 1)
    return optax.join_schedules([ramp, rest], boundaries=[w])
