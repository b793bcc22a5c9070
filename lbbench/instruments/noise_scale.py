"""Gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, App. A.1).

From gradient norms at two batch sizes, unbiased estimates of the true-gradient norm and of the
per-example covariance trace are
    |G|²  ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)
    tr Σ  ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
Each is smoothed by its own exponential moving average before the ratio is taken, because the
ratio of noisy estimates is biased and can be negative step to step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class NoiseScaleState(NamedTuple):
    g2_ema: jnp.ndarray      # EMA of the |G|² estimate (un-normalised; see `b_simple`)
    trace_ema: jnp.ndarray   # EMA of the tr(Σ) estimate
    weight: jnp.ndarray      # Σ of EMA weights, for bias correction (Adam-style)


def init() -> NoiseScaleState:
    return NoiseScaleState(*(jnp.zeros((), jnp.float32) for _ in range(3)))  # distinct buffers (donation)


def estimates(g_small_sq, g_big_sq, b_small, b_big):
    """Unbiased (|G|², tr Σ) from mean squared norms of B_small- and B_big-example gradients."""
    g2 = (b_big * g_big_sq - b_small * g_small_sq) / (b_big - b_small)
    trace = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def update(state: NoiseScaleState, g_small_sq, g_big_sq, b_small, b_big, decay: float) -> NoiseScaleState:
    g2, trace = estimates(g_small_sq, g_big_sq, b_small, b_big)
    return NoiseScaleState(decay * state.g2_ema + (1 - decay) * g2,
                           decay * state.trace_ema + (1 - decay) * trace,
                           decay * state.weight + (1 - decay))


def summary(state: NoiseScaleState) -> dict:
    """Bias-corrected EMAs and B_simple = tr Σ / |G|².

    B_simple is NaN until the first update, and also while the |G|² estimate is not positive: near
    a minimum the true gradient is swamped by sampling noise, the unbiased estimate can dip below
    zero, and the ratio then means only "far above the batch size", not a negative batch size.
    """
    w = jnp.where(state.weight > 0, state.weight, jnp.nan)
    g2, trace = state.g2_ema / w, state.trace_ema / w
    return {"b_simple": jnp.where(g2 > 0, trace / g2, jnp.nan), "grad_norm_sq": g2, "trace_sigma": trace}
