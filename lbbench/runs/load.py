"""Load a finished run back, refusing anything that is not exactly what its result.json describes.

Checks, in order: result.json is readable; its status is `completed` (a diverged or failed run
has no trustworthy parameters); params.msgpack exists; its sha256 equals `params_sha256` in
result.json (so a params file from another run cannot pass as this one's); and its tree of
arrays has exactly the names and shapes that the config's model has on the dataset's inputs.
"""

from __future__ import annotations

import hashlib
import json
import os

from lbbench.config import Config, ConfigError
from lbbench.runs.folder import RunLoadError


def _shapes(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_shapes(v, f"{prefix}/{k}"))
        return out
    return {prefix: tuple(getattr(tree, "shape", ()))}


def load_run(run_dir: str):
    """(Config, model, variables) of a completed run; RunLoadError saying what is wrong otherwise."""
    import flax
    import jax
    import jax.numpy as jnp

    from lbbench.models import build_model

    path = os.path.join(run_dir, "result.json")
    try:
        with open(path) as f:
            result = json.load(f)
        cfg = Config.from_dict(result["config"])
        num_classes = result["dataset"]["num_classes"]
        input_shape = tuple(result["dataset"]["input_shape"])
    except FileNotFoundError:
        raise RunLoadError(f"{run_dir} has no result.json: the run never finished") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        raise RunLoadError(f"{path} is unreadable or incomplete ({type(e).__name__}: {e})") from None
    status = result.get("status")
    if status != "completed":
        why = f": {result['error']}" if result.get("error") else ""
        raise RunLoadError(f"{run_dir} did not complete (status {status}{why}); its parameters are not a "
                           "trained model")
    ppath = os.path.join(run_dir, "params.msgpack")
    try:
        with open(ppath, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RunLoadError(f"{run_dir} has no params.msgpack (the run had save_params off)") from None
    want = result.get("params_sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise RunLoadError(f"{ppath} is not the file this run wrote (checksum differs from result.json's "
                           "params_sha256): it belongs to another run or was modified")
    try:
        variables = flax.serialization.msgpack_restore(data)
    except Exception as e:  # noqa: BLE001 - any decoding error means a damaged file
        raise RunLoadError(f"{ppath} is damaged ({type(e).__name__}: {e})") from None
    model = build_model(cfg.model, num_classes, cfg.ghost_batch_size)
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    expected = jax.eval_shape(lambda x: model.init(keys, x, train=False),
                              jax.ShapeDtypeStruct((2,) + input_shape, jnp.float32))
    exp = _shapes({"params": expected["params"], "batch_stats": expected.get("batch_stats", {})})
    got = _shapes({"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})})
    if exp != got:
        diff = sorted(set(exp.items()) ^ set(got.items()))[:3]
        raise RunLoadError(f"{ppath} does not match the config's model {cfg.model} (first differences: "
                           f"{diff})")
    return cfg, model, variables
