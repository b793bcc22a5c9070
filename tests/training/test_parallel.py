"""Data parallelism on 8 simulated CPU devices, each case in its own process (no flag leaks)."""

import json
import os
import subprocess
import sys

import flax
import jax
import numpy as np
import pytest

COMMON = ["--dataset=random", "--batch_size=64", "--epochs=1", "--nosharpness", "--seed=5", "--train_eval_examples=200"]


def run_cli(tmp_path, devices: int, name: str, extra: list[str]):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run(
        [sys.executable, "-m", "lbbench.main", *COMMON, *extra, f"--workdir={tmp_path}", f"--run_name={name}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / name / "result.json").read_text())
    assert result["environment"]["device_count"] == devices
    with open(tmp_path / name / "params.msgpack", "rb") as f:
        return flax.serialization.msgpack_restore(f.read()), result


@pytest.mark.parametrize(
    "extra",
    [
        ["--model=tiny_mlp"],
        ["--model=tiny_bn_mlp", "--ghost_batch_size=4"],  # per-device batch 8, ghost 4 divides it
    ],
)
@pytest.mark.slow
def test_eight_devices_match_one(tmp_path, extra):
    one, r1 = run_cli(tmp_path, 1, "one", extra)
    eight, r8 = run_cli(tmp_path, 8, "eight", extra)
    leaves1, leaves8 = jax.tree.leaves(one), jax.tree.leaves(eight)
    assert len(leaves1) == len(leaves8) > 0
    for a, b in zip(leaves1, leaves8):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert r1["final"]["test_accuracy"] == pytest.approx(r8["final"]["test_accuracy"], abs=1e-6)


SHARD_CHECK = r"""
import json, jax, numpy as np
from lbbench.training import parallel
mesh = parallel.make_mesh()
x = parallel.put_replicated(np.arange(64 * 3, dtype=np.float32).reshape(64, 3), mesh)
idx = jax.numpy.arange(32)[::-1]
f = jax.jit(lambda x, i: jax.lax.with_sharding_constraint(x[i], parallel.data_sharding(mesh)))
batch = f(x, idx)
print(json.dumps({"shapes": [list(s.data.shape) for s in batch.addressable_shards],
                  "devices": sorted(str(s.device) for s in batch.addressable_shards),
                  "first_rows": [float(np.asarray(s.data)[0, 0]) for s in batch.addressable_shards]}))
"""


def test_batch_is_split_across_eight_devices():
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    out = subprocess.run(
        [sys.executable, "-c", SHARD_CHECK], capture_output=True, text=True, env=env, timeout=120, check=True
    ).stdout
    info = json.loads(out)
    assert info["shapes"] == [[4, 3]] * 8  # 32 rows over 8 devices
    assert len(set(info["devices"])) == 8
    # each device holds its own contiguous share of the (reversed) batch: rows 31-28, 27-24, ...
    assert sorted(info["first_rows"], reverse=True) == [float(3 * (31 - 4 * k)) for k in range(8)]


@pytest.mark.slow
def test_trial_group_on_eight_devices_matches_one(tmp_path):
    """Two seeds as one vmapped program (trials replicated, each trial's batch split over devices)."""
    env = lambda d: {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={d}"}
    params = {}
    for d in (1, 8):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "lbbench.main",
                *COMMON,
                "--model=tiny_bn_mlp",
                "--ghost_batch_size=4",
                "--seeds=5,6",
                f"--workdir={tmp_path}",
                f"--run_name=d{d}",
            ],
            capture_output=True,
            text=True,
            env=env(d),
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        for s in (5, 6):
            result = json.loads((tmp_path / f"d{d}_s{s}" / "result.json").read_text())
            assert result["environment"]["device_count"] == d and result["timing"]["trials_in_program"] == 2
            with open(tmp_path / f"d{d}_s{s}" / "params.msgpack", "rb") as f:
                params[d, s] = flax.serialization.msgpack_restore(f.read())
    for s in (5, 6):
        for a, b in zip(jax.tree.leaves(params[1, s]), jax.tree.leaves(params[8, s])):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.tree.leaves(params[1, 5])[0], jax.tree.leaves(params[1, 6])[0])
