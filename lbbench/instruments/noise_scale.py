"""Gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, App. A.1): the estimator
the train step updates in-program (training/step.py), and the instrument that reports it.

From gradient norms at two batch sizes, unbiased estimates of the true-gradient norm and of the
per-example covariance trace are
    |G|²  ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)
    tr Σ  ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
Each is smoothed by its own exponential moving average before the ratio is taken, because the
ratio of noisy estimates is biased and can be negative step to step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lbbench.instruments.base import Instrument, TrialView
from lbbench.runs.atomic import finite_or_none

NAME = "noise_scale"
ORDER = 0
# Config overrides that switch it on, at a size the contract test can afford (tests/instruments)
ENABLE = {"noise_scale_groups": 2, "noise_scale_every": 1}


class NoiseScaleState(NamedTuple):
    g2_ema: jnp.ndarray  # EMA of the |G|² estimate (un-normalised; see `b_simple`)
    trace_ema: jnp.ndarray  # EMA of the tr(Σ) estimate
    weight: jnp.ndarray  # Σ of EMA weights, for bias correction (Adam-style)


def init() -> NoiseScaleState:
    return NoiseScaleState(*(jnp.zeros((), jnp.float32) for _ in range(3)))  # distinct buffers (donation)


def estimates(g_small_sq, g_big_sq, b_small, b_big):
    """Unbiased (|G|², tr Σ) from mean squared norms of B_small- and B_big-example gradients."""
    g2 = (b_big * g_big_sq - b_small * g_small_sq) / (b_big - b_small)
    trace = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def update(state: NoiseScaleState, g_small_sq, g_big_sq, b_small, b_big, decay: float) -> NoiseScaleState:
    g2, trace = estimates(g_small_sq, g_big_sq, b_small, b_big)
    return NoiseScaleState(
        decay * state.g2_ema + (1 - decay) * g2,
        decay * state.trace_ema + (1 - decay) * trace,
        decay * state.weight + (1 - decay),
    )


def summary(state: NoiseScaleState) -> dict:
    """Bias-corrected EMAs and B_simple = tr Σ / |G|².

    B_simple is NaN until the first update, and also while the |G|² estimate is not positive: near
    a minimum the true gradient is swamped by sampling noise, the unbiased estimate can dip below
    zero, and the ratio then means only "far above the batch size", not a negative batch size.
    """
    w = jnp.where(state.weight > 0, state.weight, jnp.nan)
    g2, trace = state.g2_ema / w, state.trace_ema / w
    return {"b_simple": jnp.where(g2 > 0, trace / g2, jnp.nan), "grad_norm_sq": g2, "trace_sigma": trace}


class NoiseScale(Instrument):
    """Reads a trial's in-step estimate: every epoch into its record (noise_b_simple, ...), and at the
    end as result.json `noise_scale`. The estimate is a trajectory average: each measurement is
    smoothed by a per-step EMA (window ≈ 1/(1 − ema) steps), so it lags a changing B_simple."""

    name = NAME
    at_end = True
    record_prefix = "noise_"
    summary_key = "noise_scale"

    def __init__(self, groups: int, batch_size: int, every: int, ema: float):
        self.groups, self.batch_size, self.measure_every, self.ema = groups, batch_size, every, ema
        self._last: dict[int, dict] = {}

    def cost_steps(self) -> float:
        """Reading the estimate is free; the measurement itself is in the compiled step, where the
        measured steps take k sub-batch gradients side by side: about one more train step each."""
        return 1.0

    def describe_cost(self) -> str:
        return (
            f"in the train step every {self.measure_every} steps ({self.groups} sub-batches of "
            f"{self.batch_size // self.groups}, ≈ 1 extra train step per measured step)"
        )

    def run(self, view: TrialView):
        values = {k: finite_or_none(v) for k, v in jax.device_get(summary(view.state.noise)).items()}
        self._last[view.trial] = values
        yield from values.items()

    def summary(self, trial: int) -> dict | None:
        if trial not in self._last:
            return None
        return {
            **self._last[trial],
            "b_small": self.batch_size // self.groups,
            "b_big": self.batch_size,
            "every_steps": self.measure_every,
            "ema_per_step": self.ema,
            "kind": "trajectory average (per-step EMA of the estimates)",
        }


def build(cfg, ctx) -> NoiseScale | None:
    if cfg.noise_scale_groups <= 1:
        return None
    return NoiseScale(cfg.noise_scale_groups, cfg.batch_size, cfg.noise_scale_every, cfg.noise_scale_ema)
