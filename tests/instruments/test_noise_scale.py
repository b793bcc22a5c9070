"""Gradient noise scale against linear regression with Gaussian inputs, where it is known exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lbbench.config import Config
from lbbench.instruments import noise_scale
from lbbench.models import build_model
from lbbench.training import state as state_lib
from lbbench.training import step as steps

D, SIGMA = 10, 0.5


def closed_form_b_simple(delta):
    """ℓ = ½(xᵀw − y)², x ~ N(0, I), y = xᵀw* + σε: G = δ, tr Σ = (d + 1)|δ|² + dσ² (Isserlis)."""
    d2 = float(np.sum(delta**2))
    return ((D + 1) * d2 + D * SIGMA**2) / d2


def batch_grad(w, x, y):
    return jax.grad(lambda w: 0.5 * jnp.mean((x @ w - y) ** 2))(w)


@pytest.mark.slow
def test_estimator_recovers_b_simple_of_linear_regression():
    rng = np.random.default_rng(0)
    w_star, w = rng.normal(size=D), rng.normal(size=D)
    b_big, groups = 256, 8
    b_small = b_big // groups
    state = noise_scale.init()
    key = jax.random.PRNGKey(0)
    for _ in range(400):
        key, kx, ke = jax.random.split(key, 3)
        x = jax.random.normal(kx, (b_big, D))
        y = x @ w_star + SIGMA * jax.random.normal(ke, (b_big,))
        g_small = jax.vmap(batch_grad, (None, 0, 0))(w, x.reshape(groups, b_small, D), y.reshape(groups, b_small))
        g_big = batch_grad(w, x, y)
        state = noise_scale.update(
            state, jnp.mean(jnp.sum(g_small**2, -1)), jnp.sum(g_big**2), b_small, b_big, decay=0.99
        )
    est = float(noise_scale.summary(state)["b_simple"])
    assert est == pytest.approx(closed_form_b_simple(w - w_star), rel=0.10)


def test_unbiased_estimates_on_exact_norms():
    """With exact expected norms E|G_B|² = |G|² + trΣ/B the formulas return |G|² and trΣ exactly."""
    g2, tr = 3.0, 120.0
    est_g2, est_tr = noise_scale.estimates(g2 + tr / 16, g2 + tr / 128, 16, 128)
    assert (float(est_g2), float(est_tr)) == pytest.approx((g2, tr))


@pytest.mark.slow
def test_train_step_sub_batch_norms_match_direct_computation():
    """The vmapped step's |G_small|² and |G_big|² equal per-sub-batch gradients taken one by one."""
    model = build_model("tiny_mlp", num_classes=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 5))
    y = jax.random.randint(jax.random.PRNGKey(2), (32,), 0, 3)
    params = model.init(jax.random.PRNGKey(0), x, train=False)["params"]
    state = state_lib.TrainState(
        params=params,
        batch_stats={},
        opt_state=(),
        step=jnp.zeros((), jnp.int32),
        noise=noise_scale.init(),
        schedule={},
        rng=jax.random.PRNGKey(0),
        alive=jnp.ones((), bool),
    )
    spec = steps.StepSpec(batch_size=32, groups=4, vmap_groups=True, noise_decay=0.9, sam=False)
    loss_fn = steps.make_group_loss(model)
    _, grads, _, _, g_small_sq, g_big_sq = steps.grouped_grads(loss_fn, state, x, y, jax.random.PRNGKey(3), spec)

    def direct(xs, ys):
        logits = lambda p: model.apply({"params": p}, xs, train=False)
        return jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p), ys).mean())(params)

    sq = lambda t: sum(float(jnp.sum(l**2)) for l in jax.tree.leaves(t))
    small = [sq(direct(x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8])) for i in range(4)]
    assert float(g_small_sq) == pytest.approx(np.mean(small), rel=1e-5)
    assert float(g_big_sq) == pytest.approx(sq(direct(x, y)), rel=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(direct(x, y))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_run_reports_noise_scale(tmp_path):
    from lbbench.training import loop as train

    cfg = Config(
        dataset="random",
        model="tiny_bn_mlp",
        batch_size=200,
        ghost_batch_size=25,
        epochs=2,
        sharpness=False,
        noise_scale_groups=4,
        workdir=str(tmp_path),
        run_name="r",
    )
    ns = train.run(cfg)["noise_scale"]
    assert ns["b_small"] == 50 and ns["b_big"] == 200
    assert np.isfinite(ns["b_simple"]) and np.isfinite(ns["trace_sigma"])


def test_b_simple_undefined_when_gradient_estimate_not_positive():
    state = noise_scale.update(noise_scale.init(), g_small_sq=2.0, g_big_sq=0.1, b_small=16, b_big=256, decay=0.9)
    out = noise_scale.summary(state)
    assert float(out["grad_norm_sq"]) < 0 and np.isnan(float(out["b_simple"]))
    assert float(out["trace_sigma"]) > 0
