"""The loss every curvature tool differentiates: the chunked mean of the run's training loss
(curvature.objectives: cross-entropy or MSE, `Config.loss`), and jit binding.

BatchNorm: the caller passes a `logits_fn` that closes over the running statistics and runs the
model with `train=False`, so the loss is a pure function of the trainable parameters.

Data and params always enter jitted code as arguments (`ChunkedLoss` is a pytree): arrays a jitted
function closes over are embedded in the program as constants, which XLA then constant-folds
(minutes of compile on a 1M-parameter MLP).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.curvature import objectives

Params = Any
LossFn = Callable[[Params], jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


def pad_to_chunks(a: jax.Array, chunk: int) -> jax.Array:
    """Pad the leading axis to a multiple of `chunk` with copies of the first rows, then split it.

    Padding with real examples (weight 0) rather than zeros keeps every logit finite, so the
    zero weights can never meet a NaN/inf.
    """
    pad = -a.shape[0] % chunk
    a = jnp.concatenate([a, a[:pad]]) if pad else a
    return a.reshape((a.shape[0] // chunk, chunk) + a.shape[1:])


@functools.partial(jax.tree_util.register_dataclass, data_fields=("batch_stats",), meta_fields=("apply_fn",))
@dataclasses.dataclass(frozen=True, eq=False)
class BoundLogits:
    """(params, x) -> apply_fn(params, batch_stats, x): a logits_fn whose state is pytree data.

    A plain closure over the BatchNorm statistics is a new function at every measurement, and jitted
    code keyed on it recompiles each time (with the statistics baked in as constants). Built once
    per run from a stable `apply_fn`, a BoundLogits per measurement reuses the compiled programs:
    every jitted curvature function takes it as a traced argument.
    """

    apply_fn: Callable  # (params, batch_stats, x) -> logits, BatchNorm in inference mode
    batch_stats: Any

    def __call__(self, params, x):
        return self.apply_fn(params, self.batch_stats, x)


def jit_with_logits(fn: Callable, **jit_kwargs) -> Callable:
    """jit fn(logits_fn, *args): logits_fn is traced if a BoundLogits, static (hashed) otherwise.

    Pass the names in `static_argnames` by keyword (with static_argnums set, jit does not map them).
    """
    traced = jax.jit(fn, **jit_kwargs)
    static = jax.jit(fn, static_argnums=0, **jit_kwargs)

    @functools.wraps(fn)
    def call(logits_fn, *args, **kwargs):
        return (traced if isinstance(logits_fn, BoundLogits) else static)(logits_fn, *args, **kwargs)

    return call


@dataclasses.dataclass(frozen=True, eq=False)
class ChunkedLoss:
    """params -> mean training loss (`loss`, curvature.objectives) over chunked data (built by `make_loss`).

    A pytree whose leaves are the data (and a BoundLogits' statistics), so jitted code takes it as
    an *argument*: arrays a jitted function closes over become constants that XLA embeds and
    constant-folds (slow compiles, programs the size of the data set).
    """

    logits_fn: Callable
    xs: jax.Array  # (num_chunks, chunk, ...)
    ys: jax.Array  # (num_chunks, chunk)
    ws: jax.Array  # (num_chunks, chunk): 1 for real examples, 0 for padding
    num_examples: int
    remat: bool = True  # checkpoint each chunk: reverse mode keeps one chunk's activations
    loss: str = "cross_entropy"  # a name of curvature.objectives (static: it changes the program)

    def _chunk_sum(self, params, xb, yb, wb):
        return objectives.weighted_sum(self.loss, self.logits_fn(params, xb), yb, wb)

    def __call__(self, params) -> jax.Array:
        if self.xs.shape[0] == 1:
            return self._chunk_sum(params, self.xs[0], self.ys[0], self.ws[0]) / self.num_examples
        chunk_sum = jax.checkpoint(self._chunk_sum) if self.remat else self._chunk_sum

        def body(total, batch):
            return total + chunk_sum(params, *batch), None

        total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (self.xs, self.ys, self.ws))
        return total / self.num_examples


def _flatten_loss(loss: ChunkedLoss):
    """Children: the data, and logits_fn if it is a BoundLogits; anything else is static aux."""
    bound = isinstance(loss.logits_fn, BoundLogits)
    children = (loss.xs, loss.ys, loss.ws, loss.logits_fn if bound else None)
    return children, (None if bound else loss.logits_fn, loss.num_examples, loss.remat, loss.loss)


def _unflatten_loss(aux, children) -> ChunkedLoss:
    static_fn, num_examples, remat, name = aux
    xs, ys, ws, bound_fn = children
    return ChunkedLoss(static_fn if static_fn is not None else bound_fn, xs, ys, ws, num_examples, remat, name)


jax.tree_util.register_pytree_node(ChunkedLoss, _flatten_loss, _unflatten_loss)


def make_loss(logits_fn: Callable, x, y, chunk_size: int, loss: str = "cross_entropy") -> ChunkedLoss:
    """Mean training loss `loss` (curvature.objectives) over all of (x, y), summed chunk by chunk
    with `lax.scan`.

    The last chunk is padded (weight 0) so any n works; the result is the plain mean up to float
    summation order. Each chunk is `jax.checkpoint`-ed, so reverse mode (and hence HVPs) keeps only
    one chunk's activations alive: memory is O(chunk_size), not O(n).
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    chunk = max(1, min(int(chunk_size), n))
    weights = (jnp.arange(-(-n // chunk) * chunk) < n).astype(jnp.float32)
    objectives.per_example(loss)  # an unknown name fails here, not inside a trace
    xs, ys, ws = pad_to_chunks(x, chunk), pad_to_chunks(y, chunk), weights.reshape(-1, chunk)
    return ChunkedLoss(logits_fn, xs, ys, ws, n, loss=loss)


def is_array_tree(obj) -> bool:
    leaves = jax.tree.leaves(obj)
    return bool(leaves) and all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)


def jit_bound(fn: Callable, loss_fn, *bound) -> Callable:
    """jit fn(loss_fn, *bound, *rest), returned as a function of *rest; compiles on first call.

    `bound` (params) and an array-pytree `loss_fn` (a ChunkedLoss) are traced arguments, never
    embedded constants; any other `loss_fn` (a plain function) is closed over.
    """
    if is_array_tree(loss_fn):
        return functools.partial(jax.jit(fn), loss_fn, *bound)
    return functools.partial(jax.jit(functools.partial(fn, loss_fn)), *bound)


def _call(fn, *args):
    return fn(*args)


def loss_value(loss_fn: LossFn, params: Params) -> float:
    """loss_fn(params) as a Python float, jitted with the data as an argument."""
    return float(jit_bound(_call, loss_fn, params)())
