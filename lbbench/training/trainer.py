"""The compiled machinery of a group of trials: state, shuffle, epoch segments, evaluation.

A group is T ≥ 1 configs that differ only in traced hyperparameters (`Config.group_key()` equal);
`Trainer` holds their model, optimizer, device-resident data and AOT-compiled programs, and
`init_state` builds one trial's state (a run is a group of one). train.py orchestrates.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lbbench.training import parallel
from lbbench.training import progress
from lbbench.training import schedules
from lbbench.training import steps
from lbbench.config import Config, ConfigError
from lbbench.models import build_model, uses_batch_norm
from lbbench.instruments.noise_scale import init as noise_init
from lbbench.training.optim import make_optimizer, with_learning_rate
from lbbench.training.run_info import measure_sharpness

PART_NAMES = {"hvp_setup": "Hessian-vector product set-up", "lambda_max": "lambda_max (Lanczos)",
              "trace": "Hessian trace (Hutchinson)", "density": "spectral density (SLQ)",
              "per_layer": "per-layer blocks", "epsilon": "eps-sharpness (L-BFGS-B)",
              "power_iteration": "power iteration"}
EVAL_CHUNK = 1000
SUBSET_SEED = 20170315  # fixed: every run reports train metrics on the same train subset


def _padded(x: np.ndarray, y: np.ndarray, chunk: int):
    """Pad to a multiple of `chunk` with a 0/1 mask so evaluation sees every example exactly once."""
    pad = (-len(x)) % chunk
    mask = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    yp = np.concatenate([y, np.zeros(pad, y.dtype)])
    return xp, yp, mask


def eval_sets(ds, train_examples: int, put) -> dict:
    """{"train": (chunk, padded arrays), "test": ...}: the fixed train subset every run reports its
    train metrics on (same seed for every run) and the full test set, placed with `put`."""
    sub = np.random.default_rng(SUBSET_SEED).permutation(ds.num_train)[:train_examples]
    out = {}
    for name, (x, y) in (("train", (ds.x_train[sub], ds.y_train[sub])), ("test", (ds.x_test, ds.y_test))):
        chunk = min(EVAL_CHUNK, len(y))
        out[name] = (chunk, tuple(put(a) for a in _padded(x, y, chunk)))
    return out


def _step_spec(cfgs: list[Config], ds, steps_per_epoch: int) -> steps.StepSpec:
    cfg = cfgs[0]
    k = cfg.noise_scale_groups
    sub = cfg.batch_size // k
    bn = uses_batch_norm(cfg.model)
    vmap_ok = (not bn) or (cfg.ghost_batch_size > 0 and sub % cfg.ghost_batch_size == 0)
    augment = None
    if cfg.augment and ds.augment == "crop_flip":
        from lbbench.data.augment import crop_flip
        augment = crop_flip
    return steps.StepSpec(batch_size=cfg.batch_size, groups=k, vmap_groups=vmap_ok,
                          noise_decay=cfg.noise_scale_ema ** cfg.noise_scale_every, sam=cfg.optimizer == "sam",
                          schedule=schedules.schedule_spec(cfg, steps_per_epoch),
                          noise_every=cfg.noise_scale_every, shared_data=len({c.seed for c in cfgs}) == 1,
                          progress_every=progress_interval(steps_per_epoch), augment=augment)


def progress_interval(steps_per_epoch: int) -> int:
    """Steps between step-counter callbacks: a tenth of an epoch for epochs of ≥ 20 steps, one
    process and one device (a callback in an SPMD program runs on every device); else never."""
    if steps_per_epoch < 20 or jax.device_count() > 1 or jax.process_count() > 1:
        return 0
    return steps_per_epoch // 10


def trial_keys(cfg: Config):
    """(init, train, sharpness) keys of a trial: everything random about it follows from its seed."""
    return jax.random.split(jax.random.PRNGKey(cfg.seed), 3)


def init_state(cfg: Config, model, ds, steps_per_epoch: int) -> steps.TrainState:
    """One trial's initial state; its hyperparameters are values in the state, not in the program."""
    init_key, train_key, _ = trial_keys(cfg)
    param_key, dropout_key = jax.random.split(init_key)
    variables = model.init({"params": param_key, "dropout": dropout_key}, ds.x_train[:2], train=False)
    params = variables["params"]
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    sched = {"peak": f32(cfg.scaled_learning_rate), "warmup": f32(schedules.warmup_steps(cfg, steps_per_epoch))}
    return steps.TrainState(params=params, batch_stats=variables.get("batch_stats", {}),
                            opt_state=make_optimizer(cfg).init(params), step=jnp.zeros((), jnp.int32),
                            noise=noise_init(), schedule=sched, rng=train_key,
                            alive=jnp.ones((), jnp.bool_))


def stack_trials(states: list):
    """Trial states → one state whose every leaf has a leading trials axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def trial(state, i: int):
    """Trial i's slice of a stacked state (host or device arrays)."""
    return jax.tree.map(lambda a: a[i], state)


def check_group(cfgs: list[Config]) -> None:
    """Trials of one program must agree on every shape-determining field and have distinct folders."""
    if not cfgs:
        raise ValueError("a group needs at least one config")
    for c in cfgs[1:]:
        if c.group_key() != cfgs[0].group_key():
            diff = sorted(k for (k, v), (_, w) in zip(c.group_key(), cfgs[0].group_key()) if v != w)
            raise ConfigError(diff[0] if diff else "run_name",
                              "trials of one program may differ only in traced hyperparameters "
                              f"(learning rate, momentum, beta2, weight decay, warmup, sam_rho, seed); they differ in {diff}")
    dirs = [os.path.normpath(os.path.join(c.workdir, c.run_name or c.default_run_name())) for c in cfgs]
    if len(set(dirs)) != len(dirs):
        raise ConfigError("run_name", "two trials of the group would write the same run folder")


class Trainer:
    """The compiled functions and device-resident data of one group of trials (a run is a group of one)."""

    def __init__(self, cfgs: list[Config], ds, mesh, segment_steps: int = 0):
        """`segment_steps`: hand the state back to the host every this many steps (0 = once an epoch)."""
        cfg = cfgs[0]
        self.cfgs, self.cfg, self.ds, self.mesh = cfgs, cfg, ds, mesh
        self.num_trials = len(cfgs)
        self.model = build_model(cfg.model, ds.num_classes, cfg.ghost_batch_size)
        self.steps_per_epoch = ds.num_train // cfg.batch_size
        self.tx = make_optimizer(cfg)
        self.spec = _step_spec(cfgs, ds, self.steps_per_epoch)
        put = lambda a: parallel.put_replicated(np.asarray(a), mesh)
        self.x_train, self.y_train = put(ds.x_train), put(ds.y_train)
        self.eval_sets = eval_sets(ds, cfg.train_eval_examples, put)
        self.segment_steps = min(segment_steps or self.steps_per_epoch, self.steps_per_epoch)
        self._train_step = steps.make_train_step(self.model, self.tx, self.spec)
        self._shuffle = steps.make_shuffle(ds.num_train, self.steps_per_epoch, self.spec)
        # inference-mode logits as a stable function of (params, batch_stats, x): instruments take it
        # inside a BoundLogits, so their jitted measurements compile once per run, not per call
        self._apply = lambda p, bs, x: self.model.apply({"params": p, "batch_stats": bs}, x, train=False)
        self._measure = None
        self._counter = None  # progress.StepCounter of the epoch in flight

    def _on_progress(self, step_in_epoch) -> None:
        """Host side of the in-program step counter: prints at most every 5 s, never the epoch's end."""
        step = int(step_in_epoch)
        if self._counter is not None and step < self.steps_per_epoch:
            self._counter.update(step)

    def trial_view(self, state, i: int, step: int):
        """What an instrument sees of trial i at `step` (host-side; see lbbench.instruments)."""
        from lbbench.curvature.loss import BoundLogits
        from lbbench.instruments import TrialView
        from lbbench.training.run_info import sharpness_subset

        cfg, st = self.cfgs[i], trial(state, i)
        if self._measure is None:  # the fixed measurement subset, placed once (only runs with instruments)
            self._measure = tuple(jnp.asarray(a) for a in sharpness_subset(self.ds, cfg.sharpness_examples))
        idx = np.sort(np.random.default_rng([cfg.seed, step]).choice(self.ds.num_train, cfg.batch_size, replace=False))
        lr = float(schedules.learning_rate(self.spec.schedule, step, st.schedule["peak"], st.schedule["warmup"]))
        update = None if self.spec.sam else (
            lambda g, opt_state, params: self.tx.update(g, with_learning_rate(opt_state, lr), params)[0])
        return TrialView(trial=i, step=step, cfg=cfg, params=st.params, batch_stats=st.batch_stats,
                         opt_state=st.opt_state, learning_rate=lr, logits_fn=BoundLogits(self._apply, st.batch_stats),
                         measure_x=self._measure[0], measure_y=self._measure[1],
                         batch_x=jnp.asarray(self.ds.x_train[idx]), batch_y=jnp.asarray(self.ds.y_train[idx]),
                         key=jax.random.fold_in(jax.random.PRNGKey(cfg.seed), step), update_fn=update)

    def init_state(self):
        states = [init_state(c, self.model, self.ds, self.steps_per_epoch) for c in self.cfgs]
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
            seg = steps.make_segment(self._train_step, length, self.spec, batch_sharding, self._on_progress)
            jitted = jax.jit(seg, in_shardings=(rep,) * 7, out_shardings=(rep, rep), donate_argnums=0)
            self._segments[length] = jitted.lower(state, zero, zero, idx, keys, self.x_train, self.y_train).compile()
        self.eval_fns = {}
        for name, (chunk, arrays) in self.eval_sets.items():
            fn = jax.jit(steps.make_evaluate_trials(self.model, chunk))
            self.eval_fns[name] = fn.lower(state.params, state.batch_stats, *arrays).compile()
        return time.perf_counter() - t0

    def epoch_fn(self, state, start_step: int, on_segment: Callable | None = None):
        """One epoch of every trial: (new state, per-step metrics shaped (steps, trials)).

        `on_segment(state, step)` is called after each segment (instruments measure there)."""
        state, idx, keys = self._compiled_shuffle(state)
        start = jnp.asarray(start_step, jnp.int32)
        self._counter = progress.StepCounter(self.steps_per_epoch, f"epoch {start_step // self.steps_per_epoch + 1}")
        metrics, offset = [], 0
        for length in self.segment_lengths():
            state, m = self._segments[length](state, start, jnp.asarray(offset, jnp.int32), idx, keys,
                                              self.x_train, self.y_train)
            metrics.append(m)
            offset += length
            if on_segment is not None:
                on_segment(state, start_step + offset)
        if len(metrics) == 1:
            return state, metrics[0]
        return state, jax.tree.map(lambda *ms: jnp.concatenate(ms), *metrics)

    def evaluate(self, state, sets=("train", "test")) -> list[dict]:
        """Train-subset and test loss/accuracy of every trial (one compiled call per set)."""
        cols = {}
        for name in sets:
            arrays = self.eval_sets[name][1]
            loss, acc = jax.device_get(self.eval_fns[name](state.params, state.batch_stats, *arrays))
            cols[f"{name}_loss"], cols[f"{name}_accuracy"] = loss, acc
        out = []
        for i in range(self.num_trials):
            rec = {k: float(v[i]) for k, v in cols.items()}
            if "train" in sets and "test" in sets:
                rec["generalization_gap"] = rec["train_accuracy"] - rec["test_accuracy"]
                rec["loss_gap"] = rec["test_loss"] - rec["train_loss"]
            out.append(rec)
        return out

    def sharpness(self, state, i: int) -> dict:
        cfg = self.cfgs[i]
        what = "measuring sharpness" + (f" of trial {i}" if self.num_trials > 1 else "") + \
            " (lambda_max, trace, eps-sharpness)"
        first = jax.process_index() == 0
        say = lambda line: print(line, flush=True)
        report = (lambda part, secs: say(f"lbbench:   {PART_NAMES.get(part, part)}: {secs:.1f} s")) if first else None
        with progress.stage(what, enabled=first, log=say):
            return measure_sharpness(cfg, self.model, trial(state, i), self.ds, trial_keys(cfg)[2], report)


@jax.jit
def distances_from_init(params, init_params):
    """‖θ − θ₀‖ of every trial."""
    sq = jax.tree.map(lambda a, b: jnp.sum((a - b).reshape(a.shape[0], -1) ** 2, axis=1), params, init_params)
    return jnp.sqrt(sum(jax.tree.leaves(sq)))
