"""Optimizers against hand computations: LARS/LAMB trust ratios on a two-layer toy, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lbbench.config import Config
from lbbench.models import build_model
from lbbench.training.optim import decay_mask, make_optimizer

PARAMS = {
    "dense1": {"kernel": np.array([[1.0, -2.0], [0.5, 3.0]], np.float32), "bias": np.array([0.1, -0.2], np.float32)},
    "dense2": {"kernel": np.array([[2.0], [-1.0]], np.float32), "bias": np.array([0.3], np.float32)},
}
GRADS = {
    "dense1": {"kernel": np.array([[0.1, 0.2], [-0.3, 0.4]], np.float32), "bias": np.array([0.5, -0.5], np.float32)},
    "dense2": {"kernel": np.array([[0.05], [0.02]], np.float32), "bias": np.array([-0.1], np.float32)},
}


def first_update(cfg):
    tx = make_optimizer(cfg)  # injected learning rate starts at the config's (scaled) peak
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    return jax.tree.map(np.asarray, updates)


def test_lars_trust_ratio_by_hand():
    lr, eta, wd = 2.0, 1e-3, 1e-4
    upd = first_update(Config(optimizer="lars", learning_rate=lr, trust_coefficient=eta, weight_decay=wd, momentum=0.9))
    for layer in ("dense1", "dense2"):
        w, g = PARAMS[layer]["kernel"], GRADS[layer]["kernel"]
        d = g + wd * w  # You et al. 2017, Alg. 1: local lr = eta * ||w|| / ||g + wd w||
        expected = -lr * eta * np.linalg.norm(w) / np.linalg.norm(d) * d
        np.testing.assert_allclose(upd[layer]["kernel"], expected, rtol=1e-5)
        # biases: no trust ratio, no weight decay (first momentum step = gradient)
        np.testing.assert_allclose(upd[layer]["bias"], -lr * GRADS[layer]["bias"], rtol=1e-6)


def test_lamb_trust_ratio_by_hand():
    lr, wd = 0.01, 0.1
    upd = first_update(Config(optimizer="lamb", learning_rate=lr, weight_decay=wd, momentum=0.9))
    for layer in ("dense1", "dense2"):
        w, g = PARAMS[layer]["kernel"], GRADS[layer]["kernel"]
        # first Adam step with bias correction: m_hat = g, v_hat = g^2 -> u = g / (|g| + 1e-6)
        u = g / (np.abs(g) + 1e-6) + wd * w  # You et al. 2019, Alg. 2
        expected = -lr * np.linalg.norm(w) / np.linalg.norm(u) * u
        np.testing.assert_allclose(upd[layer]["kernel"], expected, rtol=1e-5)
        b = GRADS[layer]["bias"]
        np.testing.assert_allclose(upd[layer]["bias"], -lr * b / (np.abs(b) + 1e-6), rtol=1e-5)


def test_adamw_does_not_decay_biases():
    upd = first_update(Config(optimizer="adamw", learning_rate=0.01, weight_decay=0.5))
    b = GRADS["dense1"]["bias"]
    np.testing.assert_allclose(upd["dense1"]["bias"], -0.01 * b / (np.abs(b) + 1e-8), rtol=1e-5)
    w, g = PARAMS["dense1"]["kernel"], GRADS["dense1"]["kernel"]
    np.testing.assert_allclose(
        upd["dense1"]["kernel"], -0.01 * (g / (np.abs(g) + 1e-8) + 0.5 * w), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_sgd_family_first_step_with_l2(name):
    upd = first_update(Config(optimizer=name, learning_rate=0.1, weight_decay=0.01))
    w, g = PARAMS["dense2"]["kernel"], GRADS["dense2"]["kernel"]
    scale = 1.9 if name == "nesterov" else 1.0  # nesterov's first step: g + m * g
    np.testing.assert_allclose(upd["dense2"]["kernel"], -0.1 * scale * (g + 0.01 * w), rtol=1e-5)
    np.testing.assert_allclose(upd["dense2"]["bias"], -0.1 * scale * GRADS["dense2"]["bias"], rtol=1e-5)


def test_masks_exclude_biases_and_batchnorm():
    model = build_model("f1", num_classes=10)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((2, 40)), train=False)["params"]
    flat = jax.tree_util.tree_flatten_with_path(decay_mask(params))[0]
    for path, masked in flat:
        name = jax.tree_util.keystr(path)
        is_norm_or_bias = "GhostBatchNorm" in name or name.endswith("['bias']")
        assert masked == (not is_norm_or_bias), name
    assert sum(m for _, m in flat) == 6  # five hidden kernels + the output kernel


def test_sam_step_moves_and_uses_grad_fn():
    cfg = Config(optimizer="sam", learning_rate=0.1, sam_rho=0.05, momentum=0.0)
    tx = make_optimizer(cfg)
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))
    grad_fn = lambda p, _: jax.grad(loss)(p)
    updates, _ = tx.update(jax.grad(loss)(PARAMS), tx.init(PARAMS), PARAMS, grad_fn=grad_fn)
    # SAM (Foret et al. 2021): gradient at w + rho * g / ||g||, here 2 (w + rho g/||g||) for loss sum w^2
    g = jax.grad(loss)(PARAMS)
    gnorm = np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(g)))
    expected = jax.tree.map(lambda w, gi: -0.1 * 2 * (w + 0.05 * gi / gnorm), PARAMS, g)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("beta2, scaling, batch", [(0.9, "none", 256), (0.999, "half_life", 2048)])
def test_beta2_reaches_adam(beta2, scaling, batch):
    """Three steps equal optax.adam with β2' = β2^(B/B_base) under half-life scaling (Marek et al. 2025)."""
    cfg = Config(optimizer="adam", learning_rate=0.01, beta2=beta2, beta2_scaling=scaling, batch_size=batch)
    expected_b2 = beta2 ** (batch / 256) if scaling == "half_life" else beta2
    assert cfg.scaled_beta2 == pytest.approx(expected_b2)
    ours, ref = make_optimizer(cfg), optax.adam(0.01, b1=0.9, b2=expected_b2)
    s_ours, s_ref = ours.init(PARAMS), ref.init(PARAMS)
    for k in range(3):
        g = jax.tree.map(lambda x, k=k: x * (1.0 + k) ** 2, GRADS)
        u_ours, s_ours = ours.update(g, s_ours, PARAMS)
        u_ref, s_ref = ref.update(g, s_ref, PARAMS)
        for a, b in zip(jax.tree.leaves(u_ours), jax.tree.leaves(u_ref)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
