"""Compiled pieces of training: the train state, one step, one epoch of many trials, evaluation.

Everything here is pure and runs inside `jit`; train.py only orchestrates. A *group* of T ≥ 1
trials (configs that differ only in traced hyperparameters: learning rate, momentum, β2, weight
decay, warmup, SAM ρ, seed) trains as one program: every leaf of the state has a leading trials
axis and the step is `vmap`ped over it inside the epoch's `lax.scan`. A single run is a group of one.

The gradient noise scale (McCandlish et al. 2018) is measured every `noise_every` steps: on those
steps the batch is split into `groups` sub-batches whose gradients are taken side by side (vmap);
their mean *is* the full-batch gradient, so the update is the same either way. The choice between
the grouped and the plain gradient is a `lax.cond` on the (unbatched) step index, so the other
steps pay nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from lbbench.instruments import noise_scale
from lbbench.training import schedules
from lbbench.training.optim import with_learning_rate


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    opt_state: Any          # optax.inject_hyperparams state: momentum, β2, weight decay ... live here
    step: jnp.ndarray
    noise: noise_scale.NoiseScaleState
    schedule: dict          # traced {"peak": peak learning rate, "warmup": warmup steps}
    rng: jnp.ndarray        # this trial's key: data order, dropout, augmentation
    alive: jnp.ndarray      # False once the loss went NaN/inf: the trial is frozen from then on


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static facts the compiled step needs (hashable; closed over, not traced)."""

    batch_size: int
    groups: int            # sub-batches for the noise scale (1 = off)
    vmap_groups: bool      # True: sub-batch gradients come free; False: one extra sub-batch pass
    noise_decay: float
    sam: bool
    schedule: schedules.ScheduleSpec = schedules.ScheduleSpec("constant", 1)
    noise_every: int = 1   # measure the noise scale on steps where step % noise_every == 0
    shared_data: bool = True  # all trials share one seed, hence one data order: gather each batch once
    progress_every: int = 0   # call the host progress callback every this many steps of an epoch (0 = never)
    augment: Callable | None = None


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def tree_sq_norm(tree):
    return sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree))


def make_group_loss(model):
    """loss(params, batch_stats, x, y, key) -> (loss, (new_batch_stats, accuracy)) in train mode."""

    def loss_fn(params, batch_stats, x, y, key):
        logits, new_vars = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                       rngs={"dropout": key}, mutable=["batch_stats"])
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return cross_entropy(logits, y), (new_vars.get("batch_stats", batch_stats), acc)

    return loss_fn


def _plain_grads(loss_fn, state, x, y, key):
    vg = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (stats, acc)), grads = vg(state.params, state.batch_stats, x, y, key)
    return loss, grads, stats, acc, jnp.full((), jnp.nan, jnp.float32), tree_sq_norm(grads)


def grouped_grads(loss_fn, state, x, y, key, spec: StepSpec):
    """Full-batch (loss, grads, stats, acc) and |G_small|², |G_big|² for the noise scale."""
    vg = jax.value_and_grad(loss_fn, has_aux=True)
    k = spec.groups
    if spec.vmap_groups:
        xg, yg = x.reshape((k, -1) + x.shape[1:]), y.reshape((k, -1))
        (losses, (stats, accs)), grads = jax.vmap(vg, in_axes=(None, None, 0, 0, 0))(
            state.params, state.batch_stats, xg, yg, jax.random.split(key, k))
        mean_grads = jax.tree.map(lambda g: g.mean(0), grads)
        g_small_sq = jnp.mean(jax.vmap(tree_sq_norm)(grads))
        stats = jax.tree.map(lambda s: s.mean(0), stats)  # = ghost-BN running-average update
        return losses.mean(), mean_grads, stats, accs.mean(), g_small_sq, tree_sq_norm(mean_grads)
    # BatchNorm over the whole batch: sub-batch gradients would change the statistics, so take
    # one extra pass over the first sub-batch (cost 1/k of a step) for |G_small|².
    loss, grads, stats, acc, _, g_big_sq = _plain_grads(loss_fn, state, x, y, key)
    b = x.shape[0] // k
    (_, _), g_small = vg(state.params, state.batch_stats, x[:b], y[:b], key)
    return loss, grads, stats, acc, tree_sq_norm(g_small), g_big_sq


def _gradients(loss_fn, state, x, y, key, measure, spec: StepSpec):
    if spec.groups == 1:
        return _plain_grads(loss_fn, state, x, y, key)
    return jax.lax.cond(measure, lambda: grouped_grads(loss_fn, state, x, y, key, spec),
                        lambda: _plain_grads(loss_fn, state, x, y, key))


def _keep_if(ok, new, old):
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def make_train_step(model, tx: optax.GradientTransformation, spec: StepSpec):
    """One optimisation step of one trial: (state, x, y, key, measure_noise) -> (state, metrics)."""
    loss_fn = make_group_loss(model)

    def train_step(state: TrainState, x, y, key, measure):
        lr = schedules.learning_rate(spec.schedule, state.step, state.schedule["peak"], state.schedule["warmup"])
        loss, grads, stats, acc, g_small_sq, g_big_sq = _gradients(loss_fn, state, x, y, key, measure, spec)
        extra = {}
        if spec.sam:  # SAM's adversarial gradient, with BatchNorm statistics left untouched
            extra["grad_fn"] = lambda p, _: jax.grad(lambda q: loss_fn(q, state.batch_stats, x, y, key)[0])(p)
        updates, opt_state = tx.update(grads, with_learning_rate(state.opt_state, lr), state.params, **extra)
        params = optax.apply_updates(state.params, updates)
        noise = state.noise
        if spec.groups > 1:
            measured = noise_scale.update(noise, g_small_sq, g_big_sq, spec.batch_size // spec.groups,
                                          spec.batch_size, spec.noise_decay)
            noise = _keep_if(measure, measured, noise)
        ok = state.alive & jnp.isfinite(loss) & jnp.isfinite(g_big_sq)
        new = _keep_if(ok, (params, stats, opt_state, noise),
                       (state.params, state.batch_stats, state.opt_state, state.noise))
        metrics = {"loss": loss, "accuracy": acc, "grad_norm": jnp.sqrt(g_big_sq), "learning_rate": lr}
        return state.replace(params=new[0], batch_stats=new[1], opt_state=new[2], noise=new[3],
                             step=state.step + 1, alive=ok), metrics

    return train_step


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


def make_segment(train_step, length: int, spec: StepSpec, batch_sharding, on_progress: Callable | None = None):
    """`length` steps of every trial from `offset` in the epoch's order: lax.scan of the vmapped step.

    The dataset stays resident on device and is an *argument* (closed-over arrays would be baked
    into the program as constants); each step gathers its batch and constrains it to be split along
    the mesh's data axis, so every device computes on its own share. With `shared_data` the batch is
    gathered (and augmented) once and broadcast: the first layer of all trials is one wide matmul.
    `start_step` (unbatched) places the steps on the global step count, which decides the
    noise-scale steps. An epoch is one segment unless an instrument needs the state more often.
    `on_progress(step in epoch)` is called from inside the program every `spec.progress_every`
    steps (jax.debug.callback; a step counter for long epochs, no state leaves the device).
    """
    shared = spec.shared_data
    in_axes = (0, None if shared else 0, None if shared else 0, None if shared else 0, None)
    step_all = jax.vmap(train_step, in_axes=in_axes)
    spec_batch = batch_sharding(trial_axis=not shared)

    def augment(key, xb):
        if spec.augment is None:
            return xb
        return spec.augment(key, xb) if shared else jax.vmap(spec.augment)(key, xb)

    def segment(state: TrainState, start_step, offset, idx, keys, x_train, y_train):
        idx = jax.lax.dynamic_slice_in_dim(idx, offset, length)
        keys = jax.lax.dynamic_slice_in_dim(keys, offset, length)

        def body(st, inputs):
            batch_idx, k, s = inputs
            split = jax.random.split(k) if shared else jax.vmap(jax.random.split)(k)
            aug_key, k = (split[0], split[1]) if shared else (split[:, 0], split[:, 1])
            xb = jax.lax.with_sharding_constraint(x_train[batch_idx], spec_batch)
            yb = jax.lax.with_sharding_constraint(y_train[batch_idx], spec_batch)
            measure = (start_step + s) % spec.noise_every == 0
            out = step_all(st, augment(aug_key, xb), yb, k, measure)
            if on_progress is not None and spec.progress_every:
                jax.lax.cond((s + 1) % spec.progress_every == 0,
                             lambda: jax.debug.callback(on_progress, s + 1), lambda: None)
            return out

        return jax.lax.scan(body, state, (idx, keys, offset + jnp.arange(length)))

    return segment


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


def make_evaluate_trials(model, chunk: int):
    """`make_evaluate` vmapped over the trials axis of params and batch statistics (data shared)."""
    return jax.vmap(make_evaluate(model, chunk), in_axes=(0, 0, None, None, None))
