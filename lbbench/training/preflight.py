"""Checks that run before any training, so nothing fails after minutes of work that could fail now.

* `check_data_paths(cfg)`: --data_dir and every file the dataset will read must be of the right kind
  (a directory where a directory is expected, a file where a file is expected). Otherwise the
  loader would fail with IsADirectoryError/NotADirectoryError (exit 1, a Python error name).
* `check_model_input(cfg, model, ds)`: `jax.eval_shape` of the model's init on the dataset's input
  shape. It costs no FLOPs and catches a model that cannot take the inputs before any compilation.

Both raise ConfigError (exit 2) naming the flag and the path or shapes involved.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from lbbench.config import Config, ConfigError
from lbbench.data import embedded, real


def _expected_files(cfg: Config) -> list[str]:
    """Paths the dataset loader will read or create (relative to the data directory)."""
    if cfg.dataset == "mnist1d":
        return [f"mnist1d_{embedded.MNIST1D_TRAIN}_{embedded.MNIST1D_TEST}_seed{embedded.MNIST1D_SEED}.npz"]
    if cfg.dataset in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        return [os.path.join(cfg.dataset, f) for f in real.SPECS[cfg.dataset].files]
    return []


def check_data_paths(cfg: Config) -> None:
    """Raise ConfigError('data_dir', ...) if a data path exists but is of the wrong kind."""
    files = _expected_files(cfg)
    if not files:
        return
    root = cfg.cache_dir
    if os.path.exists(root) and not os.path.isdir(root):
        raise ConfigError("data_dir", f"{root} is a file, but the data directory must be a directory")
    for rel in files:
        parts = rel.split(os.sep)
        for i in range(1, len(parts)):  # the folders on the way must be folders
            d = os.path.join(root, *parts[:i])
            if os.path.exists(d) and not os.path.isdir(d):
                raise ConfigError(
                    "data_dir",
                    f"{d} is a file, but it must be the directory holding {cfg.dataset}'s files; remove or move it",
                )
        path = os.path.join(root, rel)
        if os.path.isdir(path):
            raise ConfigError(
                "data_dir",
                f"{path} is a directory, but it must be the data file {os.path.basename(path)}; remove or move it",
            )
        if os.path.exists(path) and not os.access(path, os.R_OK):
            raise ConfigError("data_dir", f"{path} is not readable")


def check_model_input(cfg: Config, model, ds) -> None:
    """Raise ConfigError('model', ...) if `model` cannot be initialised on the dataset's inputs."""
    x = jax.ShapeDtypeStruct((2,) + tuple(ds.input_shape), jnp.float32)

    def init(x):
        keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
        return model.init(keys, x, train=False)

    try:
        jax.eval_shape(init, x)
    except Exception as e:  # noqa: BLE001 - any failure here means the pair cannot train
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConfigError(
            "model",
            f"{cfg.model} cannot take {cfg.dataset}'s inputs of shape "
            f"{tuple(ds.input_shape)} ({type(e).__name__}: {detail}); choose a model "
            "that fits this dataset",
        ) from None
