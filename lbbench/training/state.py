"""The training state of a group of trials: one TrainState whose every leaf has a leading trials axis.

Hyperparameters that do not change the program's shape (peak learning rate, warmup, momentum, β2,
weight decay, ...) are values inside the state, so T ≥ 1 trials share one compiled program; a
single run is a group of one. Everything random about a trial follows from its seed.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

from lbbench.config import Config
from lbbench.instruments import noise_scale
from lbbench.training import schedules
from lbbench.training.optim import make_optimizer
from lbbench.training.phases import Plan


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    opt_state: Any  # optax.inject_hyperparams state: momentum, β2, weight decay ... live here
    step: jnp.ndarray
    noise: noise_scale.NoiseScaleState
    schedule: dict  # traced {"peak": peak learning rate, "warmup": warmup steps}
    rng: jnp.ndarray  # this trial's key: data order, dropout, augmentation
    alive: jnp.ndarray  # False once the loss went NaN/inf: the trial is frozen from then on


def trial_keys(cfg: Config):
    """(init, train, sharpness) keys of a trial: everything random about it follows from its seed."""
    return jax.random.split(jax.random.PRNGKey(cfg.seed), 3)


def init_state(cfg: Config, model, ds, steps_per_epoch: int | Plan) -> TrainState:
    """One trial's initial state; its hyperparameters are values in the state, not in the program.
    `steps_per_epoch` (or the run's batch-size phases) turns a warmup in epochs into steps."""
    init_key, train_key, _ = trial_keys(cfg)
    param_key, dropout_key = jax.random.split(init_key)
    variables = model.init({"params": param_key, "dropout": dropout_key}, ds.x_train[:2], train=False)
    params = variables["params"]
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    sched = {"peak": f32(cfg.scaled_learning_rate), "warmup": f32(schedules.warmup_steps(cfg, steps_per_epoch))}
    return TrainState(
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=make_optimizer(cfg).init(params),
        step=jnp.zeros((), jnp.int32),
        noise=noise_scale.init(),
        schedule=sched,
        rng=train_key,
        alive=jnp.ones((), jnp.bool_),
    )


def stack_trials(states: list):
    """Trial states → one state whose every leaf has a leading trials axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def trial(state, i: int):
    """Trial i's slice of a stacked state (host or device arrays)."""
    return jax.tree.map(lambda a: a[i], state)
