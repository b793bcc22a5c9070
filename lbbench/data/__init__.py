"""Datasets by name: the embedded defaults and the real datasets in their standard formats."""

from __future__ import annotations

from lbbench.config import default_cache_dir
from lbbench.data import embedded, real
from lbbench.data.dataset import DataError, Dataset


def load(name: str, cache_dir: str | None = None, download: bool = True, validation: int = 0) -> Dataset:
    """Load dataset `name` (see config.DATASETS) with `validation` held-out examples; raise DataError
    with a how-to-fix message. Embedded datasets generate their validation set apart; real ones carve
    it, seeded, from their training set (they ship train and test only).

    `cache_dir` None or "" (a Config's unset `data_dir`) means the CLI's default, config.default_cache_dir()
    ($LBBENCH_CACHE, else ~/.cache/lbbench), never the current directory. For a finished run's own data
    (its validation split and training subset), use `load_for(cfg)`."""
    cache_dir = cache_dir or default_cache_dir()
    if name == "mnist1d":
        return embedded.load_mnist1d(cache_dir, num_val=validation)
    if name == "random":
        return embedded.load_random_toy(num_val=validation)
    loaders = {
        "mnist": real.load_mnist,
        "fashion_mnist": real.load_fashion_mnist,
        "cifar10": real.load_cifar10,
        "cifar100": real.load_cifar100,
    }
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}")
    return loaders[name](cache_dir, download=download).carve_validation(validation)


def load_for(cfg, download: bool | None = None) -> Dataset:
    """The data a run with Config `cfg` trains on: its dataset, validation set held out, training subset
    taken. One place, so a later reader (interpolation, instruments) sees the run's own training set."""
    download = cfg.download if download is None else download
    ds = load(cfg.dataset, cfg.cache_dir, download=download, validation=cfg.validation_examples)
    return ds.subset(cfg.train_subset)


__all__ = ["DataError", "Dataset", "load", "load_for"]
