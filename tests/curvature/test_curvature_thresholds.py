"""Stability thresholds against optax's own optimizers on f = a/2 x^2: stable just below, divergent
just above (the threshold formulas are derived, optax's update rules are the independent reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lbbench.curvature import thresholds as th

LR, BETA = 0.1, 0.9


def _final_abs_x(tx, a: float, steps: int = 400) -> float:
    """|x| after `steps` optimizer steps on a/2 x^2 from x = 1 (inf if it overflowed)."""

    def step(_, carry):
        x, state = carry
        updates, state = tx.update(a * x, state, x)
        return x + updates, state

    x = jnp.array(1.0)
    x, _ = jax.lax.fori_loop(0, steps, step, (x, tx.init(x)))
    return float(jnp.abs(x)) if np.isfinite(float(x)) else np.inf


CASES = {
    "gd": (optax.sgd(LR), th.gd_threshold(LR)),
    "heavy_ball": (optax.sgd(LR, momentum=BETA), th.heavy_ball_threshold(LR, BETA)),
    "nesterov": (optax.sgd(LR, momentum=BETA, nesterov=True), th.nesterov_threshold(LR, BETA)),
    # Adam with a frozen preconditioner P = I: EMA momentum m <- b1 m + (1 - b1) g, x <- x - eta m
    "adam_frozen_p": (optax.chain(optax.ema(BETA, debias=False), optax.scale(-LR)), th.adam_threshold(LR, BETA)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_threshold_separates_stable_from_divergent(name):
    tx, threshold = CASES[name]
    assert _final_abs_x(tx, 0.97 * threshold) < 1.0
    assert _final_abs_x(tx, 1.03 * threshold) > 1e3


def test_closed_forms_and_dispatch():
    assert th.adam_threshold(1.0, 0.9) == pytest.approx(38.0)  # Cohen et al. 2022: 38/eta
    assert th.nesterov_threshold(1.0, 0.0) == th.heavy_ball_threshold(1.0, 0.0) == 2.0
    assert th.stability_threshold("sgd", 0.5, 0.9) == 4.0
    assert th.stability_threshold("momentum", 0.5, 0.9) == pytest.approx(7.6)
    assert th.stability_threshold("nesterov", 0.5, 0.9) == pytest.approx(3.8 / 0.5 / 2.8)
    for name in ("adam", "adamw", "lars", "lamb", "sam"):
        assert th.stability_threshold(name, 0.5, 0.9) is None
    assert np.isfinite(th.adam_threshold(1e-3, 0.99))
