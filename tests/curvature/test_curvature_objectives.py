"""lbbench.curvature.objectives: each loss against a NumPy closed form, and the MSE Hessian of a linear
model, which is known exactly (Cohen et al. 2021's squared loss on one-hot targets)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import exact_hessian, linear_mse_toy

from lbbench.config import LOSSES
from lbbench.curvature import objectives
from lbbench.curvature.loss import make_loss
from lbbench.curvature.measure import SharpnessOptions, measure


def _fabricated(seed=0, n=7, c=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)).astype(np.float32) * 3, rng.integers(0, c, n)


def test_names_are_the_configs():
    assert tuple(objectives.PER_EXAMPLE) == LOSSES


def test_mse_is_half_the_squared_distance_to_one_hot():
    logits, labels = _fabricated()
    onehot = np.eye(logits.shape[1])[labels]
    want = 0.5 * ((logits.astype(np.float64) - onehot) ** 2).sum(axis=1)
    got = objectives.per_example("mse")(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(objectives.mean_loss("mse", logits, labels), want.mean(), rtol=1e-6)
    w = np.array([1, 0, 1, 1, 0, 0, 1], np.float32)
    np.testing.assert_allclose(objectives.weighted_sum("mse", logits, labels, w), (w * want).sum(), rtol=1e-6)


def test_cross_entropy_is_logsumexp_minus_the_label_logit():
    logits, labels = _fabricated(1)
    z = logits.astype(np.float64)
    want = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]
    np.testing.assert_allclose(objectives.per_example("cross_entropy")(logits, labels), want, rtol=1e-5)


def test_unknown_loss_is_refused_before_any_trace():
    logits_fn, params, x, y, _ = linear_mse_toy()
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_loss(logits_fn, x, y, 16, loss="hinge")


def test_linear_mse_hessian_is_identity_kron_gram():
    logits_fn, params, x, y, gram = linear_mse_toy()
    loss = make_loss(logits_fn, x, y, chunk_size=16, loss="mse")  # chunked: 64 = 4 chunks
    want = np.kron(gram, np.eye(params["w"].shape[1]))
    np.testing.assert_allclose(exact_hessian(loss, params), want, rtol=1e-5, atol=1e-6)


def test_measured_lambda_max_of_linear_mse_is_the_top_eigenvalue_of_the_gram():
    """The end-of-run code path (curvature.measure, what the sharpness instrument calls) on the MSE."""
    logits_fn, params, x, y, gram = linear_mse_toy()
    opts = SharpnessOptions(lanczos_iters=10, top_k=2, hutchinson_probes=0, epsilons=(), chunk_size=16, loss="mse")
    report = measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(0))
    top = np.linalg.eigvalsh(gram)[-1]
    assert report["lambda_max"] == pytest.approx(top, rel=1e-5)
    assert report["top_eigenvalues"][1] == pytest.approx(top, rel=1e-5)  # I_c (x) G: each eigenvalue c times
    onehot = np.eye(3)[np.asarray(y)]
    residual = np.asarray(x, np.float64) @ np.asarray(params["w"], np.float64) - onehot
    assert report["loss"] == pytest.approx(0.5 * (residual**2).sum(axis=1).mean(), rel=1e-5)
