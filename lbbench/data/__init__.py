"""Datasets by name: the embedded defaults and the real datasets in their standard formats."""

from __future__ import annotations

from lbbench.data import embedded, real
from lbbench.data.dataset import DataError, Dataset


def load(name: str, cache_dir: str, download: bool = True) -> Dataset:
    """Load dataset `name` (see config.DATASETS); raise DataError with a how-to-fix message."""
    if name == "mnist1d":
        return embedded.load_mnist1d(cache_dir)
    if name == "random":
        return embedded.load_random_toy()
    loaders = {
        "mnist": real.load_mnist,
        "fashion_mnist": real.load_fashion_mnist,
        "cifar10": real.load_cifar10,
        "cifar100": real.load_cifar100,
    }
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}")
    return loaders[name](cache_dir, download=download)


__all__ = ["DataError", "Dataset", "load"]
