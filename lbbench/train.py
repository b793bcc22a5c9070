"""`run(config)`: train one configuration end to end, evaluate, measure sharpness, write results.

The host orchestrates; each epoch is one compiled call (steps.make_epoch). Results and parameters
are written atomically, also when the run diverges or fails, so no run is ever lost half-written.
"""

from __future__ import annotations

import os
import time
import traceback

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lbbench import data as data_lib
from lbbench import hparams, noise_scale, parallel, schedules, steps
from lbbench.config import Config, ConfigError
from lbbench.models import build_model, uses_batch_norm
from lbbench.optim import make_optimizer
from lbbench.provenance import provenance
from lbbench.run_info import environment, measure_sharpness
from lbbench.writer import RunWriter, atomic_write_bytes, atomic_write_json, finite_or_none

EVAL_CHUNK = 1000
SUBSET_SEED = 20170315  # fixed: every run reports train metrics on the same train subset


class Diverged(Exception):
    """The training loss became NaN or inf."""


def log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def prepare_run_dir(cfg: Config) -> str:
    run_dir = os.path.join(cfg.workdir, cfg.run_name or cfg.default_run_name())
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ConfigError("workdir", f"cannot write to {run_dir}: {e.strerror or e}") from e
    return run_dir


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


def _step_spec(cfg: Config, ds) -> steps.StepSpec:
    k = cfg.noise_scale_groups
    sub = cfg.batch_size // k
    bn = uses_batch_norm(cfg.model)
    vmap_ok = (not bn) or (cfg.ghost_batch_size > 0 and sub % cfg.ghost_batch_size == 0)
    augment = None
    if cfg.augment and ds.augment == "crop_flip":
        from lbbench.data.augment import crop_flip
        augment = crop_flip
    return steps.StepSpec(batch_size=cfg.batch_size, groups=k, vmap_groups=vmap_ok,
                          noise_decay=cfg.noise_scale_ema, sam=cfg.optimizer == "sam", augment=augment)


def init_state(cfg: Config, model, tx, ds, key) -> steps.TrainState:
    init_key, dropout_key = jax.random.split(key)
    variables = model.init({"params": init_key, "dropout": dropout_key}, ds.x_train[:2], train=False)
    params = variables["params"]
    return steps.TrainState(params=params, batch_stats=variables.get("batch_stats", {}),
                            opt_state=tx.init(params), step=jnp.zeros((), jnp.int32),
                            noise=noise_scale.init())


def _bn_message(cfg: Config) -> str:
    if not uses_batch_norm(cfg.model):
        return f"model {cfg.model} has no BatchNorm"
    if cfg.ghost_batch_size:
        return f"ghost BatchNorm: statistics over groups of {cfg.ghost_batch_size} examples"
    return f"BatchNorm statistics over the whole global batch of {cfg.batch_size} (no ghost batches)"


class Trainer:
    """Holds the compiled functions and device-resident data of one run."""

    def __init__(self, cfg: Config, ds, mesh):
        self.cfg, self.ds, self.mesh = cfg, ds, mesh
        self.model = build_model(cfg.model, ds.num_classes, cfg.ghost_batch_size)
        self.steps_per_epoch = ds.num_train // cfg.batch_size
        self.schedule = schedules.make_schedule(cfg, self.steps_per_epoch)
        self.tx = make_optimizer(cfg, self.schedule)
        self.spec = _step_spec(cfg, ds)
        put = lambda a: parallel.put_replicated(np.asarray(a), mesh)
        self.x_train, self.y_train = put(ds.x_train), put(ds.y_train)
        self.eval_sets = eval_sets(ds, cfg.train_eval_examples, put)
        train_step = steps.make_train_step(self.model, self.tx, self.schedule, self.spec)
        self._epoch = steps.make_epoch(train_step, self.steps_per_epoch, self.spec, parallel.data_sharding(mesh))

    def compile(self, state, key) -> float:
        """Ahead-of-time compile the epoch and both evaluations; returns seconds spent compiling."""
        t0 = time.perf_counter()
        rep = parallel.replicated(self.mesh)
        epoch = jax.jit(self._epoch, in_shardings=(rep,) * 4, out_shardings=(rep, rep), donate_argnums=0)
        self._compiled_epoch = epoch.lower(state, key, self.x_train, self.y_train).compile()
        self.eval_fns = {}
        for name, (chunk, arrays) in self.eval_sets.items():
            fn = jax.jit(steps.make_evaluate(self.model, chunk))
            self.eval_fns[name] = fn.lower(state.params, state.batch_stats, *arrays).compile()
        return time.perf_counter() - t0

    def epoch_fn(self, state, key):
        """One compiled epoch over the resident training set: (new state, per-step metrics)."""
        return self._compiled_epoch(state, key, self.x_train, self.y_train)

    def evaluate(self, state) -> dict:
        out = {}
        for name, (_, arrays) in self.eval_sets.items():
            loss, acc = self.eval_fns[name](state.params, state.batch_stats, *arrays)
            out[f"{name}_loss"], out[f"{name}_accuracy"] = float(loss), float(acc)
        out["generalization_gap"] = out["train_accuracy"] - out["test_accuracy"]
        out["loss_gap"] = out["test_loss"] - out["train_loss"]
        return out

    def sharpness(self, state, key) -> dict:
        return measure_sharpness(self.cfg, self.model, state, self.ds, key)


def _epoch_record(cfg, trainer, state, metrics, evals, init_params, seconds) -> dict:
    """Everything logged once per epoch (host values)."""
    n = trainer.steps_per_epoch * cfg.batch_size
    dist = float(jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in
                              zip(jax.tree.leaves(state.params), jax.tree.leaves(init_params)))))
    rec = {**evals, "step_loss": float(np.mean(metrics["loss"])),
           "step_accuracy": float(np.mean(metrics["accuracy"])),
           "grad_norm": float(np.mean(metrics["grad_norm"])),
           "learning_rate": float(metrics["learning_rate"][-1]),
           "distance_from_init": dist, "examples_per_s": n / seconds, "epoch_seconds": seconds}
    if cfg.noise_scale_groups > 1:
        rec.update({f"noise_{k}": float(v) for k, v in noise_scale.summary(state.noise).items()})
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


def _train_loop(cfg, trainer, state, writer, key, history):
    """Run the epochs; returns the final state. Raises Diverged (state kept in history)."""
    init_params = jax.tree.map(jnp.copy, state.params)
    for epoch in range(1, cfg.epochs + 1):
        key, ek, sk = jax.random.split(key, 3)
        t0 = time.perf_counter()
        state, metrics = trainer.epoch_fn(state, ek)
        metrics = jax.device_get(metrics)  # the one host round-trip per epoch
        rec = _epoch_record(cfg, trainer, state, metrics, trainer.evaluate(state), init_params,
                            time.perf_counter() - t0)
        step = int(state.step)
        writer.step_series("train/step_loss", step - len(metrics["loss"]), metrics["loss"])
        writer.scalars(step, {_TB_TAGS[k]: v for k, v in rec.items()}, record="epoch", epoch=epoch)
        history.append({"epoch": epoch, "step": step, **rec})
        log(_progress_line(epoch, cfg, rec))
        if not all(np.isfinite([rec["step_loss"], rec["train_loss"], rec["test_loss"]])):
            raise Diverged(f"loss became NaN/inf in epoch {epoch}")
        if cfg.sharpness and cfg.sharpness_every and epoch % cfg.sharpness_every == 0 and epoch < cfg.epochs:
            _log_sharpness(writer, step, trainer.sharpness(state, sk), epoch)
    return state


def save_variables(run_dir: str, state) -> str:
    """Final parameters and BatchNorm statistics as flax msgpack, written atomically."""
    path = os.path.join(run_dir, "params.msgpack")
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    atomic_write_bytes(path, flax.serialization.to_bytes(jax.device_get(variables)))
    return path


def load_run(run_dir: str):
    """Load a finished run back: (Config, model, variables) — `model.apply(variables, x, train=False)`."""
    import json

    with open(os.path.join(run_dir, "result.json")) as f:
        result = json.load(f)
    cfg = Config.from_dict(result["config"])
    model = build_model(cfg.model, result["dataset"]["num_classes"], cfg.ghost_batch_size)
    with open(os.path.join(run_dir, "params.msgpack"), "rb") as f:
        variables = flax.serialization.msgpack_restore(f.read())
    return cfg, model, variables


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


def run(cfg: Config) -> dict:
    """Train `cfg` end to end; always writes result.json (completed, diverged or failed)."""
    cfg = cfg.validate()
    t_start = time.perf_counter()
    origin = provenance()
    ds = data_lib.load(cfg.dataset, cfg.cache_dir, download=cfg.download)
    parallel.check_batch(cfg, ds.num_train)
    run_dir = prepare_run_dir(cfg)
    mesh = parallel.make_mesh()
    for w in cfg.warnings():
        log(f"warning: {w}")
    trainer = Trainer(cfg, ds, mesh)
    log(f"lbbench: {cfg.dataset} ({ds.num_train} train, {len(ds.y_test)} test), {cfg.model}, "
        f"{cfg.optimizer}, batch {cfg.batch_size} on {jax.device_count()} {jax.devices()[0].platform} "
        f"device(s), lr {cfg.scaled_learning_rate:.4g} ({cfg.lr_scaling} scaling), {cfg.schedule}; "
        f"{trainer.steps_per_epoch} steps/epoch, {ds.num_train % cfg.batch_size} examples dropped per epoch; "
        f"{_bn_message(cfg)}")
    key = jax.random.PRNGKey(cfg.seed)
    init_key, train_key, sharp_key = jax.random.split(key, 3)
    state = jax.device_put(init_state(cfg, trainer.model, trainer.tx, ds, init_key), parallel.replicated(mesh))
    compile_s = trainer.compile(state, train_key)
    writer = RunWriter(run_dir, cfg.to_dict(), grid=hparams.sweep_grid(cfg.workdir), wandb_project=cfg.wandb_project)
    history, status, extra, train_s = [], "completed", {}, 0.0
    t_train = time.perf_counter()
    try:
        state = _train_loop(cfg, trainer, state, writer, train_key, history)
        train_s = time.perf_counter() - t_train
        if cfg.sharpness:
            extra["sharpness"] = trainer.sharpness(state, sharp_key)
            _log_sharpness(writer, int(state.step), extra["sharpness"], len(history))
        if cfg.noise_scale_groups > 1:
            extra["noise_scale"] = {k: finite_or_none(v) for k, v in noise_scale.summary(state.noise).items()}
            extra["noise_scale"].update(b_small=cfg.batch_size // cfg.noise_scale_groups, b_big=cfg.batch_size)
        if cfg.save_params and jax.process_index() == 0:
            save_variables(run_dir, state)
    except Diverged as e:
        status, train_s = "diverged", time.perf_counter() - t_train
        extra["diverged_epoch"] = len(history)
        extra["error"] = str(e)
        log(f"lbbench: run diverged: {e}")
    except BaseException as e:  # noqa: BLE001 - recorded (Ctrl-C included), then re-raised for the CLI
        status, train_s = "failed", time.perf_counter() - t_train
        extra["error"] = f"{type(e).__name__}: {e}"
        extra["traceback"] = traceback.format_exc()
        raise
    finally:
        n_examples = len(history) * trainer.steps_per_epoch * cfg.batch_size
        timing = {"total_s": time.perf_counter() - t_start, "compile_s": compile_s, "train_s": train_s,
                  "examples_per_s": n_examples / train_s if train_s > 0 else None,
                  "steps": len(history) * trainer.steps_per_epoch}
        result = _result(cfg, status, history, timing, {"dataset": _dataset_info(ds), "provenance": origin, **extra})
        final_step = int(history[-1]["step"]) if history else 0
        writer.scalars(final_step, {f"final/{k}": v for k, v in result["final"].items()})
        writer.close(status)
        if jax.process_index() == 0:
            atomic_write_json(os.path.join(run_dir, "result.json"), result)
    result["run_dir"] = run_dir
    return result
