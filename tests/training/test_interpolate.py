"""Keskar interpolation: the endpoints reproduce each run's own evaluation (independent reference)."""

import numpy as np
import optax
import pytest

from lbbench import data as data_lib
from lbbench.config import Config
from lbbench.results import load_run
from lbbench.training import loop as train
from lbbench.training.interpolate import interpolate, interpolate_variables


def _reference(run_dir):
    """Mean cross-entropy and accuracy by model.apply on the whole train and test sets."""
    cfg, model, variables = load_run(run_dir)
    ds = data_lib.load(cfg.dataset, cfg.cache_dir)
    out = {}
    for name, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        logits = model.apply(variables, x, train=False)
        out[f"{name}_loss"] = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
        out[f"{name}_accuracy"] = float(np.mean(np.argmax(logits, -1) == y))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("interp"))
    base = Config(dataset="random", model="tiny_bn_mlp", epochs=2, sharpness=False, noise_scale_groups=1, workdir=work)
    sb = train.run(base.replace(batch_size=50, run_name="sb"))["run_dir"]
    lb = train.run(base.replace(batch_size=500, run_name="lb", seed=1))["run_dir"]
    return sb, lb


def test_endpoints_match_each_runs_own_evaluation(runs):
    sb, lb = runs
    curve = interpolate(sb, lb, alphas=[0.0, 0.5, 1.0, 2.0])
    for i, run_dir in ((0, sb), (2, lb)):
        ref = _reference(run_dir)  # the random toy has 1000 train examples: the subset is all of them
        for key, value in ref.items():
            np.testing.assert_allclose(curve[key][i], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert np.all(np.isfinite(curve["train_loss"])) and curve["bn_statistics"].startswith("interpolated")


def test_variances_clipped_when_extrapolating():
    sb = {"params": {"w": np.ones(3)}, "batch_stats": {"bn": {"mean": np.zeros(3), "var": np.full(3, 4.0)}}}
    lb = {"params": {"w": 3 * np.ones(3)}, "batch_stats": {"bn": {"mean": np.ones(3), "var": np.full(3, 1.0)}}}
    v = interpolate_variables(sb, lb, 2.0)
    np.testing.assert_allclose(v["params"]["w"], 5.0)
    np.testing.assert_allclose(v["batch_stats"]["bn"]["mean"], 2.0)
    np.testing.assert_allclose(v["batch_stats"]["bn"]["var"], 0.0)  # 2·1 − 4 = −2 → clipped
    np.testing.assert_allclose(interpolate_variables(sb, lb, -1.0)["batch_stats"]["bn"]["var"], 7.0)
