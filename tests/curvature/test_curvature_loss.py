"""lbbench.curvature.loss: the chunked loss equals the plain mean and its gradient."""

import jax
import numpy as np
import pytest
from _curvature_toys import mlp, plain_loss  # noqa: F401 (mlp is a fixture)
from jax.flatten_util import ravel_pytree

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


def test_bound_logits_are_traced_not_recompiled():
    """A BoundLogits per measurement (new BatchNorm statistics each time) reuses the compiled
    programs, and gives the same numbers as a closure over the same statistics."""
    from _curvature_toys import TinyBNNet, data

    from lbbench.curvature.batch_sharpness import batch_sharpness, split_batches
    from lbbench.curvature.loss import BoundLogits, loss_value

    x, y = data(seed=3)
    model = TinyBNNet()
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    traces = []

    def apply_fn(p, bs, xb):
        traces.append(1)  # runs only while tracing
        return model.apply({"params": p, "batch_stats": bs}, xb, train=False)

    params = variables["params"]
    stats = [jax.tree.map(lambda s, k=k: s + 0.3 * k, variables["batch_stats"]) for k in (1, 2)]
    xs, ys = split_batches(x, y, 16)
    got = []
    for bs in stats:
        got.append(batch_sharpness(BoundLogits(apply_fn, bs), params, xs, ys))
        if len(got) == 1:
            traced_once = len(traces)
    assert len(traces) == traced_once  # the second statistics compiled nothing new
    assert got[0][0] != got[1][0]  # and they were really used
    closure = lambda p, xb: model.apply({"params": p, "batch_stats": stats[1]}, xb, train=False)  # noqa: E731
    np.testing.assert_allclose(got[1], batch_sharpness(closure, params, xs, ys), rtol=1e-5)
    bound = BoundLogits(apply_fn, stats[1])
    np.testing.assert_allclose(
        loss_value(make_loss(bound, x, y, 16), params), loss_value(make_loss(closure, x, y, 16), params), rtol=1e-6
    )
