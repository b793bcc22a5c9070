"""Keskar et al. 2017's shallow convnet C1 (Table 1, after the cuda-convnet CIFAR net), 1-D or 2-D."""

from __future__ import annotations

import flax.linen as nn

from lbbench.models.norm import GhostBatchNorm


class C1(nn.Module):
    """[Conv(channels, 5) → GhostBatchNorm → ReLU → MaxPool(3, stride 2)] × 2 → Dense 384 → 192 → classes.

    Works on 1-D signals (N, L) or (N, L, C) and on images (N, H, W, C): the kernel rank follows the
    input. Dropout (rate 0.5) precedes each dense layer, as in Keskar et al.'s C1.
    """

    num_classes: int
    channels: int = 64
    dense: tuple[int, int] = (384, 192)
    dropout: float = 0.5
    ghost_batch_size: int = 0

    @nn.compact
    def __call__(self, x, train: bool):
        h = x[..., None] if x.ndim == 2 else x
        spatial = h.ndim - 2
        for _ in range(2):
            h = nn.Conv(self.channels, (5,) * spatial, padding="SAME", use_bias=False)(h)
            h = nn.relu(GhostBatchNorm(self.ghost_batch_size)(h, train=train))
            h = nn.max_pool(h, (3,) * spatial, strides=(2,) * spatial, padding="SAME")
        h = h.reshape((h.shape[0], -1))
        for width in self.dense:
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.num_classes)(h)
