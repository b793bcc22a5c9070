"""The CIFAR ResNet of He et al. 2016 ("Deep Residual Learning", Sec. 4.2): ResNet-(6n+2).

3x3 conv with `width` filters, then three stages of n basic blocks with width, 2*width, 4*width
filters (16/32/64 for the paper's nets), the first block of stages 2 and 3 halving the feature map
with stride 2, then global average pooling and a dense layer. n = 3 gives ResNet-20.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from lbbench.models.norm import GhostBatchNorm

_he_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # He et al. 2015


def _conv(features: int, strides: int = 1, kernel: int = 3) -> nn.Conv:
    """Bias-free conv (the BN after it has the bias), He-initialised, SAME padding."""
    return nn.Conv(
        features, (kernel, kernel), strides=(strides, strides), padding="SAME", use_bias=False, kernel_init=_he_init
    )


class BasicBlock(nn.Module):
    """conv3x3 → BN → ReLU → conv3x3 → BN, plus the shortcut, then ReLU (He et al. 2016, Fig. 2).

    Shortcut when the shape changes: option "A" (the paper's CIFAR choice) subsamples the input
    with stride 2 and zero-pads the new channels, adding no parameters; option "B" is a 1x1
    strided conv + BN projection.
    """

    features: int
    strides: int = 1
    shortcut: str = "A"
    ghost_batch_size: int = 0

    @nn.compact
    def __call__(self, x, train: bool):
        h = _conv(self.features, self.strides)(x)
        h = nn.relu(GhostBatchNorm(self.ghost_batch_size)(h, train=train))
        h = _conv(self.features)(h)
        h = GhostBatchNorm(self.ghost_batch_size)(h, train=train)
        return nn.relu(h + self._shortcut(x, train))

    def _shortcut(self, x, train: bool):
        if self.strides == 1 and x.shape[-1] == self.features:
            return x
        if self.shortcut == "B":
            return GhostBatchNorm(self.ghost_batch_size)(_conv(self.features, self.strides, 1)(x), train=train)
        if self.shortcut != "A":
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.features - x.shape[-1]
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet; defaults are ResNet-20 (3 blocks per stage, 16/32/64 channels).

    `blocks_per_stage` = n sets the depth 6n+2 (n=1, width=4 is a tiny test variant) and `width`
    the first stage's channels. Works for 32x32x3 and 28x28x1 inputs alike (global pooling).
    """

    num_classes: int
    ghost_batch_size: int = 0
    blocks_per_stage: int = 3
    width: int = 16
    shortcut: str = "A"

    @nn.compact
    def __call__(self, x, train: bool):
        h = _conv(self.width)(x)
        h = nn.relu(GhostBatchNorm(self.ghost_batch_size)(h, train=train))
        for stage in range(3):
            for block in range(self.blocks_per_stage):
                strides = 2 if stage > 0 and block == 0 else 1
                h = BasicBlock(self.width * 2**stage, strides, self.shortcut, self.ghost_batch_size)(h, train=train)
        h = jnp.mean(h, axis=(1, 2))
        return nn.Dense(self.num_classes)(h)


__all__ = ["BasicBlock", "ResNet20"]
