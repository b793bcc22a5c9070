"""One epoch of a group of trials, compiled: the shuffle, the scan over steps, and the evaluation.

The dataset stays resident on device; an epoch is one compiled shuffle plus one or more compiled
`lax.scan` segments of the vmapped train step (training/step.py), cut only where the host needs
the state (instruments, mid-epoch evaluation). Evaluation is a chunked scan over a padded set,
vmapped over the trials; it reports the run's training loss (Config.loss, curvature.objectives).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.curvature import objectives
from lbbench.training.state import TrainState
from lbbench.training.step import StepSpec

EVAL_CHUNK = 1000
SUBSET_SEED = 20170315  # fixed: every run reports train metrics on the same train subset


def _epoch_indices(rng, n: int, steps: int, batch: int):
    """(new rng, batch indices (steps, batch), per-step keys (steps, 2)) of one trial's epoch."""
    rng, perm_key, step_key = jax.random.split(rng, 3)
    idx = jax.random.permutation(perm_key, n)[: steps * batch].reshape(steps, batch)
    return rng, idx, jax.random.split(step_key, steps)


def make_shuffle(num_train: int, steps: int, spec: StepSpec):
    """state -> (state, batch indices, step keys) of the next epoch: shuffle, drop the remainder.

    Each trial draws its order from its own key. With `shared_data` the trials' keys are equal (one
    seed), so one order is kept (steps, B) and each batch is later gathered once for all trials;
    otherwise the indices are (steps, trials, B).
    """

    def shuffle(state: TrainState):
        draw = lambda r: _epoch_indices(r, num_train, steps, spec.batch_size)
        rng, idx, keys = jax.vmap(draw)(state.rng)
        if spec.shared_data:
            idx, keys = idx[0], keys[0]
        else:  # scan over steps: move the trials axis behind it
            idx, keys = jnp.swapaxes(idx, 0, 1), jnp.swapaxes(keys, 0, 1)
        return state.replace(rng=rng), idx, keys

    return shuffle


def make_segment(train_step, length: int, spec: StepSpec, batch_sharding):
    """`length` steps of every trial from `offset` in the epoch's order: a `lax.scan` of the step.

    The dataset stays resident on device and is an *argument* (closed-over arrays would be baked
    into the program as constants); each step gathers its batch and constrains it to be split along
    the mesh's data axis, so every device computes on its own share. With `shared_data` the batch is
    gathered (and augmented) once and broadcast: the first layer of all trials is one wide matmul.
    Several trials run the step vmapped; one trial runs it unbatched (`spec.single`), its trials
    axis taken off around the scan. With the noise scale on, the scan runs blocks of `noise_every`
    steps whose first step measures it (`spec.noise_every`, counted from the segment's start), so
    measuring is static and no step pays for a branch.
    """
    shared = spec.shared_data
    in_axes = (0, None if shared else 0, None if shared else 0, None if shared else 0)  # state, x, y, key
    spec_batch = batch_sharding(trial_axis=not shared)
    every = spec.noise_every if spec.groups > 1 else 0

    def augment(key, xb):
        if spec.augment is None:
            return xb
        return spec.augment(key, xb) if shared else jax.vmap(spec.augment)(key, xb)

    def segment(state: TrainState, offset, idx, keys, x_train, y_train):
        def one(st, inputs, measure: bool):
            batch_idx, k = inputs
            split = jax.random.split(k) if shared else jax.vmap(jax.random.split)(k)
            aug_key, k = (split[0], split[1]) if shared else (split[:, 0], split[:, 1])
            xb = jax.lax.with_sharding_constraint(x_train[batch_idx], spec_batch)
            yb = jax.lax.with_sharding_constraint(y_train[batch_idx], spec_batch)
            step = functools.partial(train_step, measure=measure)
            step_all = step if spec.single else jax.vmap(step, in_axes=in_axes)
            return step_all(st, augment(aug_key, xb), yb, k)

        inputs = (jax.lax.dynamic_slice_in_dim(idx, offset, length), jax.lax.dynamic_slice_in_dim(keys, offset, length))
        if not spec.single:
            return scan_in_blocks(one, state, inputs, length, every)
        state, metrics = scan_in_blocks(one, trial_axis_off(state), inputs, length, every)
        return trial_axis_on(state), jax.tree.map(lambda m: m[:, None], metrics)

    return segment


def scan_in_blocks(one, state, inputs, length: int, every: int):
    """`length` steps `one(state, inputs_t, measure)`; with `every` > 0, in blocks of `every` steps whose
    first step has measure=True (the last block may be shorter). Static: the program holds one measured
    and one plain step; the plain steps of a block run in a loop whose trip count is traced, so the
    shorter last block needs no third copy of the step."""

    def at(t):
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=False), inputs)

    if not every:
        return jax.lax.scan(lambda c, x: one(c, x, False), state, inputs)
    shapes = jax.eval_shape(lambda st: one(st, at(0), False)[1], state)
    buffers = jax.tree.map(lambda sd: jnp.zeros((length,) + sd.shape, sd.dtype), shapes)

    def put(bufs, t, metrics):
        return jax.tree.map(lambda b, m: jax.lax.dynamic_update_index_in_dim(b, m, t, 0), bufs, metrics)

    def plain(t, carry):
        st, bufs = carry
        st, m = one(st, at(t), False)
        return st, put(bufs, t, m)

    def block(carry, start):
        st, bufs = carry
        st, m = one(st, at(start), True)
        carry = jax.lax.fori_loop(start + 1, jnp.minimum(start + every, length), plain, (st, put(bufs, start, m)))
        return carry, None

    starts = jnp.arange(0, length, every, dtype=jnp.int32)
    (state, buffers), _ = jax.lax.scan(block, (state, buffers), starts)
    return state, buffers


def trial_axis_off(tree):
    """A group of one trial without its trials axis."""
    return jax.tree.map(lambda a: a[0], tree)


def trial_axis_on(tree):
    """The trials axis (of length one) back on."""
    return jax.tree.map(lambda a: a[None], tree)


def make_evaluate(model, chunk: int, loss: str = "cross_entropy"):
    """Mean loss `loss` (curvature.objectives) and argmax accuracy over (x, y, mask) arrays padded
    to a multiple of `chunk`."""

    def evaluate(params, batch_stats, x, y, mask):
        def body(carry, batch):
            xb, yb, mb = batch
            logits = model.apply({"params": params, "batch_stats": batch_stats}, xb, train=False)
            correct = jnp.argmax(logits, -1) == yb
            return (carry[0] + objectives.weighted_sum(loss, logits, yb, mb), carry[1] + jnp.sum(correct * mb)), None

        shape = lambda a: a.reshape((-1, chunk) + a.shape[1:])
        (loss_sum, correct), _ = jax.lax.scan(body, (0.0, 0.0), (shape(x), shape(y), shape(mask)))
        total = jnp.sum(mask)
        return loss_sum / total, correct / total

    return evaluate


def make_evaluate_trials(model, chunk: int, loss: str = "cross_entropy"):
    """`make_evaluate` vmapped over the trials axis of params and batch statistics (data shared)."""
    return jax.vmap(make_evaluate(model, chunk, loss), in_axes=(0, 0, None, None, None))


def _padded(x: np.ndarray, y: np.ndarray, chunk: int):
    """Pad to a multiple of `chunk` with a 0/1 mask so evaluation sees every example exactly once."""
    pad = (-len(x)) % chunk
    mask = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    yp = np.concatenate([y, np.zeros(pad, y.dtype)])
    return xp, yp, mask


def eval_sets(ds, train_examples: int, put) -> dict:
    """{"train": (chunk, padded arrays), "val": ..., "test": ...}: the fixed train subset every run
    reports its train metrics on (same seed for every run), the validation set if the dataset has
    one, and the full test set, placed with `put`."""
    sub = np.random.default_rng(SUBSET_SEED).permutation(ds.num_train)[:train_examples]
    sets = [("train", (ds.x_train[sub], ds.y_train[sub]))]
    if ds.num_val:
        sets.append(("val", (ds.x_val, ds.y_val)))
    sets.append(("test", (ds.x_test, ds.y_test)))
    out = {}
    for name, (x, y) in sets:
        chunk = min(EVAL_CHUNK, len(y))
        out[name] = (chunk, tuple(put(a) for a in _padded(x, y, chunk)))
    return out
