"""Flax linen models by name. Every model is `Module(x, train: bool) -> logits`."""

from __future__ import annotations

import flax.linen as nn

from lbbench.models.convnet import C1
from lbbench.models.mlp import MLP
from lbbench.models.resnet import ResNet20
from lbbench.models.vgg import C2


def build_model(name: str, num_classes: int, ghost_batch_size: int = 0) -> nn.Module:
    """Instantiate model `name` (see config.MODELS); tiny_* variants are for tests."""
    g = ghost_batch_size
    if name in ("c2", "tiny_c2"):
        return C2(
            num_classes=num_classes, ghost_batch_size=g, **({"width_multiplier": 0.0625} if name == "tiny_c2" else {})
        )
    if name in ("resnet20", "tiny_resnet"):
        return ResNet20(num_classes=num_classes, ghost_batch_size=g, **(_TINY_RESNET if name == "tiny_resnet" else {}))
    builders = {
        "mlp": lambda: MLP(num_classes, hidden=(256, 256)),
        # the default MLP with (ghost) BatchNorm after each hidden layer: a BatchNorm workload on MNIST-1D
        "bn_mlp": lambda: MLP(num_classes, hidden=(256, 256), batch_norm=True, ghost_batch_size=g),
        "f1": lambda: MLP(num_classes, hidden=(512,) * 5, batch_norm=True, ghost_batch_size=g),
        "c1": lambda: C1(num_classes, ghost_batch_size=g),
        "tiny_mlp": lambda: MLP(num_classes, hidden=(16,)),
        "tiny_bn_mlp": lambda: MLP(num_classes, hidden=(16, 16), batch_norm=True, ghost_batch_size=g),
        "tiny_c1": lambda: C1(num_classes, channels=4, dense=(16, 8), ghost_batch_size=g),
    }
    if name not in builders:
        raise ValueError(f"unknown model {name!r}")
    return builders[name]()


_TINY_RESNET = {"blocks_per_stage": 1, "width": 4}


def uses_batch_norm(name: str) -> bool:
    return name not in ("mlp", "tiny_mlp")
