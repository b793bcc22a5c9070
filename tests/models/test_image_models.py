"""C2 (VGG-style) and the CIFAR ResNet: output shapes, train mode, ghost batch norm.

Shape checks use `jax.eval_shape` (no compilation, so even the full-size nets are cheap); the
numeric checks run the smallest variants, each initialised once per module.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lbbench.models.resnet import ResNet20
from lbbench.models.vgg import C2

SHAPES = [(2, 32, 32, 3), (2, 28, 28, 1)]
MODELS = {
    "c2": lambda g=0: C2(num_classes=10, ghost_batch_size=g),
    "c2_tiny": lambda g=0: C2(num_classes=10, ghost_batch_size=g, width_multiplier=1 / 16),
    "resnet20": lambda g=0: ResNet20(num_classes=10, ghost_batch_size=g),
    "resnet_tiny": lambda g=0: ResNet20(num_classes=10, ghost_batch_size=g, blocks_per_stage=1, width=4),
    "resnet_tiny_b": lambda g=0: ResNet20(
        num_classes=10, ghost_batch_size=g, blocks_per_stage=1, width=4, shortcut="B"
    ),
}
# the numeric tests: as small as the architectures allow (two C2 stages, one block per ResNet stage)
SMALL = {
    "c2": lambda g=0: C2(
        num_classes=10, ghost_batch_size=g, width_multiplier=1 / 16, stages=((64, 2), (128, 1)), dense=128
    ),
    "resnet": MODELS["resnet_tiny"],
    "resnet_b": MODELS["resnet_tiny_b"],
}
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _param_count(variables) -> int:
    return sum(p.size for p in jax.tree_util.tree_leaves(variables["params"]))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", SHAPES)
def test_output_shapes(name, shape):
    model, x = MODELS[name](), jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(functools.partial(model.init, train=False), RNGS, x)
    logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert set(variables) == {"params", "batch_stats"}


def test_full_size_parameter_counts():
    """ResNet-20 has 0.27M parameters (He et al. 2016, Table 6); C2 is VGG-16-sized (~15M)."""
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    count = {
        name: _param_count(jax.eval_shape(functools.partial(MODELS[name]().init, train=False), RNGS, x))
        for name in MODELS
    }
    assert 0.26e6 < count["resnet20"] < 0.28e6
    assert 14e6 < count["c2"] < 16e6
    assert count["c2_tiny"] < 0.1e6 and count["resnet_tiny"] < 0.01e6
    assert count["resnet_tiny_b"] > count["resnet_tiny"]  # projections add weights, option A none


def _numpy_init(model, x, seed: int = 0):
    """Variables shaped as `model.init` would make them, filled from numpy.

    Compiling jax.random for every parameter shape costs seconds per shape on a small CPU box;
    `init` itself is traced in test_output_shapes, so the numeric tests skip it.
    """
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(functools.partial(model.init, train=False), RNGS, x)
    fill = {"mean": np.zeros, "var": np.ones, "scale": np.ones}

    def leaf(path, s):
        name = path[-1].key
        if name in fill:
            return jnp.asarray(fill[name](s.shape, np.float32))
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(np.prod(s.shape[:-1]) or 1), s.shape).astype(np.float32))

    return jax.tree_util.tree_map_with_path(leaf, shapes)


@pytest.fixture(scope="module")
def initialised():
    """Variables of every SMALL model for a 28x28x1 batch of 4."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 28, 28, 1)).astype(np.float32))
    return x, {name: _numpy_init(SMALL[name](), x) for name in SMALL}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_eval_and_train_modes(name, initialised):
    x, all_variables = initialised
    model, variables = SMALL[name](), all_variables[name]
    logits = model.apply(variables, x, train=False)
    assert logits.shape == (4, 10) and bool(jnp.all(jnp.isfinite(logits)))
    logits, updates = model.apply(
        variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)}
    )
    assert logits.shape == (4, 10) and bool(jnp.all(jnp.isfinite(logits)))
    before = jax.tree_util.tree_leaves(variables["batch_stats"])
    after = jax.tree_util.tree_leaves(updates["batch_stats"])
    assert len(before) == len(after) and any(not jnp.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_ghost_batch_norm_groups(name, initialised):
    x, all_variables = initialised
    variables = all_variables[name]
    kw = {"train": True, "mutable": ["batch_stats"], "rngs": {"dropout": jax.random.key(5)}}
    y_ghost, _ = SMALL[name](2).apply(variables, x, **kw)
    y_plain, _ = SMALL[name](0).apply(variables, x, **kw)
    assert y_ghost.shape == (4, 10)
    assert not jnp.allclose(y_ghost, y_plain)  # statistics over pairs, not over the batch of 4
    with pytest.raises(ValueError, match="ghost batch size"):
        SMALL[name](3).apply(variables, x, **kw)
