"""`run(config)` / `run_group(configs)`: train end to end, evaluate, measure sharpness, write results.

A group is T ≥ 1 configs that differ only in traced hyperparameters; they train side by side as one
compiled program (trainer.Trainer), and each writes its own run folder exactly as if it had run
alone. The host orchestrates; each epoch is one compiled call. Results and parameters are written
atomically, also when a trial diverges or fails, so no run is ever lost half-written.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench.runs import hparams
from lbbench.instruments import noise_scale
from lbbench.training import parallel
from lbbench.training import preflight
from lbbench.training import progress
from lbbench.runs import folder as run_folder
from lbbench.config import Config
from lbbench.models import uses_batch_norm
from lbbench.training.periodic import periodic_tasks, segment_steps
from lbbench.runs.provenance import provenance
from lbbench.training.run_info import environment
from lbbench.training.trainer import Trainer, check_group, distances_from_init, trial
from lbbench.runs.writer import RunWriter, finite_or_none


def log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def prepare_run_dir(cfg: Config) -> run_folder.RunFolder:
    """Lock and open the run's folder (exit-2 ConfigError if it already holds a run; see run_folder)."""
    return run_folder.RunFolder.open(cfg)


def _bn_message(cfg: Config) -> str:
    if not uses_batch_norm(cfg.model):
        return f"model {cfg.model} has no BatchNorm"
    if cfg.ghost_batch_size:
        return f"ghost BatchNorm: statistics over groups of {cfg.ghost_batch_size} examples"
    return f"BatchNorm statistics over the whole global batch of {cfg.batch_size} (no ghost batches)"


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
        from lbbench.report.tb_plots import density_figure
        writer.figure("sharpness/spectral_density", density_figure(sharp["density"]), step)


class TrialRecord:
    """Host-side bookkeeping of one trial: its folder, writer, history, status and extras."""

    def __init__(self, cfg: Config, folder: run_folder.RunFolder, grid: dict | None):
        """`grid`: the sweep's grid (hparams.sweep_grid of the trial's workdir)."""
        self.cfg, self.folder, self.run_dir = cfg, folder, folder.path  # staging folder until finish()
        self.writer = RunWriter(folder.path, cfg.to_dict(), grid=grid, wandb_project=cfg.wandb_project)
        self.history: list[dict] = []
        self.evals: dict[str, list] = {}  # test metrics every cfg.eval_every_steps steps (columns)
        self.instruments: dict = {}  # instrument name -> instruments.Columns (result.json columns)
        self.status: str | None = None  # None while training; then completed / diverged / failed
        self.extra: dict = {}
        self.train_s = 0.0


def _train_epochs(trainer: Trainer, state, records: list[TrialRecord], finish: Callable):
    """Run the epochs of every trial and return the final state.

    A trial that diverges (its step froze it: NaN/inf loss) is recorded `diverged` at once through
    `finish(i, state)`; its frozen values never reach the others, which go on.
    """
    cfg = trainer.cfg
    init_params = jax.tree.map(jnp.copy, state.params)
    tasks = periodic_tasks(trainer, records, log)
    on_segment = (lambda st, step: [task(st, step) for task in tasks]) if tasks else None
    step = 0
    t_train = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        start = (epoch - 1) * trainer.steps_per_epoch
        state, metrics = trainer.epoch_fn(state, start, on_segment)
        metrics = jax.device_get(metrics)  # the one host round-trip per epoch
        evals = trainer.evaluate(state)
        dist = np.asarray(distances_from_init(state.params, init_params))
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
    from lbbench.runs import load as run_load

    return run_load.load_run(run_dir)


def _history_columns(history: list[dict]) -> dict:
    keys = ("epoch", "step", "train_accuracy", "test_accuracy", "train_loss", "test_loss",
            "generalization_gap", "learning_rate", "noise_b_simple")
    return {k: [finite_or_none(h.get(k)) for h in history] for k in keys}


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
    grids = {w: hparams.sweep_grid(w) for w in {c.workdir for c in cfgs}}  # sweep.json read once per folder
    records = [TrialRecord(c, f, grids[c.workdir]) for c, f in zip(cfgs, folders)]
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
