"""crop_flip: shape-preserving, deterministic per key, really random across keys and examples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.data.augment import crop_flip


def _images(n=8, h=8, w=8, c=3):
    return jnp.asarray(np.random.default_rng(0).normal(size=(n, h, w, c)), dtype=jnp.float32)


def test_shape_and_dtype_kept():
    x = _images()
    y = crop_flip(jax.random.key(0), x)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_deterministic_for_a_fixed_key():
    x = _images()
    np.testing.assert_array_equal(crop_flip(jax.random.key(1), x), crop_flip(jax.random.key(1), x))


def test_different_keys_differ():
    x = _images()
    assert not np.array_equal(crop_flip(jax.random.key(1), x), crop_flip(jax.random.key(2), x))


def test_pad_zero_only_flips():
    x = _images(n=32)
    y = np.asarray(crop_flip(jax.random.key(3), x, pad=0))
    flipped = [np.array_equal(yi, xi[:, ::-1]) for xi, yi in zip(np.asarray(x), y)]
    kept = [np.array_equal(yi, xi) for xi, yi in zip(np.asarray(x), y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)  # per-example randomness: both outcomes occur


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = _images(n=16, h=6, w=6, c=1)
    pad = 2
    padded = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    y = np.asarray(crop_flip(jax.random.key(4), x, pad=pad))
    for yi, pi in zip(y, padded):
        windows = [pi[dy : dy + 6, dx : dx + 6] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        assert any(np.array_equal(yi, w) or np.array_equal(yi, w[:, ::-1]) for w in windows)
