"""Mid-run checkpoints: what one trial needs to continue bit-identically, written where a kill leaves it.

Each trial of a group has its own checkpoint folder beside its run folder, `<workdir>/.<run>.ckpt/`
(hidden, so reports never see it; not the staging folder, which the next open of the name removes).
A checkpoint is one flax msgpack file `step-<global step>.msgpack`, written atomically; the last
`KEEP` are kept and the folder is removed once the run has finished — unless the run asks to keep
them all (`--keep_checkpoints`), for branching studies that start other runs from its checkpoints
with `--init_from=RUN:STEP` (experiments/local_critical_batch.py). Per trial rather than per
group, so a sweep may pack a resumed point with other trials, and `--init_from` can name any run.

A checkpoint is taken at a segment end (the host holds the state there anyway) and holds:
the trial's TrainState (params, BatchNorm statistics, optimizer state with its injected
hyperparameters, step, noise-scale EMA, traced schedule, PRNG key, alive flag), its initial params
(distances from init), the position in the data order (epoch, steps done in it, and the epoch's
key before its shuffle, from which the order is drawn again), the per-step metrics of the epoch so
far, and the host-side record (history, evaluations, status, extras, train seconds, instrument
scheduler state).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil

import flax
import numpy as np

from lbbench.config import Config, ConfigError
from lbbench.runs import atomic, folder
from lbbench.runs.reader import read_result

KEEP = 2  # checkpoints kept per trial: the last one may be cut by a kill only before its rename
DEFAULT_SECONDS = 600.0  # --checkpoint_every_steps=0: one checkpoint per this much training time
FORMAT = 1
_NAME = re.compile(r"^step-(\d+)\.msgpack$")


def ckpt_dir(final_dir: str) -> str:
    """The hidden checkpoint folder that belongs to the run folder `final_dir`."""
    parent, base = os.path.split(os.path.normpath(final_dir))
    return os.path.join(parent, f".{base}.ckpt")


def dir_for(cfg: Config) -> str:
    return ckpt_dir(folder.run_dir(cfg))


def steps(directory: str) -> list[int]:
    """Global steps of the checkpoints in `directory`, ascending ([] if none)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


def path(directory: str, step: int) -> str:
    return os.path.join(directory, f"step-{step:010d}.msgpack")


def exists(cfg: Config) -> bool:
    return bool(steps(dir_for(cfg)))


def save(directory: str, step: int, payload: dict, keep_all: bool = False) -> None:
    """Write one checkpoint atomically, then drop all but the last KEEP (none with `keep_all`:
    --keep_checkpoints, a reference run that branching studies start from at chosen steps)."""
    atomic.write_bytes(path(directory, step), flax.serialization.msgpack_serialize(payload))
    for old in [] if keep_all else steps(directory)[:-KEEP]:
        try:
            os.remove(path(directory, old))
        except OSError:
            pass


def load(directory: str, step: int) -> dict:
    with open(path(directory, step), "rb") as f:
        return flax.serialization.msgpack_restore(f.read())


def remove(cfg: Config) -> None:
    """The run finished: its checkpoints are no longer needed."""
    shutil.rmtree(dir_for(cfg), ignore_errors=True)


def to_host(tree) -> dict:
    """A (host) pytree as a msgpack-able state dict."""
    return flax.serialization.to_state_dict(tree)


def from_host(template, state_dict):
    """`state_dict` restored into the structure of `template` (exact values, template's types)."""
    return flax.serialization.from_state_dict(template, state_dict)


def resume_step(cfgs: list[Config]) -> int:
    """The latest checkpoint step every trial of the group has; ConfigError (exit 2) if there is none."""
    common = None
    for c in cfgs:
        have = set(steps(dir_for(c)))
        if not have:
            raise ConfigError(
                "resume",
                f"nothing to resume: no checkpoint of {folder.run_name(c)} in {dir_for(c)} (a run that "
                "finished removes its checkpoints; drop --resume to start afresh)",
            )
        common = have if common is None else common & have
    if not common:
        raise ConfigError("resume", "the trials of this group have no checkpoint at a common step; drop --resume")
    return max(common)


def parse_init_from(spec: str) -> tuple[str, int | None]:
    """'RUN' or 'RUN:STEP' → (RUN, STEP or None)."""
    run, sep, step = spec.rpartition(":")
    if sep and step.isdigit():
        return run, int(step)
    return spec, None


def _source_dir(cfg: Config, run: str) -> str:
    """The run folder `run` names: a path as given, else a name under --workdir."""
    for candidate in (run, os.path.join(cfg.workdir, run)):
        if os.path.isdir(candidate) or steps(ckpt_dir(candidate)):
            return os.path.normpath(candidate)
    raise ConfigError("init_from", f"no run {run!r} (looked for {run} and {os.path.join(cfg.workdir, run)})")


def init_source(cfg: Config) -> tuple[dict, dict]:
    """(variables, provenance) of --init_from: {"params", "batch_stats"[, "opt_state", "step"]} from a
    checkpoint, or params and batch statistics from a finished run's params.msgpack."""
    run, step = parse_init_from(cfg.init_from)
    src = _source_dir(cfg, run)
    have = steps(ckpt_dir(src))
    if step is not None and step not in have:
        listed = ", ".join(map(str, have)) or "none"
        raise ConfigError("init_from", f"{src} has no checkpoint at step {step} (checkpoints at: {listed})")
    if have:
        step = step if step is not None else have[-1]
        file = path(ckpt_dir(src), step)
        with open(file, "rb") as f:
            data = f.read()
        state = flax.serialization.msgpack_restore(data)["state"]
        variables = {k: state[k] for k in ("params", "batch_stats", "opt_state")}
        return variables, _origin(src, step, "checkpoint", data)
    return _finished_params(src)


def _finished_params(src: str) -> tuple[dict, dict]:
    result = read_result(src)
    file = os.path.join(src, "params.msgpack")
    if not result or not os.path.exists(file):
        raise ConfigError("init_from", f"{src} has no checkpoint and no saved params.msgpack to start from")
    with open(file, "rb") as f:
        data = f.read()
    if result.get("params_sha256") and hashlib.sha256(data).hexdigest() != result["params_sha256"]:
        raise ConfigError("init_from", f"{file} does not match the checksum in its result.json")
    variables = flax.serialization.msgpack_restore(data)
    steps_done = (result.get("timing") or {}).get("steps")
    return variables, _origin(src, steps_done, "params", data)


def _origin(src: str, step, kind: str, data: bytes) -> dict:
    return {"run": src, "step": step, "from": kind, "sha256": hashlib.sha256(data).hexdigest()}


def shapes(tree) -> list:
    """(path, shape) of every leaf: what must agree for another run's params to fit this model."""
    flat = flax.traverse_util.flatten_dict(to_host(tree)) if tree else {}
    return sorted(("/".join(map(str, k)), tuple(np.shape(v))) for k, v in flat.items())
