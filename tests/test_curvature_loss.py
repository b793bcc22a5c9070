"""lbbench.curvature.loss: the chunked loss equals the plain mean and its gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from _curvature_toys import mlp, plain_loss  # noqa: F401 (mlp is a fixture)
from lbbench.curvature.loss import make_loss

@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64, 1000])
def test_make_loss_chunked_equals_plain_mean(mlp, chunk_size):
    logits_fn, params, x, y, *_ = mlp
    chunked = make_loss(logits_fn, x, y, chunk_size)(params)
    np.testing.assert_allclose(chunked, plain_loss(logits_fn, params, x, y), rtol=1e-6)


def test_make_loss_gradient_equals_plain_gradient(mlp):
    logits_fn, params, x, y, loss_fn, *_ = mlp
    got = ravel_pytree(jax.grad(loss_fn)(params))[0]
    want = ravel_pytree(jax.grad(lambda p: plain_loss(logits_fn, p, x, y))(params))[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
