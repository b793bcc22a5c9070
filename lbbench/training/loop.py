"""`run(config)` / `run_group(configs)`: train end to end, evaluate, run the instruments, write results.

A group is T ≥ 1 configs that differ only in traced hyperparameters; they train side by side as one
compiled program (training/trainer.py), and each writes its own run folder exactly as if it had run
alone. The host orchestrates: each epoch is one compiled call (cut into segments only where the
host needs the state); instruments run through their scheduler and are never named here. Results
and parameters are written atomically, also when a trial diverges or fails, so no run is ever lost
half-written.

A run with --batch_schedule (training/phases.py) trains its phases one after another, each with its
own Trainer compiled at the phase's batch size; `Group.enter` switches to a phase's Trainer at its
first epoch and the TrainState carries over untouched: params, BatchNorm statistics, optimizer state
with its injected hyperparameters, global step, PRNG key, noise-scale EMA and traced schedule. The
LR schedule, history, evaluations, checkpoints and TensorBoard steps all count global steps, so one
run folder holds the whole run and a checkpoint in any phase resumes in that phase.
"""

from __future__ import annotations

import functools
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench.config import Config, ConfigError
from lbbench.instruments import registry
from lbbench.instruments.scheduler import Scheduler
from lbbench.runs import hparams, signals
from lbbench.runs.folder import RunFolder, fingerprint
from lbbench.runs.provenance import provenance
from lbbench.training import checkpoint, parallel, phases, preflight, progress
from lbbench.training.group import Group, TrialRecord, log
from lbbench.training.state import stack_trials, trial
from lbbench.training.trainer import Trainer, check_group, distances_from_init


def _train_epochs(group: Group, state, resume=None):
    """Run the epochs of every trial (from `resume`, a checkpoint's position, if given) and return
    the final state.

    A trial that diverges (its step froze it: NaN/inf loss) is recorded `diverged` at the end of that
    epoch; its frozen values never reach the others, which go on.
    """
    cfg = group.trainer.cfg
    if group.init_params is None:
        group.init_params = jax.tree.map(jnp.copy, state.params)
    group.timing["t_train"] = time.perf_counter()
    group.ckpt_time = time.monotonic()
    for epoch in range(group.epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        group.epoch = epoch
        group.enter(epoch)
        start = group.plan.start_step(epoch)
        state, metrics = group.trainer.epoch_fn(state, start, group.on_segment, group.at_safe_point, resume, epoch)
        resume = None
        metrics = jax.device_get(metrics)  # the one host round-trip per epoch
        dist = np.asarray(distances_from_init(state.params, group.init_params))
        alive = np.asarray(jax.device_get(state.alive))
        recs = group.end_epoch(state, epoch, metrics, dist, alive, time.perf_counter() - t0)
        if len(group.records) == 1 and recs:
            log(progress.epoch_line(epoch, cfg, recs[0]))
        elif recs:
            log(progress.group_epoch_line(epoch, cfg, recs, time.perf_counter() - t0, len(group.records)))
        if not group.training():
            break
        if cfg.pause_at_epoch and epoch >= cfg.pause_at_epoch:  # >=: a resume may start past the rung
            group.pause(state, epoch)
            break
    return state


def run_group(cfgs: list[Config]) -> list[dict]:
    """Train configs that differ only in traced hyperparameters as one compiled program.

    Each trial writes its own run folder exactly as if it had run alone (the timing says how many
    trials shared the program). Every trial always gets a result.json: completed, diverged (frozen
    at the step its loss went NaN/inf, recorded at that epoch) or failed. Folders are locked and
    written through runs.folder: one run per folder, committed at the end.
    """
    cfgs = [c.validate() for c in cfgs]
    check_group(cfgs)
    t_start = time.perf_counter()
    origin = provenance()
    preflight.check_data_paths(cfgs[0])
    folders = []
    try:
        for c in cfgs:  # locked from here on; exit 2 now if a folder already holds a run
            folders.append(RunFolder.open(c))
        resume_at = checkpoint.resume_step(cfgs) if cfgs[0].resume else None
        return _run_in_folders(cfgs, folders, t_start, origin, resume_at)
    finally:
        for folder in folders:
            folder.discard()  # no-op once finish() committed; otherwise removes the staging folder


def _run_in_folders(cfgs: list[Config], folders: list, t_start: float, origin: dict, resume_at) -> list[dict]:
    cfg = cfgs[0]
    ds = data_lib.load_for(cfg)
    signals.check()  # before anything is trained (nothing is recorded: the run had not started)
    plan = _check_phases(cfg, ds.num_train)
    for w in sorted({w for c in cfgs for w in c.warnings()}):
        log(f"warning: {w}")
    steps_per_epoch = ds.num_train // cfg.batch_size
    instruments = registry.build(cfg, steps_per_epoch)  # built once per group; per-trial state inside
    segment = min([n for n in (cfg.eval_every_steps, *(i.every for i in instruments)) if n], default=0)
    trainers = _phase_trainers(cfgs, ds, plan, segment)
    trainer = trainers[0]
    preflight.check_model_input(cfg, trainer.model, ds)
    log(progress.start_line(cfgs, trainer.steps_per_epoch, ds, plan))
    state = trainer.init_state()
    if cfg.init_from and resume_at is None:
        state, origin = _init_from(cfg, trainer, state, origin)
    with progress.stage("compiling the training epoch and evaluation", enabled=jax.process_index() == 0):
        compile_s = sum(t.compile(state) for t in trainers)
    grids = {w: hparams.sweep_grid(w) for w in {c.workdir for c in cfgs}}  # sweep.json read once per folder
    records = [TrialRecord(c, f, grids[c.workdir], origin.get("command")) for c, f in zip(cfgs, folders)]
    for r in records:
        r.extra["provenance"] = origin
        if plan.scheduled:
            r.extra["batch_phases"] = plan.to_json()
    scheduler = Scheduler(instruments, trainer.trial_view, [r.writer for r in records], log)
    for line in scheduler.describe():
        log(f"lbbench: {line}")
    group = Group(trainers, records, scheduler, {"t_start": t_start, "compile_s": compile_s})
    for i, r in enumerate(records):  # from here a second Ctrl-C leaves a failed result.json
        r.folder.failed_result = functools.partial(group.failed_result, i)
    resume = None
    if resume_at is not None:
        state, resume = _resume(group, state, resume_at)
    try:
        signals.check()  # a Ctrl-C during compilation stops here, recorded as a failed run
        state = _train_epochs(group, state, resume)
        for i in group.training():
            group.finish(i, state, "completed")
        for i in group.rewrite:  # resumed as diverged: its folder was reopened, write it again
            group.write_result(i)
        for c, r in zip(cfgs, records):
            if r.status != "paused" and not c.keep_checkpoints:  # a paused trial continues from them
                checkpoint.remove(c)
    except BaseException as e:  # noqa: BLE001 - recorded (Ctrl-C included), then re-raised for the CLI
        for i in group.training():
            r = records[i]
            r.status = "failed"
            r.extra.setdefault("error", f"{type(e).__name__}: {e}")
            r.extra.setdefault("traceback", traceback.format_exc())
            if checkpoint.exists(r.cfg):
                r.extra["checkpoint"] = f"{checkpoint.dir_for(r.cfg)}: the same command with --resume continues"
            group.write_result(i)
        raise
    return [r.result for r in records]


def _check_phases(cfg: Config, num_train: int) -> phases.Plan:
    """The run's batch-size phases, each batch checked against the data and devices as --batch_size is."""
    plan = phases.plan(cfg, num_train)
    for p in plan.phases[:-1]:
        try:
            parallel.check_batch(cfg.replace(batch_size=p.batch_size), num_train)
        except ConfigError as e:
            raise ConfigError("batch_schedule", f"phase at batch {p.batch_size}: {str(e).split(': ', 1)[1]}") from None
    parallel.check_batch(cfg, num_train)
    return plan


def _phase_trainers(cfgs: list[Config], ds, plan: phases.Plan, segment: int) -> list[Trainer]:
    """One Trainer per batch-size phase (one for a run without --batch_schedule); the later ones share
    the first one's device-resident data, model and evaluation."""
    mesh = parallel.make_mesh()
    first = Trainer(cfgs, ds, mesh, segment_steps=segment, batch_size=plan.phases[0].batch_size)
    rest = [Trainer(cfgs, ds, mesh, segment, p.batch_size, share=first) for p in plan.phases[1:]]
    return [first, *rest]


def _resume(group: Group, template, step: int):
    """The group's state at checkpoint `step` (every trial's, checked to be this trial's config)."""
    saved = []
    for r in group.records:
        payload = checkpoint.load(checkpoint.dir_for(r.cfg), step)
        if payload.get("fingerprint") != fingerprint(r.cfg):
            raise ConfigError(
                "resume",
                f"the checkpoint in {checkpoint.dir_for(r.cfg)} is of another configuration; "
                "resume with the command that wrote it, or drop --resume",
            )
        saved.append(payload)
    for r in group.records:
        r.extra["provenance"] = {**r.extra["provenance"], "resumed_at_step": step}
    state, resume = group.restore(template, saved)
    log(f"lbbench: resuming from the checkpoint at step {step} (epoch {group.epoch})")
    return state, (resume if resume[1] else None)  # at an epoch's start: that epoch runs as usual


def _init_from(cfg: Config, trainer: Trainer, state, origin: dict):
    """Every trial's params, BatchNorm statistics and (where it fits) optimizer state from --init_from;
    each trial keeps its own injected hyperparameters, step, PRNG key and noise-scale state."""
    variables, source = checkpoint.init_source(cfg)
    host = jax.device_get(state)
    fresh = trial(host, 0)
    if checkpoint.shapes(variables["params"]) != checkpoint.shapes(fresh.params):
        raise ConfigError(
            "init_from",
            f"the parameters of {source['run']} do not fit --model={cfg.model} on --dataset={cfg.dataset} "
            "(other shapes); start from a run of the same model and data",
        )
    params = checkpoint.from_host(fresh.params, variables["params"])
    batch_stats = checkpoint.from_host(fresh.batch_stats, variables.get("batch_stats") or {})
    states = []
    for i in range(trainer.num_trials):
        st = trial(host, i)
        opt = _optimizer_state(st.opt_state, variables.get("opt_state"))
        states.append(st.replace(params=params, batch_stats=batch_stats, opt_state=opt or st.opt_state))
    source["optimizer_state"] = opt is not None
    state = jax.device_put(stack_trials(states), parallel.replicated(trainer.mesh))
    return state, {**origin, "init_from": source}


def _optimizer_state(fresh, saved):
    """`saved` optimizer state with `fresh`'s injected hyperparameters, or None where it does not fit
    (another optimizer: then only the params are taken)."""
    if saved is None:
        return None
    merged = dict(saved)
    new = checkpoint.to_host(fresh)
    if "hyperparams" in new and "hyperparams" in merged:
        merged["hyperparams"] = new["hyperparams"]
    try:
        out = checkpoint.from_host(fresh, merged)
    except (ValueError, KeyError, TypeError):
        return None
    return out if checkpoint.shapes(out) == checkpoint.shapes(fresh) else None


def run(cfg: Config) -> dict:
    """Train `cfg` end to end (a group of one); always writes result.json (completed, diverged or failed)."""
    return run_group([cfg])[0]
