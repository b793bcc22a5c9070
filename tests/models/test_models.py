"""Model shapes, and ghost batch norm against flax's own BatchNorm."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lbbench.config import MODELS
from lbbench.models import build_model
from lbbench.models.norm import GhostBatchNorm

INPUTS = {"1d": (4, 40), "image": (4, 32, 32, 3), "gray": (4, 28, 28, 1)}
SHAPES = {name: ["1d"] for name in ("mlp", "bn_mlp", "f1", "c1", "tiny_mlp", "tiny_bn_mlp", "tiny_c1")}
SHAPES.update(
    {
        "c1": ["1d", "image"],
        "tiny_c1": ["1d", "image", "gray"],
        "tiny_mlp": ["1d", "image"],
        "c2": ["image"],
        "tiny_c2": ["image", "gray"],
        "resnet20": ["image"],
        "tiny_resnet": ["image", "gray"],
    }
)


@pytest.mark.parametrize("name, kind", [(n, k) for n in MODELS for k in SHAPES[n]])
def test_output_shapes(name, kind):
    """Shapes only (jax.eval_shape: traced, not compiled, so the full-size models stay cheap)."""
    model = build_model(name, num_classes=7)
    x = jax.ShapeDtypeStruct(INPUTS[kind], jnp.float32)
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), x)
    assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape == (4, 7)
    train_out = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)}),
        variables,
        x,
    )
    assert train_out[0].shape == (4, 7)


def _bn_pair(x, ghost):
    gbn = GhostBatchNorm(ghost)
    v = gbn.init(jax.random.PRNGKey(0), x, train=True)
    return gbn.apply(v, x, train=True, mutable=["batch_stats"])


@pytest.mark.parametrize("ghost", [0, 16])
def test_ghost_size_equal_to_batch_is_plain_batchnorm(ghost):
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 6)) * 3 + 1
    y, stats = _bn_pair(x, ghost)
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    y_ref, ref = bn.apply(bn.init(jax.random.PRNGKey(0), x), x, mutable=["batch_stats"])
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(stats["batch_stats"][k], ref["batch_stats"][k], rtol=1e-5)


def test_ghost_groups_normalise_each_group_on_its_own():
    x = jax.random.normal(jax.random.PRNGKey(1), (12, 5, 3)) * 2 - 1
    y, stats = _bn_pair(x, 4)
    groups = [_bn_pair(x[i : i + 4], 0) for i in range(0, 12, 4)]
    np.testing.assert_allclose(y, jnp.concatenate([g[0] for g in groups]), atol=1e-5)
    # running statistics: the mean of the three groups' updates (Hoffer et al. 2017)
    mean_update = np.mean([g[1]["batch_stats"]["mean"] for g in groups], axis=0)
    np.testing.assert_allclose(stats["batch_stats"]["mean"], mean_update, rtol=1e-5, atol=1e-7)


def test_ghost_size_must_divide_batch():
    with pytest.raises(ValueError, match="does not divide"):
        _bn_pair(jnp.ones((10, 3)), 4)


def test_inference_mode_uses_running_statistics():
    gbn = GhostBatchNorm(0)
    x = jnp.arange(12.0).reshape(4, 3)
    v = gbn.init(jax.random.PRNGKey(0), x, train=False)
    v = {"params": v["params"], "batch_stats": {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 4.0, 4.0])}}
    expected = (x - v["batch_stats"]["mean"]) / jnp.sqrt(4.0 + 1e-5)
    np.testing.assert_allclose(gbn.apply(v, x, train=False), expected, rtol=1e-6)


def test_bn_mlp_is_the_default_mlp_with_batch_norm():
    x = jax.ShapeDtypeStruct(INPUTS["1d"], jnp.float32)
    rngs = {"params": jax.random.PRNGKey(0)}
    shapes = {
        n: jax.eval_shape(lambda x, n=n: build_model(n, 10).init(rngs, x, train=False), x) for n in ("mlp", "bn_mlp")
    }
    kernels = lambda v: [v["params"][f"Dense_{i}"]["kernel"].shape for i in range(3)]
    assert kernels(shapes["bn_mlp"]) == kernels(shapes["mlp"]) == [(40, 256), (256, 256), (256, 10)]
    assert set(shapes["bn_mlp"]["batch_stats"]) == {"GhostBatchNorm_0", "GhostBatchNorm_1"}
