"""Optimizers built from optax, hyperparameters injected as traced values, masks on biases and norms.

Every optimizer is `optax.inject_hyperparams` of a factory, so its learning rate, momentum/β1, β2,
weight decay, LARS trust coefficient and SAM ρ live in the optimizer *state*: one compiled program
serves any values (vmapped trials), and the training step writes the scheduled learning rate into
the state before each update. optax's masks default to *all* parameters; LARS (You et al. 2017) and
LAMB (You et al. 2019) practice exclude biases and normalisation parameters from both weight decay
and the trust ratio.
"""

from __future__ import annotations

import jax
import optax

from lbbench.config import Config

# Which traced hyperparameters each optimizer's factory takes (besides learning_rate).
HYPERPARAMS = {
    "sgd": ("weight_decay",),
    "momentum": ("momentum", "weight_decay"),
    "nesterov": ("momentum", "weight_decay"),
    "adam": ("momentum", "beta2", "weight_decay"),
    "adamw": ("momentum", "beta2", "weight_decay"),
    "lars": ("momentum", "weight_decay", "trust_coefficient"),
    "lamb": ("momentum", "beta2", "weight_decay"),
    "sam": ("momentum", "weight_decay", "sam_rho"),
}


def decay_mask(params):
    """True for weight matrices/kernels (ndim > 1); False for biases and BatchNorm scale/bias."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _with_decay(inner: optax.GradientTransformation, wd) -> optax.GradientTransformation:
    """Coupled (L2) weight decay before `inner`, masked like the adaptive methods (wd may be traced)."""
    return optax.chain(optax.add_decayed_weights(wd, mask=decay_mask), inner)


def lamb(lr, b1, b2, weight_decay) -> optax.GradientTransformation:
    """LAMB (You et al. 2019, Alg. 2) with the trust ratio ‖w‖/‖u‖ masked off biases and norms."""
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=1e-6),
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.masked(optax.scale_by_trust_ratio(), decay_mask),
        optax.scale_by_learning_rate(lr),
    )


def _base(name: str, lr, hp: dict) -> optax.GradientTransformation:
    m, wd = hp["momentum"], hp["weight_decay"]
    if name == "sgd":
        return _with_decay(optax.sgd(lr), wd)
    if name in ("momentum", "sam"):
        return _with_decay(optax.sgd(lr, momentum=m), wd)
    if name == "nesterov":
        return _with_decay(optax.sgd(lr, momentum=m, nesterov=True), wd)
    if name == "adam":
        return _with_decay(optax.adam(lr, b1=m, b2=hp["beta2"]), wd)
    if name == "adamw":
        return optax.adamw(lr, b1=m, b2=hp["beta2"], weight_decay=wd, mask=decay_mask)
    if name == "lars":
        return optax.lars(
            lr,
            weight_decay=wd,
            weight_decay_mask=decay_mask,
            trust_coefficient=hp["trust_coefficient"],
            trust_ratio_mask=decay_mask,
            momentum=m,
        )
    if name == "lamb":
        return lamb(lr, m, hp["beta2"], wd)
    raise ValueError(f"unknown optimizer {name!r}")


def _factory(name: str, grad_clip: float):
    """The optimizer as a function of its hyperparameters (what inject_hyperparams wraps).

    SAM (Foret et al. 2021) wraps momentum SGD in optax's opaque mode, so BatchNorm statistics are
    only updated on real steps; its `update` then needs `grad_fn=` (steps.py passes it).
    """

    def make(learning_rate, momentum=None, beta2=None, weight_decay=None, trust_coefficient=None, sam_rho=None):
        hp = {
            "momentum": momentum,
            "beta2": beta2,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "sam_rho": sam_rho,
        }
        opt = _base(name, learning_rate, hp)
        if name == "sam":
            adv = optax.chain(optax.contrib.normalize(), optax.sgd(hp["sam_rho"]))
            opt = optax.contrib.sam(opt, adv, sync_period=2, opaque_mode=True)
        if grad_clip:
            opt = optax.chain(optax.clip_by_global_norm(grad_clip), opt)
        return opt

    return make


def hyperparams(cfg: Config) -> dict[str, float]:
    """This config's traced hyperparameters; learning_rate is the peak (batch-size-scaled) rate."""
    values = {
        "learning_rate": cfg.scaled_learning_rate,
        "momentum": cfg.momentum,
        "beta2": cfg.scaled_beta2,
        "weight_decay": cfg.weight_decay,
        "trust_coefficient": cfg.trust_coefficient,
        "sam_rho": cfg.sam_rho,
    }
    return {k: float(values[k]) for k in ("learning_rate",) + HYPERPARAMS[cfg.optimizer]}


def make_optimizer(cfg: Config) -> optax.GradientTransformationExtraArgs:
    """The configured optimizer with its hyperparameters in the state (initially this config's values).

    Only the optimizer kind and grad_clip shape the program; `init` of another config of the same
    kind gives a state the same `update` accepts, which is how trials share one compiled step.
    """
    inject = optax.inject_hyperparams(_factory(cfg.optimizer, cfg.grad_clip))
    return inject(**hyperparams(cfg))


def with_learning_rate(opt_state, lr):
    """The state with its injected learning rate replaced (the schedule's value for this step)."""
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
