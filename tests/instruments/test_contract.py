"""The contract every registered instrument meets (optax's `_common_test` pattern): a new module in
lbbench/instruments/ with NAME, build() and ENABLE is enrolled here without editing this file.

On a toy trial trained by the real loop, each instrument: is built only when its ENABLE switches it
on; declares a positive, finite cost in train steps; yields finite floats under the same names at
every run (read back from metrics.jsonl, where the scheduler records every run); has its measured
seconds recorded beside its declared cost; and gives each trial of a vmapped group what that trial's
solo run gives."""

import json
import math
import os

import numpy as np
import pytest

from lbbench.config import Config
from lbbench.instruments import registry
from lbbench.training import run, run_group

NAMES = registry.names()
BASE = dict(
    dataset="random",
    model="tiny_mlp",
    batch_size=100,
    epochs=2,
    optimizer="adam",
    noise_scale_groups=1,
    sharpness=False,
    train_eval_examples=200,
    sharpness_examples=200,
    save_params=False,
)  # 2 minibatches: a batch-sharpness stderr
ALL_ON = {k: v for name in NAMES for k, v in registry.get(name).ENABLE.items()}
LEARNING_RATES = (1e-2, 3e-3)


def _records(run_dir: str, name: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if r["record"] == name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two trials with every instrument on, trained as one vmapped group and each alone."""
    root = tmp_path_factory.mktemp("contract")
    cfgs = [
        Config(**{**BASE, **ALL_ON}, learning_rate=lr, run_name=f"t{i}", workdir=str(root / "group"))
        for i, lr in enumerate(LEARNING_RATES)
    ]
    group = run_group(cfgs)
    solo = [run(c.replace(workdir=str(root / "solo"))) for c in cfgs]
    return group, solo


def test_every_instrument_module_is_enrolled():
    assert len(NAMES) >= 5
    for name in NAMES:
        assert isinstance(registry.get(name).ENABLE, dict), name


@pytest.mark.parametrize("name", NAMES)
def test_built_only_when_switched_on_with_a_positive_declared_cost(name):
    module = registry.get(name)
    assert module.build(Config(**BASE), registry.BuildContext(10, registry.TopVectors())) is None
    inst = module.build(Config(**{**BASE, **module.ENABLE}), registry.BuildContext(10, registry.TopVectors()))
    assert inst is not None and inst.name == name
    cost = inst.cost_steps()
    assert isinstance(cost, float) and math.isfinite(cost) and cost > 0
    assert "train step" in inst.describe_cost()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_yields_finite_floats_under_stable_names(name, trained):
    group, _ = trained
    for result in group:
        records = _records(result["run_dir"], name)
        assert records, f"{name} never ran"
        names = {k for k in records[0] if k not in ("record", "step", "epoch")}
        assert names and all(k.startswith(f"{name}/") for k in names)
        for r in records:
            values = {k: v for k, v in r.items() if k not in ("record", "step", "epoch")}
            assert set(values) == names, (name, r["step"])
            assert all(isinstance(v, float) and math.isfinite(v) for v in values.values()), (name, values)


@pytest.mark.parametrize("name", NAMES)
def test_measured_seconds_are_recorded_beside_the_declared_cost(name, trained):
    for result in trained[0]:
        t = result["timing"]["instruments"][name]
        assert t["runs"] == len(_records(result["run_dir"], name)) and t["runs"] > 0
        assert t["declared_cost_steps"] > 0 and t["seconds"] > 0 and t["measured_cost_steps"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_a_vmapped_group_gives_each_trial_what_its_solo_run_gives(name, trained):
    group, solo = trained
    for g, s in zip(group, solo):
        rg, rs = _records(g["run_dir"], name), _records(s["run_dir"], name)
        assert [r["step"] for r in rg] == [r["step"] for r in rs]
        for a, b in zip(rg, rs):
            keys = sorted(k for k in a if "/" in k)
            np.testing.assert_allclose(
                [a[k] for k in keys], [b[k] for k in keys], rtol=2e-4, atol=1e-6, err_msg=f"{name} at step {a['step']}"
            )
