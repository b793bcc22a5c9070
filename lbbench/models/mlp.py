"""Fully-connected models: the default MLP and Keskar et al. 2017's F1 (Table 1)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from lbbench.models.norm import GhostBatchNorm


class MLP(nn.Module):
    """Flatten → [Dense → (GhostBatchNorm) → ReLU] × len(hidden) → Dense(num_classes).

    With `batch_norm=True` and five layers of 512 this is Keskar et al.'s F1 network.
    """

    num_classes: int
    hidden: Sequence[int] = (256, 256)
    batch_norm: bool = False
    ghost_batch_size: int = 0

    @nn.compact
    def __call__(self, x, train: bool):
        h = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            h = nn.Dense(width, use_bias=not self.batch_norm)(h)
            if self.batch_norm:
                h = GhostBatchNorm(self.ghost_batch_size)(h, train=train)
            h = nn.relu(h)
        return nn.Dense(self.num_classes)(h)
