"""One group's host side: each trial's record (folder, writer, history, status) and the group's
boundaries — segment ends, epoch ends, checkpoints, pauses, phases — and how each trial's result is
finished and written (training/loop.py drives it).
"""

from __future__ import annotations

import os
import signal
import time
import traceback

import flax
import jax
import numpy as np

from lbbench.config import Config
from lbbench.instruments.base import Columns
from lbbench.instruments.scheduler import Scheduler
from lbbench.runs import hparams, signals, tags
from lbbench.runs.folder import RunFolder, fingerprint
from lbbench.runs.writer import RunWriter, write_logdir_experiment
from lbbench.training import checkpoint, parallel, result
from lbbench.training.state import stack_trials, trial
from lbbench.training.trainer import Trainer


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
        self.train_s0 = 0.0  # training seconds before the checkpoint this run resumed from
        self.attempts: list[dict] = []  # timing of the attempts before the one this run resumed from
        self.result: dict | None = None


class Group:
    """One group's trainers (one per batch-size phase), trial records and instrument scheduler, and what
    happens at each boundary."""

    def __init__(self, trainers: list[Trainer], records: list[TrialRecord], scheduler: Scheduler, timing: dict):
        self.trainers, self.records, self.scheduler, self.timing = trainers, records, scheduler, timing
        self.trainer = trainers[0]  # the phase in progress
        self.plan = self.trainer.plan
        self.last_eval = 0  # step of the last mid-epoch evaluation
        self.epoch = 1  # the epoch in progress
        self.init_params = None  # θ₀ of every trial (distances from init)
        self.ckpt_step, self.ckpt_time = 0, time.monotonic()  # the last checkpoint (or the start)
        self.rewrite: list[int] = []  # trials resumed as diverged: their result is written again at the end

    def training(self) -> list[int]:
        return [i for i, r in enumerate(self.records) if r.status is None]

    def enter(self, epoch: int) -> None:
        """Train `epoch` with its phase's Trainer: at a --batch_schedule phase's first epoch (or a resume
        inside it) the next compiled program takes over the state as it is."""
        trainer = self.trainers[self.plan.index(epoch)]
        if trainer is self.trainer:
            return
        self.trainer = trainer
        self.scheduler.view_fn = trainer.trial_view
        p = self.plan.phase(epoch)
        log(
            f"lbbench: batch {p.batch_size} from epoch {epoch} (step {self.plan.start_step(epoch)}), "
            f"phase {self.plan.index(epoch) + 1} of {len(self.plan.phases)}: {p.steps_per_epoch} steps/epoch"
        )

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
        sets = ("val", "test") if self.trainer.cfg.eval_test_every_steps else ("val",)
        for i, ev in enumerate(self.trainer.evaluate(state, sets=sets)):
            r = self.records[i]
            if r.status is None:
                r.evals.add(step, ev)
                r.writer.scalars(step, {tags.MID_EPOCH + k: v for k, v in ev.items()})

    def end_epoch(self, state, epoch: int, metrics, dist, alive, seconds: float) -> dict:
        """Record the epoch of every trial still training; mark those whose loss went NaN/inf diverged."""
        trainer, step = self.trainer, self.plan.end_step(epoch)
        evals = trainer.evaluate(state)
        examples = trainer.steps_per_epoch * trainer.batch_size
        recs = {}
        for i in self.training():
            r = self.records[i]
            col = {k: v[:, i] for k, v in metrics.items()}
            rec = result.epoch_record(col, evals[i], dist[i], examples, seconds)
            if self.plan.scheduled:
                rec["batch_size"] = trainer.batch_size
            rec.update(self.scheduler.epoch_record(state, step, i))
            r.writer.step_series(tags.STEP_LOSS, step - len(col["loss"]), col["loss"])
            r.writer.scalars(step, {tags.tag(k): v for k, v in rec.items()}, record="epoch", epoch=epoch)
            r.history.append({"epoch": epoch, "step": step, **rec})
            r.train_s = r.train_s0 + time.perf_counter() - self.timing["t_train"]
            recs[i] = rec
            if not alive[i] or result.diverged(rec):
                r.extra.update(diverged_epoch=epoch, error=f"loss became NaN/inf in epoch {epoch}")
                log(f"lbbench: run {os.path.basename(r.folder.final)} diverged: loss became NaN/inf in epoch {epoch}")
                self.finish(i, state, "diverged")
        return recs

    def at_safe_point(self, state, offset: int, metrics: list, epoch_rng) -> None:
        """A segment end: checkpoint every trial if one is due, or if SIGTERM is pending (a
        scheduler's preemption: the checkpoint is written before the run stops here)."""
        step = self.plan.start_step(self.epoch) + offset
        terminating = signals.pending() == signal.SIGTERM
        if step == self.ckpt_step or not (terminating or self._checkpoint_due(step)):
            return
        self.save_checkpoint(state, step, offset, metrics, epoch_rng)
        if terminating:
            log(f"lbbench: SIGTERM: checkpoint saved at step {step}; the same command with --resume continues")

    def _checkpoint_due(self, step: int) -> bool:
        every = self.trainer.cfg.checkpoint_every_steps
        if every > 0:
            return step - self.ckpt_step >= every
        return every == 0 and time.monotonic() - self.ckpt_time >= checkpoint.DEFAULT_SECONDS

    def save_checkpoint(self, state, step: int, offset: int, metrics: list, epoch_rng) -> None:
        """Write one checkpoint per trial (finished trials too: a resumed group needs their slices)."""
        self.ckpt_step, self.ckpt_time = step, time.monotonic()
        if jax.process_index() != 0:
            return
        host, init, rng0 = jax.device_get((state, self.init_params, epoch_rng))
        got = jax.device_get(metrics)
        cols = {k: np.concatenate([np.asarray(m[k]) for m in got]) for k in got[0]} if got else {}
        for i, r in enumerate(self.records):
            payload = {
                "format": checkpoint.FORMAT,
                "step": step,
                "epoch": self.epoch,
                "offset": offset,
                "fingerprint": fingerprint(r.cfg),
                "state": checkpoint.to_host(trial(host, i)),
                "init_params": checkpoint.to_host(trial(init, i)),
                "epoch_rng": np.asarray(rng0[i]),
                "metrics": {k: v[:, i] for k, v in cols.items()},
                "record": self._record_state(i),
            }
            checkpoint.save(checkpoint.dir_for(r.cfg), step, payload, keep_all=r.cfg.keep_checkpoints)

    def pause(self, state, epoch: int) -> None:
        """A successive-halving rung: checkpoint every trial at the start of the next epoch (the
        epoch's PRNG key not yet split, so the resumed run shuffles as the uninterrupted one would)
        and record the trials still training as `paused`."""
        self.epoch = epoch + 1
        self.save_checkpoint(state, self.plan.end_step(epoch), 0, [], state.rng)
        for i in self.training():
            self.finish(i, state, "paused")
        log(f"lbbench: paused after epoch {epoch} (--pause_at_epoch); --resume with a later one continues")

    def _record_state(self, i: int) -> dict:
        r = self.records[i]
        extra = {k: v for k, v in r.extra.items() if k != "provenance"}
        return {
            "history": r.history,
            "evals": r.evals.state(),
            "status": r.status,
            "extra": extra,
            "init_from": r.extra.get("provenance", {}).get("init_from"),
            "train_s": r.train_s,
            "attempts": [*r.attempts, self._attempt_timing()],
            "last_eval": self.last_eval,
            "scheduler": self.scheduler.trial_state(i),
        }

    def restore(self, template, saved: list[dict]):
        """The group's state and resume point from one checkpoint per trial; the host records too.
        Returns (state, (epoch_rng, offset, metrics so far))."""
        host = jax.device_get(template)
        rep = parallel.replicated(self.trainer.mesh)
        states = [checkpoint.from_host(trial(host, i), p["state"]) for i, p in enumerate(saved)]
        inits = [checkpoint.from_host(trial(host.params, i), p["init_params"]) for i, p in enumerate(saved)]
        for i, p in enumerate(saved):
            self._restore_record(i, p["record"])
        self.init_params = jax.device_put(stack_trials(inits), rep)
        self.epoch, self.ckpt_step = int(saved[0]["epoch"]), int(saved[0]["step"])
        rng0 = np.stack([np.asarray(p["epoch_rng"]) for p in saved])
        metrics = {k: np.stack([np.asarray(p["metrics"][k]) for p in saved], axis=1) for k in saved[0]["metrics"]}
        return jax.device_put(stack_trials(states), rep), (rng0, int(saved[0]["offset"]), metrics)

    def _restore_record(self, i: int, saved: dict) -> None:
        r = self.records[i]
        r.history, r.evals, r.status = list(saved["history"]), Columns.restore(saved["evals"]), saved["status"]
        r.extra.update(saved["extra"])
        if saved.get("init_from"):
            r.extra["provenance"] = {**r.extra["provenance"], "init_from": saved["init_from"]}
        r.train_s = r.train_s0 = float(saved["train_s"])
        r.attempts = list(saved.get("attempts") or [])
        self.last_eval = int(saved["last_eval"])
        self.scheduler.restore_trial(i, saved["scheduler"])
        for rec in r.history:  # the epochs before the checkpoint, into this attempt's logs
            values = {tags.tag(k): v for k, v in rec.items() if k not in ("epoch", "step")}
            r.writer.scalars(int(rec["step"]), values, record="epoch", epoch=int(rec["epoch"]))
        if r.status is not None:
            self.rewrite.append(i)

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
        steps = self._last_step(r)
        timing = {"total_s": time.perf_counter() - self.timing["t_start"], "train_s": r.train_s, "steps": steps}
        extra = {"dataset": result.dataset_info(self.trainer.ds), **r.extra, "error": error}
        return result.result(r.cfg, "failed", list(r.history), timing, extra)

    @staticmethod
    def _last_step(r: TrialRecord) -> int:
        return int(r.history[-1]["step"]) if r.history else 0

    def _attempt_timing(self) -> dict:
        """This attempt's program-level seconds (the trials of its program share them)."""
        return {
            "compile_s": self.timing.get("compile_s"),
            "total_s": time.perf_counter() - self.timing["t_start"],
            "eval_s": sum(t.eval_s for t in self.trainers),  # the program's evaluation so far: train_s includes it
            "steps_s": sum(t.steps_s for t in self.trainers),  # its training steps so far: train_s includes them
            "trials_in_program": self.trainer.num_trials,
        }

    def write_result(self, i: int) -> None:
        r, trainer = self.records[i], self.trainer
        steps = self._last_step(r)
        step_s = r.train_s / steps if steps and r.train_s > 0 else None
        instruments = self.scheduler.result_extras(i, step_s)
        timing = {
            **self._attempt_timing(),
            "train_s": r.train_s,
            "examples_per_s": self.plan.examples(steps) / r.train_s if r.train_s > 0 else None,
            "steps": steps,
            "instruments": instruments["timing"],
        }
        if r.attempts:  # paused or preempted before: what those attempts cost (sweep accounting adds them)
            timing["earlier_attempts"] = r.attempts
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
