"""The compiled machinery of a group of trials: model, optimizer, device-resident data, programs.

A group is T ≥ 1 configs that differ only in traced hyperparameters (`Config.group_key()` equal);
`Trainer` holds what they share and compiles the shuffle, the epoch's segments and the evaluation
ahead of time, and hands instruments a TrialView of one trial. training/loop.py orchestrates.

A Trainer trains at one batch size. A run with --batch_schedule has one Trainer per phase
(training/phases.py), each compiled for its batch; the later ones share the first one's
device-resident data, model and compiled evaluation, and all of them take the same TrainState, so
the state passes from one phase to the next untouched. The LR schedule is built from the whole run's
phases, so every phase's program computes the same rate at the same global step.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.config import Config, ConfigError
from lbbench.curvature.loss import BoundLogits
from lbbench.data.augment import crop_flip
from lbbench.instruments.base import TrialView, measurement_subset
from lbbench.models import build_model, uses_batch_norm
from lbbench.runs import signals
from lbbench.training import epoch, parallel, phases, progress, schedules
from lbbench.training.optim import make_optimizer, with_learning_rate
from lbbench.training.state import init_state, stack_trials, trial, trial_keys
from lbbench.training.step import StepSpec, make_train_step

PROGRESS_SEGMENTS = 10  # an epoch of many steps is cut into this many segments for the step counter


def _step_spec(cfgs: list[Config], ds, batch_size: int, plan: phases.Plan) -> StepSpec:
    cfg = cfgs[0]
    k = cfg.noise_scale_groups
    sub = batch_size // k
    bn = uses_batch_norm(cfg.model)
    vmap_ok = (not bn) or (cfg.ghost_batch_size > 0 and sub % cfg.ghost_batch_size == 0)
    augment = None
    if cfg.augment and ds.augment == "crop_flip":
        augment = crop_flip
    return StepSpec(
        batch_size=batch_size,
        groups=k,
        vmap_groups=vmap_ok,
        noise_decay=cfg.noise_scale_ema**cfg.noise_scale_every,
        sam=cfg.optimizer == "sam",
        schedule=schedules.schedule_spec(cfg, plan),
        noise_every=cfg.noise_scale_every,
        shared_data=len({c.seed for c in cfgs}) == 1,
        augment=augment,
        single=len(cfgs) == 1,
        loss=cfg.loss,
    )


def progress_segment(steps_per_epoch: int) -> int:
    """Steps per compiled segment for the step counter: a tenth of an epoch for epochs of ≥ 20 steps,
    so a long epoch reports progress at segment ends (the host sees the state there anyway). An
    in-program `jax.debug.callback` did the same and made every step up to 2x slower (BUILD_NOTES)."""
    return -(-steps_per_epoch // PROGRESS_SEGMENTS) if steps_per_epoch >= 2 * PROGRESS_SEGMENTS else steps_per_epoch


def check_group(cfgs: list[Config]) -> None:
    """Trials of one program must agree on every shape-determining field and have distinct folders."""
    if not cfgs:
        raise ValueError("a group needs at least one config")
    for c in cfgs[1:]:
        if c.group_key() != cfgs[0].group_key():
            diff = sorted(k for (k, v), (_, w) in zip(c.group_key(), cfgs[0].group_key()) if v != w)
            raise ConfigError(
                diff[0] if diff else "run_name",
                "trials of one program may differ only in traced hyperparameters "
                f"(learning rate, momentum, beta2, weight decay, warmup, sam_rho, seed); they differ in {diff}",
            )
    dirs = [os.path.normpath(os.path.join(c.workdir, c.run_name or c.default_run_name())) for c in cfgs]
    if len(set(dirs)) != len(dirs):
        raise ConfigError("run_name", "two trials of the group would write the same run folder")


class Trainer:
    """The compiled functions and device-resident data of one group of trials (a run is a group of one)."""

    def __init__(self, cfgs: list[Config], ds, mesh, segment_steps: int = 0, batch_size: int = 0, share=None):
        """`segment_steps`: hand the state back to the host every this many steps (0 = once an epoch).
        `batch_size`: the batch this Trainer trains at (0 = --batch_size; a --batch_schedule phase's
        otherwise); `share`: the Trainer of an earlier phase, whose data, model and evaluation it reuses."""
        cfg = cfgs[0]
        self.cfgs, self.cfg, self.ds, self.mesh = cfgs, cfg, ds, mesh
        self.num_trials = len(cfgs)
        self.batch_size = batch_size or cfg.batch_size
        self.plan = phases.plan(cfg, ds.num_train)
        self.steps_per_epoch = ds.num_train // self.batch_size
        self.tx = make_optimizer(cfg)
        self.spec = _step_spec(cfgs, ds, self.batch_size, self.plan)
        self.segment_steps = min(segment_steps or self.steps_per_epoch, progress_segment(self.steps_per_epoch))
        self.eval_s = 0.0  # seconds spent evaluating so far (every trial of the program together)
        self.steps_s = 0.0  # seconds spent in the training steps so far (the shuffle included)
        self._share = share
        if share is None:
            self.model = build_model(cfg.model, ds.num_classes, cfg.ghost_batch_size)
            put = lambda a: parallel.put_replicated(np.asarray(a), mesh)
            self.x_train, self.y_train = put(ds.x_train), put(ds.y_train)
            self.eval_sets = epoch.eval_sets(ds, cfg.train_eval_examples, put)
            # inference-mode logits as a stable function of (params, batch_stats, x): instruments take it
            # inside a BoundLogits, so their jitted measurements compile once per run, not per call
            self._apply = lambda p, bs, x: self.model.apply({"params": p, "batch_stats": bs}, x, train=False)
        else:
            self.model, self.x_train, self.y_train = share.model, share.x_train, share.y_train
            self.eval_sets, self._apply = share.eval_sets, share._apply
        self._train_step = make_train_step(self.model, self.tx, self.spec)
        self._shuffle = epoch.make_shuffle(ds.num_train, self.steps_per_epoch, self.spec)
        self._measure = None
        self._log = None if jax.process_index() == 0 else (lambda line: None)  # the step counter: process 0 prints

    def trial_view(self, state, i: int, step: int) -> TrialView:
        """What an instrument sees of trial i at `step` (host-side; see lbbench.instruments)."""
        cfg, st = self.cfgs[i], trial(state, i)
        if self._measure is None:  # the fixed measurement subset, placed once (only runs with instruments)
            placed = self._share._measure if self._share is not None else None
            self._measure = placed or tuple(jnp.asarray(a) for a in measurement_subset(self.ds, cfg.sharpness_examples))
        lr = float(schedules.learning_rate(self.spec.schedule, step, st.schedule["peak"], st.schedule["warmup"]))
        update = (
            None
            if self.spec.sam
            else (lambda g, opt_state, params: self.tx.update(g, with_learning_rate(opt_state, lr), params)[0])
        )

        def batch():
            rng = np.random.default_rng([cfg.seed, step])
            idx = np.sort(rng.choice(self.ds.num_train, self.batch_size, replace=False))
            return jnp.asarray(self.ds.x_train[idx]), jnp.asarray(self.ds.y_train[idx])

        return TrialView(
            trial=i,
            step=step,
            cfg=cfg,
            params=st.params,
            batch_stats=st.batch_stats,
            opt_state=st.opt_state,
            learning_rate=lr,
            logits_fn=BoundLogits(self._apply, st.batch_stats),
            measure_x=self._measure[0],
            measure_y=self._measure[1],
            batch_fn=batch,
            key=jax.random.fold_in(jax.random.PRNGKey(cfg.seed), step),
            update_fn=update,
            state=st,
            measure_key=trial_keys(cfg)[2],
        )

    def init_state(self):
        states = [init_state(c, self.model, self.ds, self.plan) for c in self.cfgs]
        return jax.device_put(stack_trials(states), parallel.replicated(self.mesh))

    def segment_lengths(self) -> list[int]:
        """The lengths of the compiled segments one epoch is cut into (one or two distinct)."""
        full, rest = divmod(self.steps_per_epoch, self.segment_steps)
        return [self.segment_steps] * full + ([rest] if rest else [])

    def compile(self, state) -> float:
        """Ahead-of-time compile the shuffle, the epoch's segments and both evaluations; returns seconds."""
        t0 = time.perf_counter()
        rep = parallel.replicated(self.mesh)
        shuffle = jax.jit(self._shuffle, in_shardings=(rep,), out_shardings=(rep,) * 3, donate_argnums=0)
        self._compiled_shuffle = shuffle.lower(state).compile()
        _, idx, keys = jax.eval_shape(self._shuffle, state)
        batch_sharding = functools.partial(parallel.data_sharding, self.mesh)
        zero = jnp.zeros((), jnp.int32)
        self._segments = {}
        for length in sorted(set(self.segment_lengths())):
            seg = epoch.make_segment(self._train_step, length, self.spec, batch_sharding)
            jitted = jax.jit(seg, in_shardings=(rep,) * 6, out_shardings=(rep, rep), donate_argnums=0)
            self._segments[length] = jitted.lower(state, zero, idx, keys, self.x_train, self.y_train).compile()
        if self._share is not None:  # the same model and sets: the earlier phase's programs serve
            self.eval_fns = self._share.eval_fns
            return time.perf_counter() - t0
        self.eval_fns = {}
        for name, (chunk, arrays) in self.eval_sets.items():
            fn = jax.jit(epoch.make_evaluate_trials(self.model, chunk, self.spec.loss))
            self.eval_fns[name] = fn.lower(state.params, state.batch_stats, *arrays).compile()
        return time.perf_counter() - t0

    def epoch_fn(
        self, state, start_step: int, on_segment: Callable | None = None, at_safe_point=None, resume=None, epoch=0
    ):
        """One epoch of every trial: (new state, per-step metrics shaped (steps, trials)).

        `start_step`: the global step at the epoch's start; `epoch`: its number, for the step counter
        (0 = start_step // steps per epoch + 1, right for a run at one batch size).
        `on_segment(state, step)` is called after each segment (instruments measure there);
        `at_safe_point(state, offset, metrics, epoch_rng)` then, where a checkpoint may be taken.
        `resume=(epoch_rng, offset, metrics so far)` continues an epoch from a checkpoint: the order is
        drawn again from the epoch's key, and the segments already done are skipped. The time in the
        steps (not in what runs between segments) adds to `steps_s`."""
        t0, aside = time.perf_counter(), 0.0
        if resume is None:
            epoch_rng = jnp.copy(state.rng) if at_safe_point is not None else None  # the shuffle donates it
            state, idx, keys = self._compiled_shuffle(state)
            metrics, offset = [], 0
        else:
            epoch_rng, offset, done = resume
            epoch_rng = jax.device_put(epoch_rng, parallel.replicated(self.mesh))
            _, idx, keys = self._compiled_shuffle(jax.tree.map(jnp.copy, state).replace(rng=jnp.copy(epoch_rng)))
            metrics = [done] if offset else []
        counter = progress.StepCounter(
            self.steps_per_epoch, f"epoch {epoch or start_step // self.steps_per_epoch + 1}", log=self._log
        )
        end = 0
        for length in self.segment_lengths():
            end += length
            if end <= offset:
                continue  # done before the checkpoint this epoch resumes from
            state, m = self._segments[length](
                state, jnp.asarray(offset, jnp.int32), idx, keys, self.x_train, self.y_train
            )
            metrics.append(m)
            offset += length
            if on_segment is not None:
                jax.block_until_ready(m["loss"])  # the steps' time counts as steps, not as what runs next
                t1 = time.perf_counter()
                on_segment(state, start_step + offset)
                aside += time.perf_counter() - t1
            if at_safe_point is not None:
                t1 = time.perf_counter()
                at_safe_point(state, offset, metrics, epoch_rng)
                aside += time.perf_counter() - t1
            signals.check()  # a safe point: between compiled segments, never inside JAX
            if offset < self.steps_per_epoch and counter.due():
                jax.block_until_ready(m["loss"])  # report steps done, not steps dispatched
                counter.update(offset)
        jax.block_until_ready(metrics[-1]["loss"])  # the caller fetches the metrics next anyway
        self.steps_s += time.perf_counter() - t0 - aside
        if len(metrics) == 1:
            return state, metrics[0]
        return state, jax.tree.map(lambda *ms: jnp.concatenate(ms), *metrics)

    def evaluate(self, state, sets=None) -> list[dict]:
        """Loss and accuracy of every trial on the train subset, validation (if any) and test sets, or
        on the named `sets` that exist (one compiled call per set)."""
        t0 = time.perf_counter()
        cols, sets = {}, [name for name in (sets or self.eval_sets) if name in self.eval_sets]
        for name in sets:
            arrays = self.eval_sets[name][1]
            loss, acc = jax.device_get(self.eval_fns[name](state.params, state.batch_stats, *arrays))
            cols[f"{name}_loss"], cols[f"{name}_accuracy"] = loss, acc
        self.eval_s += time.perf_counter() - t0  # the whole program's evaluation time (all trials)
        out = []
        for i in range(self.num_trials):
            rec = {k: float(v[i]) for k, v in cols.items()}
            if "train" in sets and "test" in sets:
                rec["generalization_gap"] = rec["train_accuracy"] - rec["test_accuracy"]
                rec["loss_gap"] = rec["test_loss"] - rec["train_loss"]
            out.append(rec)
        return out


@jax.jit
def distances_from_init(params, init_params):
    """‖θ − θ₀‖ of every trial."""
    sq = jax.tree.map(lambda a, b: jnp.sum((a - b).reshape(a.shape[0], -1) ** 2, axis=1), params, init_params)
    return jnp.sqrt(sum(jax.tree.leaves(sq)))
