"""Learning-rate schedules as pure functions of the step and traced (peak rate, warmup length).

The peak rate and the warmup length are values in each trial's state, so one compiled program
serves any of them; the schedule kind, the run length and the step-decay boundaries shape it.
Warmup follows the seed article and Goyal et al. 2017 §2.2 (gradual warmup): during the first W
steps lr(t) = lr · (t + 1) / W, so step 0 already moves and step W − 1 reaches the full rate.

The schedule is a function of the global step. Warmup and decay lengths given in epochs become steps
through the run's phases (training/phases.py): with --batch_schedule an epoch has a different number
of steps in each phase, and the schedule neither restarts nor rescales when the batch changes (Smith
et al. 2018 keep the rate while the batch grows).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lbbench.config import Config
from lbbench.training.phases import Plan


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """The static part of a schedule (hashable; closed over by the compiled step)."""

    kind: str
    total_steps: int
    boundaries: tuple[int, ...] = ()  # warmup_step: steps at which the rate is divided by `factor`
    factor: float = 10.0


def _steps(steps_per_epoch: int | Plan, epochs: float) -> int:
    """`epochs` in global steps: × steps per epoch, or through a run's batch-size phases."""
    if isinstance(steps_per_epoch, Plan):
        return steps_per_epoch.step_at(epochs)
    return int(round(epochs * steps_per_epoch))


def warmup_steps(cfg: Config, steps_per_epoch: int | Plan) -> int:
    """--warmup_steps when set (the same at every batch size), else --warmup_epochs in steps."""
    if cfg.schedule == "constant":
        return 0
    return cfg.warmup_steps if cfg.warmup_steps >= 0 else _steps(steps_per_epoch, cfg.warmup_epochs)


def decay_boundaries(cfg: Config, steps_per_epoch: int | Plan) -> list[int]:
    """Steps at which warmup_step divides by --decay_factor (Goyal et al.: ÷10 at epochs 30, 60, 80 of
    90; default 50 %, 75 %)."""
    epochs = cfg.decay_epochs or (cfg.epochs * 0.5, cfg.epochs * 0.75)
    return [_steps(steps_per_epoch, e) for e in epochs]


def schedule_spec(cfg: Config, steps_per_epoch: int | Plan) -> ScheduleSpec:
    """The static schedule of `cfg`, with its lengths in steps (`steps_per_epoch` or the run's phases)."""
    bounds = tuple(decay_boundaries(cfg, steps_per_epoch)) if cfg.schedule == "warmup_step" else ()
    return ScheduleSpec(cfg.schedule, _steps(steps_per_epoch, cfg.epochs), bounds, cfg.decay_factor)


def learning_rate(spec: ScheduleSpec, step, peak, warmup):
    """lr(step) for peak rate `peak` and `warmup` steps (both may be traced).

    Warmup (W > 1): lr·(t+1)/W for t < W. After it: constant; cosine decay to 0 over the remaining
    total − W steps (optax.cosine_decay_schedule); or ÷factor at each boundary b (applied from
    max(b, W) on, so boundaries inside the warmup take effect when it ends).
    """
    t = jnp.asarray(step, jnp.float32)
    w = jnp.asarray(warmup, jnp.float32)
    in_warmup = (w > 1) & (t < w)
    ramp = jnp.where(in_warmup, (t + 1) / jnp.maximum(w, 1.0), 1.0)
    after = 1.0
    if spec.kind == "warmup_cosine":
        w0 = jnp.where(w > 1, w, 0.0)
        decay = jnp.maximum(spec.total_steps - w0, 1.0)
        frac = jnp.clip(t - w0, 0.0, decay) / decay
        after = 0.5 * (1 + jnp.cos(jnp.pi * frac))
    elif spec.kind == "warmup_step":
        passed = sum(jnp.where(t >= jnp.maximum(b, w), 1.0, 0.0) for b in spec.boundaries)
        after = jnp.power(1.0 / spec.factor, passed)
    return peak * jnp.where(in_warmup, ramp, after)


def make_schedule(cfg: Config, steps_per_epoch: int | Plan):
    """step -> lr for one config (its own peak rate and warmup), e.g. for plots and tests."""
    spec = schedule_spec(cfg, steps_per_epoch)
    peak, w = cfg.scaled_learning_rate, warmup_steps(cfg, steps_per_epoch)
    return lambda step: learning_rate(spec, step, peak, w)
