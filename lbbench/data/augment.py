"""On-device data augmentation, jittable, one random draw per example from a single key."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.jit, static_argnames="pad")
def crop_flip(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """The standard CIFAR augmentation: random crop after zero padding, random horizontal flip.

    Each image (N, H, W, C) is zero-padded by `pad` pixels per side, an H x W window is cut at an
    offset drawn uniformly from {0..2*pad}^2, and the result is mirrored left-right with
    probability 1/2 (He et al. 2016, Sec. 4.2, after Lee et al. 2015). Padding happens on the
    standardised images, so the border is the training-set mean colour. Per-example randomness
    comes from `jax.random.split(key, N)`: the same key always gives the same batch.
    """
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return jax.vmap(functools.partial(_crop_flip_one, size=(h, w, c), pad=pad))(jax.random.split(key, n), padded)


def _crop_flip_one(key: jax.Array, padded: jax.Array, size: tuple[int, int, int], pad: int) -> jax.Array:
    """Crop one padded (H+2p, W+2p, C) image back to `size` at a random offset, maybe mirror it."""
    crop_key, flip_key = jax.random.split(key)
    dy, dx = jax.random.randint(crop_key, (2,), 0, 2 * pad + 1)
    crop = jax.lax.dynamic_slice(padded, (dy, dx, 0), size)
    return jnp.where(jax.random.bernoulli(flip_key), crop[:, ::-1, :], crop)
