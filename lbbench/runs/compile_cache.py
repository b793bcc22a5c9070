"""JAX's persistent compilation cache, on by default for the commands: a program compiled once (same
computation, shapes, JAX version and device) is read back by every later run, seed group and sweep
process instead of being compiled again — the training epoch, the evaluation and the Hessian-vector
products alike.

Where: `$LBBENCH_COMPILE_CACHE` if set (`0` turns the cache off), else `jax/` in the data cache
(`--data_dir`, `$LBBENCH_CACHE` or ~/.cache/lbbench). JAX keys every entry by the program and its
compiler, so a stale entry is never used; deleting the folder only costs compile time.
"""

from __future__ import annotations

import os

import jax

from lbbench.config import default_cache_dir

ENV = "LBBENCH_COMPILE_CACHE"
MIN_COMPILE_S = 0.2  # programs that compile faster are not worth a file


def location(data_dir: str = "") -> str | None:
    """The cache folder the commands use, or None when `$LBBENCH_COMPILE_CACHE=0` turns it off."""
    setting = os.environ.get(ENV, "")
    if setting == "0":
        return None
    return setting or os.path.join(data_dir or default_cache_dir(), "jax")


def enable(data_dir: str = "", min_compile_s: float = MIN_COMPILE_S) -> str | None:
    """Point JAX's persistent compilation cache at `location(data_dir)`; returns the folder (or None)."""
    path = location(data_dir)
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_s)
    return path
