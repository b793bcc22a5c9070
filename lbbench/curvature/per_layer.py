"""Per-layer curvature: λ_max and trace of each layer's diagonal Hessian block H_ll.

A layer is a top-level entry of the parameter tree (e.g. `Dense_0`, `GhostBatchNorm_2`). The block
product H_ll v_l is the full HVP of v_l padded with zeros, restricted back to the layer's entries,
so the same jitted matvec serves every layer (PyHessian reports the same per-block quantities).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lbbench.curvature.lanczos import top_eigenvalues_mv
from lbbench.curvature.trace import hutchinson_mv


def layer_indices(params) -> dict[str, np.ndarray]:
    """Flat indices (in `ravel_pytree` order) of each top-level parameter group."""
    names = sorted({jax.tree_util.keystr(path[:1]) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]})
    ids = jax.tree_util.tree_map_with_path(
        lambda path, x: np.full(np.shape(x), names.index(jax.tree_util.keystr(path[:1])), np.float32), params
    )
    flat_ids = np.asarray(ravel_pytree(ids)[0])
    return {name.strip("[]'\""): np.nonzero(flat_ids == i)[0] for i, name in enumerate(names)}


def block_matvec(matvec, idx: np.ndarray, n: int, dtype):
    """v_l -> (H_ll v_l): pad into the full space, multiply, read the layer's entries back."""
    idx = jnp.asarray(idx)
    embed = jax.jit(lambda v: jnp.zeros((n,), dtype).at[idx].set(v))
    take = jax.jit(lambda w: w[idx])
    return lambda v: take(matvec(embed(v)))


def per_layer(matvec, params, n: int, dtype, lanczos_iters: int, probes: int, key) -> dict:
    """{layer: {"lambda_max", "trace", "trace_stderr", "num_params"}} from the full-model matvec."""
    out = {}
    for i, (name, idx) in enumerate(layer_indices(params).items()):
        mv = block_matvec(matvec, idx, n, dtype)
        k = jax.random.fold_in(key, i)
        iters = min(lanczos_iters, len(idx))
        row = {
            "num_params": int(len(idx)),
            "lambda_max": float(top_eigenvalues_mv(mv, len(idx), dtype, 1, iters, k)[0]),
        }
        if probes:
            row["trace"], row["trace_stderr"] = hutchinson_mv(mv, len(idx), dtype, probes, jax.random.fold_in(k, 1))
        out[name] = row
    return out
