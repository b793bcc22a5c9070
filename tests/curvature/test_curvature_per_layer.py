"""Per-layer curvature against the exact Hessian's diagonal blocks (jax.hessian on a tiny MLP)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.loss import make_loss
from lbbench.curvature.measure import SharpnessOptions, measure
from lbbench.curvature.per_layer import layer_indices, per_layer


class TwoLayer(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(6)(x))  # Dense_0: 4*6 + 6 parameters
        return nn.Dense(3)(h)  # Dense_1: 6*3 + 3


def setup():
    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    x, y = jax.random.normal(kx, (48, 4)), jax.random.randint(ky, (48,), 0, 3)
    model = TwoLayer()
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    logits_fn = lambda p, xb: model.apply({"params": p}, xb)
    flat, unravel = ravel_pytree(params)
    plain = lambda f: optax.softmax_cross_entropy_with_integer_labels(logits_fn(unravel(f), x), y).mean()
    return logits_fn, params, x, y, np.asarray(jax.hessian(plain)(flat), np.float64)


@pytest.mark.slow
def test_layer_indices_partition_the_flat_vector():
    _, params, *_ = setup()
    idx = layer_indices(params)
    assert set(idx) == {"Dense_0", "Dense_1"}
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(4 * 6 + 6 + 6 * 3 + 3))
    assert len(idx["Dense_0"]) == 30 and len(idx["Dense_1"]) == 21


@pytest.mark.slow
def test_per_layer_matches_exact_diagonal_blocks():
    logits_fn, params, x, y, hess = setup()
    loss_fn = make_loss(logits_fn, x, y, chunk_size=16)
    matvec, n, dtype = flat_matvec(loss_fn, params)
    got = per_layer(matvec, params, n, dtype, lanczos_iters=30, probes=200, key=jax.random.PRNGKey(2))
    for name, idx in layer_indices(params).items():
        block = hess[np.ix_(idx, idx)]
        np.testing.assert_allclose(got[name]["lambda_max"], np.linalg.eigvalsh(block)[-1], rtol=1e-4)
        assert abs(got[name]["trace"] - np.trace(block)) <= 3 * got[name]["trace_stderr"]
        assert got[name]["num_params"] == len(idx)


def test_measure_reports_per_layer_when_asked():
    logits_fn, params, x, y, _ = setup()
    opts = SharpnessOptions(lanczos_iters=10, hutchinson_probes=4, epsilons=(), per_layer=True)
    report = measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(3))
    assert set(report["per_layer"]) == {"Dense_0", "Dense_1"}
    assert report["seconds"]["per_layer"] > 0
