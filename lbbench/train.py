"""`run(config)` / `run_group(configs)`: train end to end, evaluate, measure sharpness, write results.

A group is T ≥ 1 configs that differ only in traced hyperparameters; they train side by side as one
compiled program (steps.make_epoch), and each writes its own run folder exactly as if it had run
alone. The host orchestrates; each epoch is one compiled call. Results and parameters are written
atomically, also when a trial diverges or fails, so no run is ever lost half-written.
"""

from __future__ import annotations

import functools
import os
import time
import traceback
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench import hparams, noise_scale, parallel, preflight, progress, run_folder, schedules, steps
from lbbench.config import Config, ConfigError
from lbbench.models import build_model, uses_batch_norm
from lbbench.optim import make_optimizer, with_learning_rate
from lbbench.provenance import provenance
from lbbench.run_info import environment, measure_sharpness
from lbbench.writer import RunWriter, finite_or_none

EVAL_CHUNK = 1000
SUBSET_SEED = 20170315  # fixed: every run reports train metrics on the same train subset


def log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def prepare_run_dir(cfg: Config) -> run_folder.RunFolder:
    """Lock and open the run's folder (exit-2 ConfigError if it already holds a run; see run_folder)."""
    return run_folder.RunFolder.open(cfg)


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
                          augment=augment)


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
                            noise=noise_scale.init(), schedule=sched, rng=train_key,
                            alive=jnp.ones((), jnp.bool_))


def stack_trials(states: list):
    """Trial states → one state whose every leaf has a leading trials axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def trial(state, i: int):
    """Trial i's slice of a stacked state (host or device arrays)."""
    return jax.tree.map(lambda a: a[i], state)


def _bn_message(cfg: Config) -> str:
    if not uses_batch_norm(cfg.model):
        return f"model {cfg.model} has no BatchNorm"
    if cfg.ghost_batch_size:
        return f"ghost BatchNorm: statistics over groups of {cfg.ghost_batch_size} examples"
    return f"BatchNorm statistics over the whole global batch of {cfg.batch_size} (no ghost batches)"


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

    def trial_view(self, state, i: int, step: int):
        """What an instrument sees of trial i at `step` (host-side; see lbbench.instruments)."""
        from lbbench.curvature.loss import BoundLogits
        from lbbench.instruments import TrialView
        from lbbench.run_info import sharpness_subset

        cfg, st = self.cfgs[i], trial(state, i)
        if not hasattr(self, "_apply"):
            self._apply = lambda p, bs, x: self.model.apply({"params": p, "batch_stats": bs}, x, train=False)
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
            seg = steps.make_segment(self._train_step, length, self.spec, batch_sharding)
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
        with progress.stage(what, enabled=jax.process_index() == 0):
            return measure_sharpness(cfg, self.model, trial(state, i), self.ds, trial_keys(cfg)[2])


@jax.jit
def _distances(params, init_params):
    """‖θ − θ₀‖ of every trial."""
    sq = jax.tree.map(lambda a, b: jnp.sum((a - b).reshape(a.shape[0], -1) ** 2, axis=1), params, init_params)
    return jnp.sqrt(sum(jax.tree.leaves(sq)))


def _epoch_record(cfg, trainer, metrics, evals, distance, noise, seconds) -> dict:
    """Everything logged once per epoch for one trial (host values; metrics are this trial's column)."""
    n = trainer.steps_per_epoch * cfg.batch_size
    rec = {**evals, "step_loss": float(np.mean(metrics["loss"])),
           "step_accuracy": float(np.mean(metrics["accuracy"])),
           "grad_norm": float(np.mean(metrics["grad_norm"])),
           "learning_rate": float(metrics["learning_rate"][-1]),
           "distance_from_init": float(distance), "examples_per_s": n / seconds, "epoch_seconds": seconds}
    if cfg.noise_scale_groups > 1:
        rec.update({f"noise_{k}": float(v) for k, v in noise.items()})
    return rec


_TB_TAGS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "test_loss": "test/loss",
            "test_accuracy": "test/accuracy", "generalization_gap": "gap/accuracy", "loss_gap": "gap/loss",
            "step_loss": "train/step_loss_mean", "step_accuracy": "train/step_accuracy_mean",
            "grad_norm": "optim/grad_norm", "learning_rate": "optim/learning_rate",
            "distance_from_init": "optim/distance_from_init", "examples_per_s": "perf/examples_per_s",
            "epoch_seconds": "perf/epoch_seconds", "noise_b_simple": "noise_scale/b_simple",
            "noise_grad_norm_sq": "noise_scale/grad_norm_sq", "noise_trace_sigma": "noise_scale/trace_sigma"}


def _progress_line(epoch: int, cfg: Config, rec: dict) -> str:
    return (f"epoch {epoch:3d}/{cfg.epochs}  loss {rec['train_loss']:.4f}  acc {rec['train_accuracy']:.4f}  "
            f"test acc {rec['test_accuracy']:.4f}  gap {rec['generalization_gap']:+.4f}  "
            f"lr {rec['learning_rate']:.3g}  {rec['examples_per_s']:,.0f} ex/s")


def _group_progress_line(epoch: int, cfg: Config, recs: dict, seconds: float, n_trials: int) -> str:
    accs = [recs[i]["test_accuracy"] for i in sorted(recs)]
    shown = " ".join(f"{a:.3f}" for a in accs[:8]) + (" ..." if len(accs) > 8 else "")
    return (f"epoch {epoch:3d}/{cfg.epochs}  test acc {shown}  (mean {np.mean(accs):.4f}; {len(accs)} of "
            f"{n_trials} trials training)  {seconds:.1f} s")


def _log_sharpness(writer: RunWriter, step: int, sharp: dict, epoch: int) -> None:
    values = {"sharpness/lambda_max": sharp.get("lambda_max"),
              "sharpness/hessian_trace": sharp.get("hessian_trace"),
              **{f"sharpness/eps_{k}": v for k, v in sharp.get("epsilon_sharpness", {}).items()},
              **{f"sharpness_layer/{layer}/{k}": row.get(k) for layer, row in sharp.get("per_layer", {}).items()
                 for k in ("lambda_max", "trace")}}
    writer.scalars(step, values, record="sharpness", epoch=epoch)
    if "density" in sharp:
        from lbbench.plots import density_figure
        writer.figure("sharpness/spectral_density", density_figure(sharp["density"]), step)


class TrialRecord:
    """Host-side bookkeeping of one trial: its folder, writer, history, status and extras."""

    def __init__(self, cfg: Config, folder: run_folder.RunFolder):
        self.cfg, self.folder, self.run_dir = cfg, folder, folder.path  # staging folder until finish()
        self.writer = RunWriter(folder.path, cfg.to_dict(), grid=hparams.sweep_grid(cfg.workdir),
                                wandb_project=cfg.wandb_project)
        self.history: list[dict] = []
        self.evals: dict[str, list] = {}  # test metrics every cfg.eval_every_steps steps (columns)
        self.instruments: dict = {}  # instrument name -> instruments.Columns (result.json columns)
        self.status: str | None = None  # None while training; then completed / diverged / failed
        self.extra: dict = {}
        self.train_s = 0.0


class Periodic:
    """A host task run at segment boundaries, at least `every` steps after its previous run."""

    def __init__(self, every: int, fn: Callable, at_end: bool = False):
        self.every, self.fn, self.last, self.at_end = every, fn, 0, at_end

    def __call__(self, state, step: int) -> None:
        if step - self.last >= self.every:
            self.last = step
            self.fn(state, step)

    def finish(self, state, step: int) -> None:
        """Once more at the end of training (tasks marked at_end), unless it just ran there."""
        if self.at_end and step != self.last:
            self.last = step
            self.fn(state, step)


def segment_steps(cfg: Config) -> int:
    """How often the host needs the state inside an epoch: the shortest periodic interval (0 = never)."""
    return min([n for n in (cfg.eval_every_steps, cfg.track_curvature_every, cfg.gradient_tests_every) if n],
               default=0)


def _step_evaluation(trainer: Trainer, records: list[TrialRecord]) -> Callable:
    """Test loss/accuracy of every training trial every cfg.eval_every_steps steps (result.json `evals`)."""

    def evaluate(state, step):
        for r, ev in zip(records, trainer.evaluate(state, sets=("test",))):
            if r.status is None:
                for k, v in {"step": step, **ev}.items():
                    r.evals.setdefault(k, []).append(v)
                r.writer.scalars(step, {"eval/test_accuracy": ev["test_accuracy"], "eval/test_loss": ev["test_loss"]})

    return evaluate


def _instrument_run(trainer: Trainer, records: list[TrialRecord], instrument) -> Callable:
    """Run `instrument` on every training trial; its values go to TensorBoard and result.json columns."""
    from lbbench.instruments import Columns

    def measure(state, step):
        for i, r in enumerate(records):
            if r.status is None:
                pairs = list(instrument.run(trainer.trial_view(state, i, step)))
                r.instruments.setdefault(instrument.name, Columns()).add(step, pairs)
                r.writer.scalars(step, {f"{instrument.name}/{k}": v for k, v in pairs})

    return measure


CHARTS = {"curvature": {"lambda_max and its stability threshold": ["curvature/lambda_max", "curvature/threshold"],
                        "Adam preconditioned sharpness and 38/eta": ["curvature/preconditioned_sharpness",
                                                                     "curvature/preconditioned_threshold"],
                        "batch sharpness, lambda_max and 2/eta": ["curvature/batch_sharpness",
                                                                  "curvature/lambda_max", "curvature/threshold"]}}


def _periodic_tasks(trainer: Trainer, records: list[TrialRecord]) -> list[Periodic]:
    """Test evaluation between epochs and the configured instruments (lbbench.instruments.build)."""
    from lbbench import instruments

    cfg, tasks = trainer.cfg, []
    if cfg.eval_every_steps:
        tasks.append(Periodic(cfg.eval_every_steps, _step_evaluation(trainer, records)))
    for inst in instruments.build(cfg):  # built once per group; per-trial state is keyed on the trial index
        log(f"lbbench: instrument {inst.name} every {inst.every} steps and at the end, {inst.cost()} each")
        tasks.append(Periodic(inst.every, _instrument_run(trainer, records, inst), at_end=True))
        for r in records:
            r.writer.charts({k: v for k, v in CHARTS.items() if k == inst.name})
    return tasks


def _train_epochs(trainer: Trainer, state, records: list[TrialRecord], finish: Callable):
    """Run the epochs of every trial and return the final state.

    A trial that diverges (its step froze it: NaN/inf loss) is recorded `diverged` at once through
    `finish(i, state)`; its frozen values never reach the others, which go on.
    """
    cfg = trainer.cfg
    init_params = jax.tree.map(jnp.copy, state.params)
    tasks = _periodic_tasks(trainer, records)
    on_segment = (lambda st, step: [task(st, step) for task in tasks]) if tasks else None
    step = 0
    t_train = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        start = (epoch - 1) * trainer.steps_per_epoch
        state, metrics = trainer.epoch_fn(state, start, on_segment)
        metrics = jax.device_get(metrics)  # the one host round-trip per epoch
        evals = trainer.evaluate(state)
        dist = np.asarray(_distances(state.params, init_params))
        noise = jax.device_get(jax.vmap(noise_scale.summary)(state.noise))
        alive = np.asarray(jax.device_get(state.alive))
        seconds = time.perf_counter() - t0
        step = int(start + trainer.steps_per_epoch)
        recs = {}
        for i, r in enumerate(records):
            if r.status is not None:
                continue
            col = {k: v[:, i] for k, v in metrics.items()}
            rec = _epoch_record(r.cfg, trainer, col, evals[i], dist[i], {k: v[i] for k, v in noise.items()}, seconds)
            r.writer.step_series("train/step_loss", step - len(col["loss"]), col["loss"])
            r.writer.scalars(step, {_TB_TAGS[k]: v for k, v in rec.items()}, record="epoch", epoch=epoch)
            r.history.append({"epoch": epoch, "step": step, **rec})
            recs[i] = rec
            r.train_s = time.perf_counter() - t_train
            if not (alive[i] and np.all(np.isfinite([rec["step_loss"], rec["train_loss"], rec["test_loss"]]))):
                r.extra.update(diverged_epoch=epoch, error=f"loss became NaN/inf in epoch {epoch}")
                log(f"lbbench: run {os.path.basename(r.run_dir)} diverged: loss became NaN/inf in epoch {epoch}")
                finish(i, state, "diverged")
        if len(records) == 1 and recs:
            log(_progress_line(epoch, cfg, recs[0]))
        elif recs:
            log(_group_progress_line(epoch, cfg, recs, seconds, len(records)))
        for i, r in enumerate(records):
            if r.status is None and r.cfg.sharpness and r.cfg.sharpness_every and epoch % r.cfg.sharpness_every == 0 \
                    and epoch < cfg.epochs:
                _log_sharpness(r.writer, step, trainer.sharpness(state, i), epoch)
        if all(r.status is not None for r in records):
            break
    for task in tasks:
        task.finish(state, step)
    return state


def save_variables(folder: run_folder.RunFolder, state) -> str:
    """Final parameters and BatchNorm statistics as flax msgpack, written atomically into the run."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return folder.save_params(flax.serialization.to_bytes(jax.device_get(variables)))


def load_run(run_dir: str):
    """Load a completed run back: (Config, model, variables) — `model.apply(variables, x, train=False)`.

    Raises run_folder.RunLoadError saying what is wrong if the run did not complete, has no
    parameters, or its parameters are not the ones its result.json was written with.
    """
    from lbbench import run_load

    return run_load.load_run(run_dir)


def _history_columns(history: list[dict]) -> dict:
    keys = ("epoch", "step", "train_accuracy", "test_accuracy", "train_loss", "test_loss",
            "generalization_gap", "learning_rate", "noise_b_simple")
    return {k: [finite_or_none(h[k]) if h.get(k) is not None else None for h in history] for k in keys}


def _dataset_info(ds) -> dict:
    return {"name": ds.name, "num_classes": ds.num_classes, "num_train": ds.num_train,
            "num_test": int(len(ds.y_test)), "input_shape": list(ds.input_shape)}


def _result(cfg, status, history, timing, extra) -> dict:
    last = history[-1] if history else {}
    final = {k: finite_or_none(last[k]) if k in last else None for k in
             ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "generalization_gap", "loss_gap")}
    return {"status": status, "config": cfg.to_dict(), "final": final, "timing": timing,
            "environment": environment(), "history": _history_columns(history),
            "warnings": cfg.warnings(), **extra}


def _start_line(cfgs: list[Config], trainer: Trainer, ds) -> str:
    cfg = cfgs[0]
    lrs = sorted({c.scaled_learning_rate for c in cfgs})
    lr = f"lr {lrs[0]:.4g}" if len(lrs) == 1 else f"lr {lrs[0]:.3g}..{lrs[-1]:.3g}"
    trials = f"{len(cfgs)} trials in one program (seeds {sorted({c.seed for c in cfgs})}), " if len(cfgs) > 1 else ""
    return (f"lbbench: {cfg.dataset} ({ds.num_train} train, {len(ds.y_test)} test), {cfg.model}, "
            f"{cfg.optimizer}, batch {cfg.batch_size} on {jax.device_count()} {jax.devices()[0].platform} "
            f"device(s), {trials}{lr} ({cfg.lr_scaling} scaling), {cfg.schedule}; "
            f"{trainer.steps_per_epoch} steps/epoch, {ds.num_train % cfg.batch_size} examples dropped per epoch; "
            f"{_bn_message(cfg)}")


def _finish_trial(trainer: Trainer, record: TrialRecord, i: int, state, status: str, timing: dict) -> dict:
    """Measure (if completed), save and write trial i's result.json; close its writer."""
    cfg = record.cfg
    record.status = status
    try:
        if status == "completed":
            if cfg.sharpness:
                record.extra["sharpness"] = trainer.sharpness(state, i)
                _log_sharpness(record.writer, int(record.history[-1]["step"]), record.extra["sharpness"],
                               len(record.history))
            if cfg.noise_scale_groups > 1:
                summary = jax.device_get(noise_scale.summary(trial(state.noise, i)))
                record.extra["noise_scale"] = {k: finite_or_none(v) for k, v in summary.items()}
                record.extra["noise_scale"].update(b_small=cfg.batch_size // cfg.noise_scale_groups,
                                                   b_big=cfg.batch_size, every_steps=cfg.noise_scale_every)
            if cfg.save_params and jax.process_index() == 0:
                save_variables(record.folder, trial(state, i))
    except BaseException as e:  # noqa: BLE001 - a failure while measuring or saving fails this trial
        record.status = "failed"
        record.extra["error"] = f"{type(e).__name__}: {e}"
        record.extra["traceback"] = traceback.format_exc()
        raise
    finally:
        _write_result(trainer, record, timing)
    return record.result


def _write_result(trainer: Trainer, record: TrialRecord, timing: dict) -> None:
    cfg, history = record.cfg, record.history
    n_examples = len(history) * trainer.steps_per_epoch * cfg.batch_size
    timing = {**timing, "total_s": time.perf_counter() - timing.pop("t_start"), "train_s": record.train_s,
              "examples_per_s": n_examples / record.train_s if record.train_s > 0 else None,
              "steps": len(history) * trainer.steps_per_epoch, "trials_in_program": trainer.num_trials}
    extra = {"dataset": _dataset_info(trainer.ds), **record.extra}
    if record.evals:
        extra["evals"] = {k: [finite_or_none(v) for v in vs] if k != "step" else vs for k, vs in record.evals.items()}
    extra.update({name: columns.to_dict() for name, columns in record.instruments.items()})
    result = _result(cfg, record.status, history, timing, extra)
    final_step = int(history[-1]["step"]) if history else 0
    record.writer.scalars(final_step, {f"final/{k}": v for k, v in result["final"].items()})
    record.writer.close(record.status)
    run_dir = record.folder.finish(result)  # result.json, then the folder is committed and unlocked
    if record.folder.attempt_dir:
        log(f"lbbench: the {record.status} attempt was kept in {record.folder.attempt_dir}; {run_dir} still "
            "holds the earlier finished run")
    record.run_dir = result["run_dir"] = run_dir
    record.result = result


def run_group(cfgs: list[Config]) -> list[dict]:
    """Train configs that differ only in traced hyperparameters as one compiled program.

    Each trial writes its own run folder exactly as if it had run alone (the timing says how many
    trials shared the program). Every trial always gets a result.json: completed, diverged (frozen
    at the step its loss went NaN/inf, recorded at that epoch) or failed. Folders are locked and
    written through run_folder: one run per folder, committed at the end.
    """
    cfgs = [c.validate() for c in cfgs]
    check_group(cfgs)
    t_start = time.perf_counter()
    origin = provenance()
    preflight.check_data_paths(cfgs[0])
    folders = []
    try:
        for c in cfgs:  # locked from here on; exit 2 now if a folder already holds a run
            folders.append(prepare_run_dir(c))
        return _run_in_folders(cfgs, folders, t_start, origin)
    finally:
        for folder in folders:
            folder.discard()  # no-op once finish() committed; otherwise removes the staging folder


def _run_in_folders(cfgs: list[Config], folders: list, t_start: float, origin: dict) -> list[dict]:
    cfg = cfgs[0]
    ds = data_lib.load(cfg.dataset, cfg.cache_dir, download=cfg.download).subset(cfg.train_subset)
    parallel.check_batch(cfg, ds.num_train)
    mesh = parallel.make_mesh()
    for w in sorted({w for c in cfgs for w in c.warnings()}):
        log(f"warning: {w}")
    trainer = Trainer(cfgs, ds, mesh, segment_steps=segment_steps(cfg))
    preflight.check_model_input(cfg, trainer.model, ds)
    log(_start_line(cfgs, trainer, ds))
    state = trainer.init_state()
    with progress.stage("compiling the training epoch and evaluation", enabled=jax.process_index() == 0):
        compile_s = trainer.compile(state)
    records = [TrialRecord(c, f) for c, f in zip(cfgs, folders)]
    for r in records:
        r.extra["provenance"] = origin
    timing = lambda: {"t_start": t_start, "compile_s": compile_s}

    def finish(i, st, status):
        _finish_trial(trainer, records[i], i, st, status, timing())

    try:
        state = _train_epochs(trainer, state, records, finish)
        for i, r in enumerate(records):
            if r.status is None:
                finish(i, state, "completed")
    except BaseException as e:  # noqa: BLE001 - recorded (Ctrl-C included), then re-raised for the CLI
        for r in records:
            if r.status is None:
                r.status = "failed"
                r.extra.setdefault("error", f"{type(e).__name__}: {e}")
                r.extra.setdefault("traceback", traceback.format_exc())
                _write_result(trainer, r, timing())
        raise
    return [r.result for r in records]


def run(cfg: Config) -> dict:
    """Train `cfg` end to end (a group of one); always writes result.json (completed, diverged or failed)."""
    return run_group([cfg])[0]
