"""Optimizers built from optax, with weight decay and trust ratios masked off biases and norms.

optax's masks default to *all* parameters; LARS (You et al. 2017) and LAMB (You et al. 2019)
practice exclude biases and normalisation parameters from both weight decay and the trust ratio.
"""

from __future__ import annotations

import jax
import optax

from lbbench.config import Config


def decay_mask(params):
    """True for weight matrices/kernels (ndim > 1); False for biases and BatchNorm scale/bias."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _with_decay(inner: optax.GradientTransformation, wd: float) -> optax.GradientTransformation:
    """Coupled (L2) weight decay before `inner`, masked like the adaptive methods."""
    if not wd:
        return inner
    return optax.chain(optax.add_decayed_weights(wd, mask=decay_mask), inner)


def lamb(lr, b1: float, weight_decay: float) -> optax.GradientTransformation:
    """LAMB (You et al. 2019, Alg. 2) with the trust ratio ‖w‖/‖u‖ masked off biases and norms."""
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=0.999, eps=1e-6),
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.masked(optax.scale_by_trust_ratio(), decay_mask),
        optax.scale_by_learning_rate(lr),
    )


def _base(cfg: Config, lr) -> optax.GradientTransformation:
    m, wd = cfg.momentum, cfg.weight_decay
    if cfg.optimizer == "sgd":
        return _with_decay(optax.sgd(lr), wd)
    if cfg.optimizer in ("momentum", "sam"):
        return _with_decay(optax.sgd(lr, momentum=m), wd)
    if cfg.optimizer == "nesterov":
        return _with_decay(optax.sgd(lr, momentum=m, nesterov=True), wd)
    if cfg.optimizer == "adam":
        return _with_decay(optax.adam(lr, b1=m), wd)
    if cfg.optimizer == "adamw":
        return optax.adamw(lr, b1=m, weight_decay=wd, mask=decay_mask)
    if cfg.optimizer == "lars":
        return optax.lars(lr, weight_decay=wd, weight_decay_mask=decay_mask,
                          trust_coefficient=cfg.trust_coefficient, trust_ratio_mask=decay_mask, momentum=m)
    if cfg.optimizer == "lamb":
        return lamb(lr, m, wd)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_optimizer(cfg: Config, schedule: optax.Schedule) -> optax.GradientTransformation:
    """The configured optimizer driven by `schedule`; SAM wraps momentum SGD (Foret et al. 2021).

    SAM runs in optax's opaque mode so BatchNorm statistics are only updated on real steps; its
    `update` then needs `grad_fn=` (train.py passes it).
    """
    opt = _base(cfg, schedule)
    if cfg.optimizer == "sam":
        adv = optax.chain(optax.contrib.normalize(), optax.sgd(cfg.sam_rho))
        opt = optax.contrib.sam(opt, adv, sync_period=2, opaque_mode=True)
    if cfg.grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
    return opt
