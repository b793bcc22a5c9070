"""Experiment files: finding them by name or path, loading them, calling their functions with
file:line errors, turning their grids into validated Configs. An experiment file is a plain Python
module (see lbbench.sweep); the studies that ship with lbbench live in lbbench/experiments/."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import traceback

import lbbench
from lbbench.config import Config, ConfigError
from lbbench.runs import names


class SweepError(ValueError):
    """The experiment file or the command line is unusable; the message is one line."""


def env_dataset(default: str = "mnist1d") -> str:
    """Dataset for an experiment: $LBBENCH_DATASET (e.g. mnist, cifar10) if set, else `default`."""
    return os.environ.get("LBBENCH_DATASET") or default


def _where(path: str, e: BaseException) -> str:
    """`file:line` of the deepest frame of `e` inside the experiment file (or just the file)."""
    target = os.path.realpath(path)
    line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
    for frame in traceback.extract_tb(e.__traceback__):
        if os.path.realpath(frame.filename) == target:
            line = frame.lineno
    return f"{path}:{line}" if line else path


def call_experiment(module, fn: str, *args):
    """module.fn(*args), with any exception turned into a one-line SweepError naming file and line."""
    try:
        return getattr(module, fn)(*args)
    except Exception as e:  # noqa: BLE001 - reported as one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SweepError(f"{_where(module.__file__, e)}: {fn}() raised {type(e).__name__}: {msg}") from None


def shipped() -> dict[str, str]:
    """{name: path} of the experiments that ship with lbbench (lbbench/experiments/*.py)."""
    folder = os.path.join(os.path.dirname(os.path.abspath(lbbench.__file__)), "experiments")  # data, not imported
    return {
        f[:-3]: os.path.join(folder, f)
        for f in sorted(os.listdir(folder))
        if f.endswith(".py") and not f.startswith("_")
    }


def resolve(spec: str) -> str:
    """The file an experiment argument names: an existing file, else a shipped experiment by name
    (`critical_batch`, `critical_batch.py`, or the old `experiments/critical_batch.py`)."""
    if os.path.isfile(spec):
        return spec
    name = os.path.splitext(os.path.basename(spec))[0]
    known = shipped()
    if name in known:
        return known[name]
    raise SweepError(f"experiment {spec!r} is neither a file nor a shipped experiment; shipped: {', '.join(known)}")


def load_experiment(spec: str):
    """Import an experiment (a path or a shipped name) and check it defines NAME, base_config and grid."""
    path = resolve(spec)
    name = "lbbench_experiment_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - reported as one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SweepError(f"{_where(path, e)}: cannot import: {type(e).__name__}: {msg}") from e
    retired = getattr(module, "RETIRED", None)
    if retired:  # a retired experiment file keeps its name and says, in one line, where its question went
        raise SweepError(f"{path} is retired: {' '.join(str(retired).split())}")
    for attr in ("NAME", "base_config", "grid"):
        if not hasattr(module, attr):
            raise SweepError(f"{path} does not define {attr}")
    try:
        names.normalize_run_name(str(module.NAME))
    except names.UnsafeName as e:
        raise SweepError(f"{path}: NAME {e}") from None
    return module


def parse_sets(items: list[str]) -> dict:
    """`--set key=value` items as typed Config overrides (type taken from the field's default)."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    out = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or key not in fields:
            raise SweepError(
                f"--set {item!r}: expected key=value with key a Config field"
                + (f" (unknown key {key!r})" if sep else "")
            )
        if key in ("run_name", "workdir"):
            raise SweepError(f"--set {key}: set per point by the grid / by --workdir, not by --set")
        default = fields[key].default
        try:
            if isinstance(default, bool):
                low = text.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(f"not a boolean: {text!r}")
                value = low in ("1", "true", "yes")
            elif isinstance(default, int):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
            elif isinstance(default, tuple):
                cast = float if key == "epsilons" else int
                value = tuple(cast(x) for x in text.split(",") if x.strip())
            else:
                value = text
        except ValueError as e:
            raise SweepError(f"--set {item!r}: {e}") from None
        out[key] = value
    return out


def normalized_points(points, what: str) -> list[dict]:
    if not isinstance(points, (list, tuple)) or not all(isinstance(p, dict) for p in points):
        raise SweepError(f"{what} must return a list of dicts")
    out = []
    for p in points:
        if not p.get("run_name"):
            raise SweepError(f"every {what} point needs a run_name")
        try:
            out.append({**p, "run_name": names.normalize_run_name(str(p["run_name"]))})
        except names.UnsafeName as e:
            raise SweepError(f"{what} point run_name {e}") from None
    return out


def configs_for(base: Config, points: list[dict], sweep_dir: str, sets: dict | None = None) -> list[Config]:
    """Validated Configs of `points` (override dicts), `sets` applied on top, workdir = sweep_dir."""
    configs = []
    for p in points:
        try:
            configs.append(base.replace(**{**p, **(sets or {}), "workdir": sweep_dir}).validate())
        except (ConfigError, TypeError) as e:  # TypeError: unknown Config field
            raise SweepError(f"grid point {p['run_name']}: {e}") from e
    return configs


def build_configs(module, quick: bool, sweep_dir: str, sets: dict | None = None) -> tuple[list[dict], list[Config]]:
    """The grid's override dicts (names normalised) and their validated Configs."""
    base = call_experiment(module, "base_config", quick)
    if not isinstance(base, Config):
        raise SweepError(f"{module.__file__}: base_config() must return a Config, got {type(base).__name__}")
    points = call_experiment(module, "grid", quick)
    if not points:
        raise SweepError(f"experiment {module.NAME} has an empty grid")
    points = normalized_points(points, "grid")
    names_ = [p["run_name"] for p in points]
    dupes = sorted({n for n in names_ if names_.count(n) > 1})
    if dupes:
        raise SweepError(f"duplicate run_name(s) in grid: {', '.join(dupes)}")
    return points, configs_for(base, points, sweep_dir, sets)


def sweep_dir_for(workdir: str, name: str, quick: bool) -> str:
    return os.path.join(workdir, name + ("-quick" if quick else ""))
