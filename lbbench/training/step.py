"""One optimisation step of one trial, pure and jitted inside the epoch's scan (training/epoch.py).

The gradient noise scale (McCandlish et al. 2018) is measured every `noise_every` steps: on those
steps the batch is split into `groups` sub-batches whose gradients are taken one after another
(unrolled: XLA:CPU runs small batched matmuls slower than plain ones); their mean *is* the full-batch
gradient, so the update is the same either way. Measuring or not is
static: the epoch's scan places one measured step at the start of every block of `noise_every`
steps, so the other steps are the plain step and pay nothing (a `lax.cond` in every step cost
far more than the measurement it skipped; BUILD_NOTES).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lbbench.curvature import objectives
from lbbench.instruments import noise_scale
from lbbench.training import schedules
from lbbench.training.optim import with_learning_rate
from lbbench.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static facts the compiled step needs (hashable; closed over, not traced)."""

    batch_size: int
    groups: int  # sub-batches for the noise scale (1 = off)
    vmap_groups: bool  # True: sub-batch gradients come free; False: one extra sub-batch pass
    noise_decay: float
    sam: bool
    schedule: schedules.ScheduleSpec = schedules.ScheduleSpec("constant", 1)
    noise_every: int = 1  # measure the noise scale on steps where step % noise_every == 0
    shared_data: bool = True  # all trials share one seed, hence one data order: gather each batch once
    augment: Callable | None = None
    single: bool = False  # one trial: no vmap over the trials axis (shared_data must hold)
    loss: str = "cross_entropy"  # the training loss (Config.loss; curvature.objectives)


def tree_sq_norm(tree):
    return sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree))


def make_group_loss(model, loss: str = "cross_entropy"):
    """loss(params, batch_stats, x, y, key) -> (loss, (new_batch_stats, accuracy)) in train mode:
    the mean training loss `loss` (curvature.objectives) of the batch; accuracy is the argmax's."""
    objectives.per_example(loss)  # an unknown name fails here, not inside a trace

    def loss_fn(params, batch_stats, x, y, key):
        logits, new_vars = model.apply(
            {"params": params, "batch_stats": batch_stats},
            x,
            train=True,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return objectives.mean_loss(loss, logits, y), (new_vars.get("batch_stats", batch_stats), acc)

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
        keys = jax.random.split(key, k)
        outs = [vg(state.params, state.batch_stats, xg[i], yg[i], keys[i]) for i in range(k)]
        (losses, (stats, accs)), grads = jax.tree.map(lambda *a: jnp.stack(a), *outs)
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


def _gradients(loss_fn, state, x, y, key, measure: bool, spec: StepSpec):
    if spec.groups == 1 or not measure:
        return _plain_grads(loss_fn, state, x, y, key)
    return grouped_grads(loss_fn, state, x, y, key, spec)


def _keep_if(ok, new, old):
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def make_train_step(model, tx: optax.GradientTransformation, spec: StepSpec):
    """One optimisation step of one trial: (state, x, y, key, measure) -> (state, metrics).

    `measure` is a Python bool: a step that measures the noise scale and one that does not are two
    programs, placed by the epoch's scan (training/epoch.py), never a `lax.cond` inside every step.
    """
    loss_fn = make_group_loss(model, spec.loss)

    def train_step(state: TrainState, x, y, key, measure):
        lr = schedules.learning_rate(spec.schedule, state.step, state.schedule["peak"], state.schedule["warmup"])
        loss, grads, stats, acc, g_small_sq, g_big_sq = _gradients(loss_fn, state, x, y, key, measure, spec)
        extra = {}
        if spec.sam:  # SAM's adversarial gradient, with BatchNorm statistics left untouched
            extra["grad_fn"] = lambda p, _: jax.grad(lambda q: loss_fn(q, state.batch_stats, x, y, key)[0])(p)
        updates, opt_state = tx.update(grads, with_learning_rate(state.opt_state, lr), state.params, **extra)
        params = optax.apply_updates(state.params, updates)
        noise = state.noise
        if spec.groups > 1 and measure:
            noise = noise_scale.update(
                noise, g_small_sq, g_big_sq, spec.batch_size // spec.groups, spec.batch_size, spec.noise_decay
            )
        ok = state.alive & jnp.isfinite(loss) & jnp.isfinite(g_big_sq)
        new = (params, stats, opt_state, noise)
        if not spec.single:  # freeze a trial that went NaN/inf so the group's record of it stays finite
            new = _keep_if(ok, new, (state.params, state.batch_stats, state.opt_state, state.noise))
        metrics = {"loss": loss, "accuracy": acc, "grad_norm": jnp.sqrt(g_big_sq), "learning_rate": lr}
        return state.replace(
            params=new[0], batch_stats=new[1], opt_state=new[2], noise=new[3], step=state.step + 1, alive=ok
        ), metrics

    return train_step
