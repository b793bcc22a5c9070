"""The one reader of result.json: one run's result, a finished run's model, every run as a row.

    read_result(folder)      the parsed result.json, or None (absent, unreadable, being written)
    read_checked(folder)     (result, None) or (None, why it cannot be used)
    read_json(path)          any other JSON object lbbench writes (sweep.json, analysis.json)
    load_run(folder)         (Config, model, variables) of a completed run, verified
    find(root) / load(root)  every result below a folder, as (folder, result) pairs or a DataFrame
    history(root)            every run's per-epoch history below a folder, one long DataFrame

`load_run` refuses anything that is not exactly what its result.json describes: the status must be
`completed` (a diverged or failed run has no trustworthy parameters), params.msgpack must exist,
its sha256 must equal result.json's `params_sha256` (a params file from another run cannot pass as
this one's; without a recorded checksum it refuses unless `trust=True`), and its tree of arrays
must have exactly the names and shapes of the config's model on the dataset's inputs.
pandas is imported only inside `load`, so the rest of lbbench never needs it.
"""

from __future__ import annotations

import hashlib
import json
import os

import flax
import jax
import jax.numpy as jnp

from lbbench.config import Config, ConfigError
from lbbench.config.sections import BOOKKEEPING
from lbbench.models import build_model
from lbbench.runs.tags import FINAL

TIMING = ("steps", "total_s", "compile_s", "train_s", "examples_per_s")
CHANCE_MARGIN = 0.05  # a run "never learned" if its final test accuracy is ≤ 1/num_classes + this
OBJECT_KEYS = ("final", "timing", "sharpness", "noise_scale", "history")


class RunLoadError(ValueError):
    """A run folder cannot be loaded as a finished run; the message says why."""


def result_problem(result) -> str | None:
    """Why a parsed result.json cannot be used (not an object, no status or config...), or None."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    if not isinstance(result.get("status"), str):
        return "no 'status'"
    cfg = result.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("run_name"), str):
        return "no 'config' with a run_name"
    for key in OBJECT_KEYS:
        if result.get(key) is not None and not isinstance(result[key], dict):
            return f"'{key}' is not an object"
    return None


def read_json(path: str) -> tuple[dict | None, str | None]:
    """(object, None) if `path` holds a JSON object; else (None, the reason): "missing", or what is wrong."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as e:
        return None, str(e)
    return (obj, None) if isinstance(obj, dict) else (None, f"expected a JSON object, got {type(obj).__name__}")


def read_checked(folder: str) -> tuple[dict | None, str | None]:
    """(result, None) if `folder`/result.json is a usable result, else (None, the reason)."""
    result, problem = read_json(os.path.join(folder, "result.json"))
    if problem == "missing":
        return None, "no result.json"
    if problem:
        return None, problem
    problem = result_problem(result)
    return (None, problem) if problem else (result, None)


def read_result(folder: str) -> dict | None:
    """`folder`/result.json as a dict, or None if absent, unreadable or not a result."""
    return read_checked(folder)[0]


def _shapes(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_shapes(v, f"{prefix}/{k}"))
        return out
    return {prefix: tuple(getattr(tree, "shape", ()))}


def _checked_params(run_dir: str, result: dict, trust: bool) -> bytes:
    ppath = os.path.join(run_dir, "params.msgpack")
    try:
        with open(ppath, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RunLoadError(f"{run_dir} has no params.msgpack (the run had save_params off)") from None
    want = result.get("params_sha256")
    if not want and not trust:
        raise RunLoadError(
            f"{run_dir}/result.json records no params_sha256, so nothing shows that {ppath} is "
            "this run's; load it anyway with load_run(..., trust=True) (lbbench-interpolate --trust)"
        )
    if want and hashlib.sha256(data).hexdigest() != want:
        raise RunLoadError(
            f"{ppath} is not the file this run wrote (checksum differs from result.json's "
            "params_sha256): it belongs to another run or was modified"
        )
    return data


def load_run(run_dir: str, trust: bool = False):
    """(Config, model, variables) of a completed run — `model.apply(variables, x, train=False)`.

    Raises RunLoadError saying what is wrong otherwise (see the module docstring).
    """
    path = os.path.join(run_dir, "result.json")
    result, problem = read_checked(run_dir)
    if problem == "no result.json":
        raise RunLoadError(f"{run_dir} has no result.json: the run never finished")
    try:
        if problem:
            raise ValueError(problem)
        cfg = Config.from_dict(result["config"])
        num_classes = result["dataset"]["num_classes"]
        input_shape = tuple(result["dataset"]["input_shape"])
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise RunLoadError(f"{path} is unreadable or incomplete ({type(e).__name__}: {e})") from None
    status = result.get("status")
    if status != "completed":
        why = f": {result['error']}" if result.get("error") else ""
        raise RunLoadError(f"{run_dir} did not complete (status {status}{why}); its parameters are not a trained model")
    data = _checked_params(run_dir, result, trust)
    try:
        variables = flax.serialization.msgpack_restore(data)
    except Exception as e:  # noqa: BLE001 - any decoding error means a damaged file
        raise RunLoadError(f"{run_dir}/params.msgpack is damaged ({type(e).__name__}: {e})") from None
    model = build_model(cfg.model, num_classes, cfg.ghost_batch_size)
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    expected = jax.eval_shape(
        lambda x: model.init(keys, x, train=False), jax.ShapeDtypeStruct((2,) + input_shape, jnp.float32)
    )
    exp = _shapes({"params": expected["params"], "batch_stats": expected.get("batch_stats", {})})
    got = _shapes({"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})})
    if exp != got:
        diff = sorted(set(exp.items()) ^ set(got.items()))[:3]
        raise RunLoadError(
            f"{run_dir}/params.msgpack does not match the config's model {cfg.model} (first differences: {diff})"
        )
    return cfg, model, variables


# ---------------------------------------------------------------------------- rows


def chance_accuracy(result: dict) -> float | None:
    """1 / num_classes of the run's dataset (None if result.json does not say)."""
    n = (result.get("dataset") or {}).get("num_classes")
    return 1.0 / n if n else None


def never_learned(result: dict, margin: float = CHANCE_MARGIN) -> bool:
    """A completed run whose final test accuracy is at chance (≤ 1/num_classes + margin).

    Such runs did not train at all (e.g. the linear scaling rule's learning rate was too large):
    their "generalization gap" is ~0 because both accuracies are at chance, so averaging them with
    runs that did learn, or reading their gap as "no gap", misleads.
    """
    chance = chance_accuracy(result)
    acc = (result.get("final") or {}).get("test_accuracy")
    return result.get("status") == "completed" and chance is not None and acc is not None and acc <= chance + margin


def eps_column(key: str) -> str:
    """Column name of one ε-sharpness value, e.g. 'full_0.001' -> 'eps_sharpness_full_0.001'."""
    return f"eps_sharpness_{key}"


def flatten(result: dict, margin: float = CHANCE_MARGIN) -> dict:
    """One row: run_name, status, never_learned, every config key, final metrics, sharpness, noise, timing."""
    cfg, sharp = result.get("config") or {}, result.get("sharpness") or {}
    row = {
        "run_name": cfg.get("run_name"),
        "status": result.get("status"),
        "never_learned": never_learned(result, margin),
        "chance_accuracy": chance_accuracy(result),
    }
    row.update({k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k != "run_name"})
    final = result.get("final") or {}
    row.update({k: final.get(k) for k in FINAL})
    row["lambda_max"] = sharp.get("lambda_max")
    row["hessian_trace"] = sharp.get("hessian_trace")
    row["hessian_trace_stderr"] = sharp.get("hessian_trace_stderr")
    for k, v in sorted((sharp.get("epsilon_sharpness") or {}).items()):
        row[eps_column(k)] = v
    row["b_simple"] = (result.get("noise_scale") or {}).get("b_simple")
    timing = result.get("timing") or {}
    row.update({k: timing.get(k) for k in TIMING})
    prov = result.get("provenance") or {}
    row["git_commit"] = prov.get("git_commit")
    row["error"] = result.get("error")
    return row


def find(folder: str) -> list[tuple[str, dict]]:
    """(run folder relative to `folder`, parsed result.json) for every usable result below `folder`;
    a run that recorded no run_name gets its folder's name."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # staging and failed attempts are hidden
        if "result.json" in files:
            result = read_result(root)
            if result is not None:  # being written, or killed before the atomic write: not a result yet
                if not result["config"].get("run_name"):
                    name = os.path.basename(os.path.abspath(root))
                    result = {**result, "config": {**result["config"], "run_name": name}}
                found.append((os.path.relpath(root, folder), result))
    return found


def _varying(results: list[dict]) -> list[str]:
    """Config keys (bookkeeping excluded) that take more than one value: batch size first, then in
    config order."""
    keys = list(dict.fromkeys(k for r in results for k in r["config"] if k not in BOOKKEEPING))
    value = lambda r, k: repr(r["config"].get(k))  # noqa: E731 - lists are unhashable
    return sorted((k for k in keys if len({value(r, k) for r in results}) > 1), key=lambda k: k != "batch_size")


def _sort_value(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _ordered(found: list[tuple[str, dict]], varying: list[str]) -> list[tuple[str, dict]]:
    """Runs in the order of the varying keys (numbers numerically), then seed, then run name."""
    keys = [*varying, "seed", "run_name"]
    return sorted(found, key=lambda dr: tuple(_sort_value(dr[1]["config"].get(k)) for k in keys))


def load(folder: str, margin: float = CHANCE_MARGIN, infrastructure: bool = False):
    """A pandas DataFrame with one row per run under `folder`, sorted by the keys that vary.

    Columns: run_name, run_dir (relative to `folder`), seed, the varying hyperparameters, status and
    never_learned, the metrics, the hyperparameters all runs share, timing; bookkeeping config keys
    (config.sections.BOOKKEEPING: workdir, sharpness, eval_every_steps, …), git_commit and error only with
    `infrastructure=True`, last.
    """
    import pandas as pd  # only here: pandas is needed for DataFrames, nowhere else

    found = find(folder)
    varying = _varying([r for _, r in found])
    rows = [{"run_dir": d, **flatten(r, margin)} for d, r in _ordered(found, varying)]
    if not rows:
        return pd.DataFrame(rows)
    config_keys = list(dict.fromkeys(k for _, r in found for k in r["config"] if k != "run_name"))
    infra = [k for k in config_keys if k in BOOKKEEPING and k != "seed"] + ["git_commit", "error"]
    shared = [k for k in config_keys if k not in BOOKKEEPING and k not in varying]
    first = ["run_name", "run_dir", "seed", *varying, "status", "never_learned"]
    placed = set(first) | set(shared) | set(infra) | set(TIMING)
    metrics = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in placed]
    columns = [*first, *metrics, *shared, *TIMING] + (infra if infrastructure else [])
    return pd.DataFrame(rows).reindex(columns=columns)


def history(folder: str):
    """Every run's per-epoch history under `folder` as one long pandas DataFrame (like W&B's
    `run.history()`, across runs): run_name, run_dir, seed, batch size and the other varying
    hyperparameters, epoch, step,
    examples (training examples seen = step × batch size), then every recorded metric. Runs in the
    order of `load`; a run without history contributes no rows."""
    import pandas as pd

    found = find(folder)
    varying = _varying([r for _, r in found])
    keys = list(dict.fromkeys(["batch_size", *varying]))
    frames = [_history_frame(d, r, keys) for d, r in _ordered(found, varying)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _history_frame(run_dir: str, result: dict, varying: list[str]):
    import pandas as pd

    h = result.get("history") or {}
    n = len(h.get("epoch") or [])
    metrics = {k: v for k, v in h.items() if isinstance(v, list) and len(v) == n and k not in ("epoch", "step")}
    cfg = result["config"]
    steps = h.get("step") if len(h.get("step") or []) == n else [None] * n
    b = cfg.get("batch_size")
    frame = {
        "run_name": [cfg["run_name"]] * n,
        "run_dir": [run_dir] * n,
        "seed": [cfg.get("seed")] * n,
        **{k: [tuple(cfg[k]) if isinstance(cfg.get(k), list) else cfg.get(k)] * n for k in varying},
        "epoch": list(h.get("epoch") or []),
        "step": steps,
        "examples": [s * b if s is not None and b else None for s in steps],
        **metrics,
    }
    return pd.DataFrame(frame)
