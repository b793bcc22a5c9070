"""Keskar et al. 2017's deep convnet C2 (CIFAR-10; their C4 is the same net on CIFAR-100).

The paper describes this network only briefly (a deep, VGG-style convnet); the layer list here
follows the authors' own code
(`deepnet` in github.com/keskarnitish/large-batch-training, network_zoo.py), itself the
VGG-16 + BatchNorm + dropout CIFAR net of Zagoruyko's cifar.torch (Simonyan & Zisserman 2015,
config D, with Ioffe & Szegedy 2015's BN).
"""

from __future__ import annotations

import flax.linen as nn

from lbbench.models.norm import GhostBatchNorm

# (channels, convs) per stage; a 2x2 max-pool closes each stage (VGG-16, config D)
VGG16_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class C2(nn.Module):
    """VGG-16 convs [Conv3x3 → GhostBN → ReLU (→ Dropout)] + max-pools, then a 512-unit dense head.

    Head: Dropout → Dense 512 → GhostBN → ReLU → Dropout → Dense(num_classes).

    As in the authors' code: every conv but the last of a stage is followed by dropout (0.3 in the
    first stage, 0.4 after), the flattened features get dropout 0.5 before and after the 512-unit
    dense layer. Choices of ours: convs have no bias (BN follows), pools use SAME padding so
    28x28 inputs work (28→14→7→4→2→1), and `width_multiplier` scales every channel count and the
    dense width (at least 1 unit) for tiny test variants; `stages` can also be shortened.
    """

    num_classes: int
    ghost_batch_size: int = 0
    width_multiplier: float = 1.0
    stages: tuple[tuple[int, int], ...] = VGG16_STAGES
    dense: int = 512
    conv_dropout: tuple[float, float] = (0.3, 0.4)  # first stage, later stages
    dense_dropout: float = 0.5

    def _width(self, channels: int) -> int:
        return max(1, int(round(channels * self.width_multiplier)))

    @nn.compact
    def __call__(self, x, train: bool):
        h = x
        for s, (channels, convs) in enumerate(self.stages):
            for i in range(convs):
                h = nn.Conv(self._width(channels), (3, 3), padding="SAME", use_bias=False)(h)
                h = nn.relu(GhostBatchNorm(self.ghost_batch_size)(h, train=train))
                if i < convs - 1:
                    h = nn.Dropout(self.conv_dropout[min(s, 1)], deterministic=not train)(h)
            h = nn.max_pool(h, (2, 2), strides=(2, 2), padding="SAME")
        h = h.reshape((h.shape[0], -1))
        h = nn.Dropout(self.dense_dropout, deterministic=not train)(h)
        h = nn.Dense(self._width(self.dense), use_bias=False)(h)
        h = nn.relu(GhostBatchNorm(self.ghost_batch_size)(h, train=train))
        h = nn.Dropout(self.dense_dropout, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(h)


__all__ = ["C2", "VGG16_STAGES"]
