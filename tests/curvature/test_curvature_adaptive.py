"""Adaptive sharpness (curvature/adaptive.py): invariant under a ReLU-layer rescaling that leaves the
network's function unchanged, where λ_max (exact Hessian) is not; zero radius gives zero; and the ascent
finds at least the rise of a random feasible perturbation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lbbench.curvature.adaptive import adaptive_sharpness
from lbbench.models import build_model


def _setup():
    model = build_model("tiny_mlp", num_classes=3)  # Dense(16) -> ReLU -> Dense(3): 163 parameters
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 6))
    y = jax.random.randint(jax.random.PRNGKey(1), (64,), 0, 3)
    params = model.init(jax.random.PRNGKey(2), x[:1], train=False)["params"]

    def loss(p):
        logits = model.apply({"params": p}, x, train=False)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(64), y])

    return loss, params


def _rescaled(params, alpha):
    """Layer 0 (kernel and bias) × alpha, layer 1's kernel / alpha: ReLU(alpha z) = alpha ReLU(z)."""
    d0, d1 = params["Dense_0"], params["Dense_1"]
    return {
        "Dense_0": {"kernel": d0["kernel"] * alpha, "bias": d0["bias"] * alpha},
        "Dense_1": {"kernel": d1["kernel"] / alpha, "bias": d1["bias"]},
    }


def _lambda_max(loss, params):
    flat, unravel = ravel_pytree(params)
    return float(np.linalg.eigvalsh(np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat), np.float64))[-1])


@pytest.mark.slow
def test_invariant_under_relu_rescaling_where_lambda_max_is_not():
    loss, params = _setup()
    scaled = _rescaled(params, 4.0)
    np.testing.assert_allclose(float(loss(scaled)), float(loss(params)), rtol=1e-5)  # same function
    key = jax.random.PRNGKey(3)
    a = adaptive_sharpness(loss, params, 0.1, 8, key)["adaptive_sharpness"]
    b = adaptive_sharpness(loss, scaled, 0.1, 8, key)["adaptive_sharpness"]
    assert a > 0
    np.testing.assert_allclose(b, a, rtol=1e-4)
    lam, lam_scaled = _lambda_max(loss, params), _lambda_max(loss, scaled)
    assert abs(lam_scaled / lam - 1) > 0.5  # the Hessian's top eigenvalue moves a lot


def test_zero_radius_is_zero_and_ascent_beats_a_random_feasible_point():
    loss, params = _setup()
    key = jax.random.PRNGKey(4)
    assert adaptive_sharpness(loss, params, 0.0, 5, key)["adaptive_sharpness"] == 0.0
    rho = 0.2
    flat, unravel = ravel_pytree(params)
    u = jax.random.normal(jax.random.PRNGKey(5), flat.shape)
    u = rho * u / jnp.linalg.norm(u)
    random_rise = float(loss(unravel(flat + jnp.abs(flat) * u)) - loss(params))
    found = adaptive_sharpness(loss, params, rho, 10, key)["adaptive_sharpness"]
    assert found >= random_rise and found > 0
