"""Compiled pieces of training: the train state, one step, one epoch as a lax.scan, evaluation.

Everything here is pure and runs inside `jit`; train.py only orchestrates. The batch of each step
is split into `noise_scale_groups` sub-batches whose gradients are taken side by side (vmap), so the
gradient noise scale (McCandlish et al. 2018) costs no extra forward/backward pass: the mean of the
sub-batch gradients *is* the full-batch gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from lbbench import noise_scale


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    opt_state: Any
    step: jnp.ndarray
    noise: noise_scale.NoiseScaleState


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static facts the compiled step needs (hashable; closed over, not traced)."""

    batch_size: int
    groups: int            # sub-batches for the noise scale (1 = off)
    vmap_groups: bool      # True: sub-batch gradients come free; False: one extra sub-batch pass
    noise_decay: float
    sam: bool
    augment: Callable | None = None


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _tree_sq_norm(tree):
    return sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree))


def make_group_loss(model):
    """loss(params, batch_stats, x, y, key) -> (loss, (new_batch_stats, accuracy)) in train mode."""

    def loss_fn(params, batch_stats, x, y, key):
        logits, new_vars = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                       rngs={"dropout": key}, mutable=["batch_stats"])
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return cross_entropy(logits, y), (new_vars.get("batch_stats", batch_stats), acc)

    return loss_fn


def _grouped_grads(loss_fn, state, x, y, key, spec: StepSpec):
    """Full-batch (loss, grads, stats, acc) and |G_small|², |G_big|² for the noise scale."""
    vg = jax.value_and_grad(loss_fn, has_aux=True)
    k = spec.groups
    if k > 1 and spec.vmap_groups:
        xg, yg = x.reshape((k, -1) + x.shape[1:]), y.reshape((k, -1))
        (losses, (stats, accs)), grads = jax.vmap(vg, in_axes=(None, None, 0, 0, 0))(
            state.params, state.batch_stats, xg, yg, jax.random.split(key, k))
        mean_grads = jax.tree.map(lambda g: g.mean(0), grads)
        g_small_sq = jnp.mean(jax.vmap(_tree_sq_norm)(grads))
        stats = jax.tree.map(lambda s: s.mean(0), stats)  # = ghost-BN running-average update
        return losses.mean(), mean_grads, stats, accs.mean(), g_small_sq, _tree_sq_norm(mean_grads)
    (loss, (stats, acc)), grads = vg(state.params, state.batch_stats, x, y, key)
    g_big_sq = _tree_sq_norm(grads)
    if k == 1:
        return loss, grads, stats, acc, jnp.nan, g_big_sq
    # BatchNorm over the whole batch: sub-batch gradients would change the statistics, so take
    # one extra pass over the first sub-batch (cost 1/k of a step) for |G_small|².
    b = x.shape[0] // k
    (_, _), g_small = vg(state.params, state.batch_stats, x[:b], y[:b], key)
    return loss, grads, stats, acc, _tree_sq_norm(g_small), g_big_sq


def make_train_step(model, tx: optax.GradientTransformation, schedule, spec: StepSpec):
    """One optimisation step on a batch: returns the new state and per-step metrics."""
    loss_fn = make_group_loss(model)

    def train_step(state: TrainState, x, y, key):
        loss, grads, stats, acc, g_small_sq, g_big_sq = _grouped_grads(loss_fn, state, x, y, key, spec)
        extra = {}
        if spec.sam:  # SAM's adversarial gradient, with BatchNorm statistics left untouched
            extra["grad_fn"] = lambda p, _: jax.grad(lambda q: loss_fn(q, state.batch_stats, x, y, key)[0])(p)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra)
        params = optax.apply_updates(state.params, updates)
        noise = state.noise
        if spec.groups > 1:
            noise = noise_scale.update(noise, g_small_sq, g_big_sq, spec.batch_size // spec.groups,
                                       spec.batch_size, spec.noise_decay)
        metrics = {"loss": loss, "accuracy": acc, "grad_norm": jnp.sqrt(g_big_sq),
                   "learning_rate": schedule(state.step)}
        new = state.replace(params=params, batch_stats=stats, opt_state=opt_state,
                            step=state.step + 1, noise=noise)
        return new, metrics

    return train_step


def make_epoch(train_step, steps: int, spec: StepSpec, batch_sharding):
    """One epoch: shuffle, drop the remainder (< one batch), and lax.scan the step over batches.

    The dataset stays resident on device and is an *argument* (closed-over arrays would be baked
    into the program as constants); each step gathers its batch and constrains it to be split
    along the mesh's data axis, so every device computes on its own share.
    """

    def epoch(state: TrainState, key, x_train, y_train):
        n = x_train.shape[0]
        perm_key, step_key = jax.random.split(key)
        idx = jax.random.permutation(perm_key, n)[: steps * spec.batch_size]
        idx = idx.reshape(steps, spec.batch_size)

        def body(st, inputs):
            batch_idx, k = inputs
            aug_key, k = jax.random.split(k)
            xb = jax.lax.with_sharding_constraint(x_train[batch_idx], batch_sharding)
            yb = jax.lax.with_sharding_constraint(y_train[batch_idx], batch_sharding)
            if spec.augment is not None:
                xb = spec.augment(aug_key, xb)
            return train_step(st, xb, yb, k)

        return jax.lax.scan(body, state, (idx, jax.random.split(step_key, steps)))

    return epoch


def make_evaluate(model, chunk: int):
    """Mean loss and accuracy over (x, y, mask) arrays padded to a multiple of `chunk`."""

    def evaluate(params, batch_stats, x, y, mask):
        def body(carry, batch):
            xb, yb, mb = batch
            logits = model.apply({"params": params, "batch_stats": batch_stats}, xb, train=False)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
            correct = (jnp.argmax(logits, -1) == yb)
            return (carry[0] + jnp.sum(losses * mb), carry[1] + jnp.sum(correct * mb)), None

        shape = lambda a: a.reshape((-1, chunk) + a.shape[1:])
        (loss_sum, correct), _ = jax.lax.scan(body, (0.0, 0.0), (shape(x), shape(y), shape(mask)))
        total = jnp.sum(mask)
        return loss_sum / total, correct / total

    return evaluate
