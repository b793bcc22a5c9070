"""The persistent compilation cache: a second identical run reads every program back (no new entries)
and trains to the same result; `$LBBENCH_COMPILE_CACHE=0` turns it off."""

import json
import os
import subprocess
import sys

import pytest

from lbbench.runs import compile_cache

RUN = """
import json, sys
from lbbench.config import Config
from lbbench.runs import compile_cache
from lbbench.training import loop
compile_cache.enable(min_compile_s=0)
cfg = Config(dataset="random", model="tiny_mlp", batch_size=100, epochs=2, sharpness=False,
             train_eval_examples=200, noise_scale_groups=2, workdir=sys.argv[1], run_name=sys.argv[2])
r = loop.run(cfg)
print(json.dumps({"final": r["final"], "compile_s": r["timing"]["compile_s"]}))
"""


def _run(tmp_path, name, cache):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", compile_cache.ENV: str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / "runs"), name], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_identical_run_compiles_nothing_new_and_matches(tmp_path):
    cache = tmp_path / "jaxcache"
    first = _run(tmp_path, "a", cache)
    entries = set(os.listdir(cache))
    assert entries, "the first run wrote its compiled programs"
    second = _run(tmp_path, "b", cache)
    assert set(os.listdir(cache)) == entries, "every program of the second run was a cache hit"
    assert second["final"] == first["final"]
    assert second["compile_s"] < first["compile_s"]  # read back, not compiled (recorded in result.json)


def test_location_follows_the_environment_and_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.location(str(tmp_path)) == str(tmp_path / "jax")
    monkeypatch.setenv(compile_cache.ENV, "0")
    assert compile_cache.location(str(tmp_path)) is None and compile_cache.enable(str(tmp_path)) is None
