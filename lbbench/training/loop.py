"""`run(config)` / `run_group(configs)`: train end to end, evaluate, run the instruments, write results.

A group is T ≥ 1 configs that differ only in traced hyperparameters; they train side by side as one
compiled program (training/trainer.py), and each writes its own run folder exactly as if it had run
alone. The host orchestrates: each epoch is one compiled call (cut into segments only where the
host needs the state); instruments run through their scheduler and are never named here. Results
and parameters are written atomically, also when a trial diverges or fails, so no run is ever lost
half-written.
"""

from __future__ import annotations

import functools
import os
import time
import traceback

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench.config import Config
from lbbench.instruments import registry
from lbbench.instruments.base import Columns
from lbbench.instruments.scheduler import Scheduler
from lbbench.runs import hparams, signals, tags
from lbbench.runs.folder import RunFolder
from lbbench.runs.provenance import provenance
from lbbench.runs.writer import RunWriter, write_logdir_experiment
from lbbench.training import parallel, preflight, progress, result
from lbbench.training.state import trial
from lbbench.training.trainer import Trainer, check_group, distances_from_init


def log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


class TrialRecord:
    """Host-side bookkeeping of one trial: its folder, writer, history, status and extras."""

    def __init__(self, cfg: Config, folder: RunFolder, grid: dict | None, command: str | None = None):
        """`grid`: the sweep's grid (hparams.sweep_grid of the trial's workdir); `command`: its command line."""
        self.cfg, self.folder, self.run_dir = cfg, folder, folder.path  # staging folder until finish()
        self.writer = RunWriter(folder.path, cfg.to_dict(), grid=grid, wandb_project=cfg.wandb_project, command=command)
        self.history: list[dict] = []
        self.evals = Columns()  # validation and test metrics every cfg.eval_every_steps steps (result.json `evals`)
        self.status: str | None = None  # None while training; then completed / diverged / failed
        self.extra: dict = {}
        self.train_s = 0.0
        self.result: dict | None = None


class Group:
    """One group's trainer, trial records and instrument scheduler, and what happens at each boundary."""

    def __init__(self, trainer: Trainer, records: list[TrialRecord], scheduler: Scheduler, timing: dict):
        self.trainer, self.records, self.scheduler, self.timing = trainer, records, scheduler, timing
        self.last_eval = 0  # step of the last mid-epoch evaluation

    def training(self) -> list[int]:
        return [i for i, r in enumerate(self.records) if r.status is None]

    def on_segment(self, state, step: int) -> None:
        """Between compiled segments: mid-epoch evaluation and the periodic instruments that are due."""
        every = self.trainer.cfg.eval_every_steps
        if every and step - self.last_eval >= every:
            self.last_eval = step
            self._evaluate(state, step)
        if self.scheduler.segment_steps():
            alive = np.asarray(jax.device_get(state.alive))
            self.scheduler.after_segment(state, step, [i for i in self.training() if alive[i]])

    def _evaluate(self, state, step: int) -> None:
        for i, ev in enumerate(self.trainer.evaluate(state, sets=("val", "test"))):
            r = self.records[i]
            if r.status is None:
                r.evals.add(step, ev)
                r.writer.scalars(step, {tags.MID_EPOCH + k: v for k, v in ev.items()})

    def end_epoch(self, state, epoch: int, metrics, dist, alive, seconds: float) -> dict:
        """Record the epoch of every trial still training; mark those whose loss went NaN/inf diverged."""
        trainer, step = self.trainer, epoch * self.trainer.steps_per_epoch
        evals = trainer.evaluate(state)
        examples = trainer.steps_per_epoch * trainer.cfg.batch_size
        recs = {}
        for i in self.training():
            r = self.records[i]
            col = {k: v[:, i] for k, v in metrics.items()}
            rec = result.epoch_record(col, evals[i], dist[i], examples, seconds)
            rec.update(self.scheduler.epoch_record(state, step, i))
            r.writer.step_series(tags.STEP_LOSS, step - len(col["loss"]), col["loss"])
            r.writer.scalars(step, {tags.tag(k): v for k, v in rec.items()}, record="epoch", epoch=epoch)
            r.history.append({"epoch": epoch, "step": step, **rec})
            r.train_s = time.perf_counter() - self.timing["t_train"]
            recs[i] = rec
            if not alive[i] or result.diverged(rec):
                r.extra.update(diverged_epoch=epoch, error=f"loss became NaN/inf in epoch {epoch}")
                log(f"lbbench: run {os.path.basename(r.folder.final)} diverged: loss became NaN/inf in epoch {epoch}")
                self.finish(i, state, "diverged")
        return recs

    def finish(self, i: int, state, status: str) -> None:
        """Measure (if completed), save and write trial i's result.json; close its writer."""
        r = self.records[i]
        r.status = status
        try:
            if status == "completed":
                self.scheduler.finish(state, self._last_step(r), i)
                if r.cfg.save_params and jax.process_index() == 0:
                    variables = {"params": trial(state.params, i), "batch_stats": trial(state.batch_stats, i)}
                    r.folder.save_params(flax.serialization.to_bytes(jax.device_get(variables)))
        except BaseException as e:  # noqa: BLE001 - a failure while measuring or saving fails this trial
            r.status = "failed"
            r.extra["error"] = f"{type(e).__name__}: {e}"
            r.extra["traceback"] = traceback.format_exc()
            raise
        finally:
            self.write_result(i)

    def failed_result(self, i: int, error: str) -> dict:
        """Trial i's result.json after a second Ctrl-C: what it has so far, from host values only
        (built inside the signal handler, so no device calls, no writers, no instruments)."""
        r = self.records[i]
        steps = len(r.history) * self.trainer.steps_per_epoch
        timing = {"total_s": time.perf_counter() - self.timing["t_start"], "train_s": r.train_s, "steps": steps}
        extra = {"dataset": result.dataset_info(self.trainer.ds), **r.extra, "error": error}
        return result.result(r.cfg, "failed", list(r.history), timing, extra)

    @staticmethod
    def _last_step(r: TrialRecord) -> int:
        return int(r.history[-1]["step"]) if r.history else 0

    def write_result(self, i: int) -> None:
        r, trainer = self.records[i], self.trainer
        steps = len(r.history) * trainer.steps_per_epoch
        step_s = r.train_s / steps if steps and r.train_s > 0 else None
        instruments = self.scheduler.result_extras(i, step_s)
        timing = {
            "compile_s": self.timing.get("compile_s"),
            "total_s": time.perf_counter() - self.timing["t_start"],
            "train_s": r.train_s,
            "eval_s": trainer.eval_s,  # the program's evaluation so far: train_s includes it
            "steps_s": trainer.steps_s,  # the program's training steps so far: train_s includes them
            "examples_per_s": steps * r.cfg.batch_size / r.train_s if r.train_s > 0 else None,
            "steps": steps,
            "trials_in_program": trainer.num_trials,
            "instruments": instruments["timing"],
        }
        extra = {"dataset": result.dataset_info(trainer.ds), **r.extra, **instruments["extras"]}
        if r.evals:
            extra["evals"] = r.evals.to_dict()
        res = result.result(r.cfg, r.status, r.history, timing, extra)
        r.writer.scalars(self._last_step(r), {tags.RESULT + k: v for k, v in res["final"].items()})
        r.writer.close(r.status)
        run_dir = r.folder.finish(res)  # result.json, then the folder is committed and unlocked
        if r.folder.attempt_dir:
            log(
                f"lbbench: the {r.status} attempt was kept in {r.folder.attempt_dir}; {run_dir} still "
                "holds the earlier finished run"
            )
        r.run_dir = res["run_dir"] = run_dir
        r.result = res
        _refresh_hparams(r.cfg)


def _refresh_hparams(cfg: Config) -> None:
    """Rewrite the logdir's HParams experiment so its columns cover this run too (never fails the run)."""
    if jax.process_index() != 0:
        return
    try:
        write_logdir_experiment(cfg.workdir, hparams.metric_tags(cfg.to_dict()))
    except OSError as e:
        log(f"lbbench: warning: could not update TensorBoard's HParams columns in {cfg.workdir}: {e}")


def _train_epochs(group: Group, state):
    """Run the epochs of every trial and return the final state.

    A trial that diverges (its step froze it: NaN/inf loss) is recorded `diverged` at the end of that
    epoch; its frozen values never reach the others, which go on.
    """
    trainer, cfg = group.trainer, group.trainer.cfg
    init_params = jax.tree.map(jnp.copy, state.params)
    group.timing["t_train"] = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        state, metrics = trainer.epoch_fn(state, (epoch - 1) * trainer.steps_per_epoch, group.on_segment)
        metrics = jax.device_get(metrics)  # the one host round-trip per epoch
        dist = np.asarray(distances_from_init(state.params, init_params))
        alive = np.asarray(jax.device_get(state.alive))
        recs = group.end_epoch(state, epoch, metrics, dist, alive, time.perf_counter() - t0)
        if len(group.records) == 1 and recs:
            log(progress.epoch_line(epoch, cfg, recs[0]))
        elif recs:
            log(progress.group_epoch_line(epoch, cfg, recs, time.perf_counter() - t0, len(group.records)))
        if not group.training():
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
        return _run_in_folders(cfgs, folders, t_start, origin)
    finally:
        for folder in folders:
            folder.discard()  # no-op once finish() committed; otherwise removes the staging folder


def _run_in_folders(cfgs: list[Config], folders: list, t_start: float, origin: dict) -> list[dict]:
    cfg = cfgs[0]
    ds = data_lib.load_for(cfg)
    signals.check()  # before anything is trained (nothing is recorded: the run had not started)
    parallel.check_batch(cfg, ds.num_train)
    for w in sorted({w for c in cfgs for w in c.warnings()}):
        log(f"warning: {w}")
    steps_per_epoch = ds.num_train // cfg.batch_size
    instruments = registry.build(cfg, steps_per_epoch)  # built once per group; per-trial state inside
    segment = min([n for n in (cfg.eval_every_steps, *(i.every for i in instruments)) if n], default=0)
    trainer = Trainer(cfgs, ds, parallel.make_mesh(), segment_steps=segment)
    preflight.check_model_input(cfg, trainer.model, ds)
    log(progress.start_line(cfgs, trainer.steps_per_epoch, ds))
    state = trainer.init_state()
    with progress.stage("compiling the training epoch and evaluation", enabled=jax.process_index() == 0):
        compile_s = trainer.compile(state)
    grids = {w: hparams.sweep_grid(w) for w in {c.workdir for c in cfgs}}  # sweep.json read once per folder
    records = [TrialRecord(c, f, grids[c.workdir], origin.get("command")) for c, f in zip(cfgs, folders)]
    for r in records:
        r.extra["provenance"] = origin
    scheduler = Scheduler(instruments, trainer.trial_view, [r.writer for r in records], log)
    for line in scheduler.describe():
        log(f"lbbench: {line}")
    group = Group(trainer, records, scheduler, {"t_start": t_start, "compile_s": compile_s})
    for i, r in enumerate(records):  # from here a second Ctrl-C leaves a failed result.json
        r.folder.failed_result = functools.partial(group.failed_result, i)
    try:
        signals.check()  # a Ctrl-C during compilation stops here, recorded as a failed run
        state = _train_epochs(group, state)
        for i in group.training():
            group.finish(i, state, "completed")
    except BaseException as e:  # noqa: BLE001 - recorded (Ctrl-C included), then re-raised for the CLI
        for i in group.training():
            r = records[i]
            r.status = "failed"
            r.extra.setdefault("error", f"{type(e).__name__}: {e}")
            r.extra.setdefault("traceback", traceback.format_exc())
            group.write_result(i)
        raise
    return [r.result for r in records]


def run(cfg: Config) -> dict:
    """Train `cfg` end to end (a group of one); always writes result.json (completed, diverged or failed)."""
    return run_group([cfg])[0]
