"""lbbench/experiments/edge_of_stability.py: grid, and analyze() on fabricated results with known answers."""

import json

import pytest

from lbbench.config import Config
from lbbench.experiments import edge_of_stability


@pytest.fixture(scope="module")
def eos():
    return edge_of_stability


def fake(optimizer, batch_size, lr, steps, curvature, subset=400, status="completed", momentum=0.9):
    """A result dict with the fields analyze reads; `curvature` maps column -> values at steps 10, 20, ..."""
    n = len(next(iter(curvature.values())))
    cfg = Config(
        optimizer=optimizer, batch_size=batch_size, learning_rate=lr, train_subset=subset, momentum=momentum
    ).to_dict()
    return {
        "status": status,
        "config": cfg,
        "timing": {"steps": steps},
        "final": {"train_loss": 0.5},
        "history": {"step": [steps], "train_loss": [0.5]},
        "curvature": {"step": [10 * (i + 1) for i in range(n)], **curvature},
    }


# Ten measurements at steps 10..100 of a 100-step run: the second half is steps 60..100 (step 50 = T/2
# is excluded), i.e. the last five values.
FIRST = [0.1, 0.2, 0.3, 0.4, 5.0]  # the fifth (step 50) would break every statistic if it were counted


@pytest.fixture()
def results():
    return {
        # GD, eta 0.1: second-half ratios 1.0, 1.1, 1.3, 0.9, 0.75 -> 3 of 5 within +-20 %, median 1.0
        "gd_lr0p1": fake(
            "sgd",
            400,
            0.1,
            100,
            {
                "lambda_max_ratio": FIRST + [1.0, 1.1, 1.3, 0.9, 0.75],
                "lambda_max": [20 * v for v in FIRST + [1.0, 1.1, 1.3, 0.9, 0.75]],
                "batch_sharpness_ratio": [0.5] * 10,
            },
        ),
        # GD, eta 0.2: all within (one None dropped) -> stayed within; median lambda_max 10.5
        "gd_lr0p2": fake(
            "sgd",
            400,
            0.2,
            100,
            {
                "lambda_max_ratio": FIRST + [1.05, None, 1.05, 1.05, 1.05],
                "lambda_max": FIRST + [10.5, None, 10.5, 10.5, 10.5],
                "batch_sharpness_ratio": FIRST + [1.0, 1.0, 1.0, 1.0, 1.0],
            },
        ),
        # SGD at eta 0.2: lambda_max medians 4 (B=20) < 8 (B=100) < 10.5 (GD) -> falls as B shrinks
        "sgd_b20": fake(
            "sgd",
            20,
            0.2,
            100,
            {
                "batch_sharpness_ratio": FIRST + [0.9, 1.0, 1.1, 1.0, 1.3],
                "lambda_max": FIRST + [3, 4, 5, 4, 4],
                "lambda_max_ratio": [0.4] * 10,
            },
        ),
        "sgd_b100": fake(
            "sgd",
            100,
            0.2,
            100,
            {
                "batch_sharpness_ratio": FIRST + [0.95] * 5,
                "lambda_max": FIRST + [8, 8, 7, 9, 8],
                "lambda_max_ratio": [0.8] * 10,
            },
        ),
        # Adam eta 0.01 (beta1 0.9: threshold 3800): ratios 0.5, 1, 1, 1, 2 -> median 1, 3 of 5 within
        "adam_lr0p01": fake(
            "adam",
            400,
            0.01,
            100,
            {"preconditioned_ratio": FIRST + [0.5, 1.0, 1.0, 1.0, 2.0], "lambda_max": [1.0] * 10},
        ),
        "other": fake("lars", 400, 0.1, 100, {"lambda_max": [1.0] * 10}),
    }


def test_grid_divides_the_subset_and_names_are_unique(eos):
    for quick in (True, False):
        base = eos.base_config(quick)
        points = eos.grid(quick)
        assert len({p["run_name"] for p in points}) == len(points)
        for p in points:
            cfg = base.replace(**p).validate()
            assert cfg.train_subset % cfg.batch_size == 0
            assert cfg.sharpness_examples == cfg.train_subset  # lambda_max of the training loss itself
            assert cfg.schedule == "constant" and cfg.noise_scale_groups == 1
        gd = [p for p in points if p["optimizer"] == "sgd" and p["batch_size"] == base.train_subset]
        assert len(gd) == 3


def test_second_half_excludes_the_midpoint(eos, results):
    assert eos.second_half(results["gd_lr0p1"], "lambda_max_ratio").tolist() == [1.0, 1.1, 1.3, 0.9, 0.75]
    assert eos.second_half(results["gd_lr0p1"], "lambda_max_ratio", first=True).tolist() == FIRST
    r = dict(results["gd_lr0p1"], timing={})  # no timing: T is the last tracked step
    assert eos.total_steps(r) == 100


def test_arms(eos, results):
    arms = {k: eos.arm_of(r) for k, r in results.items()}
    assert arms == {
        "gd_lr0p1": "gd",
        "gd_lr0p2": "gd",
        "sgd_b20": "sgd",
        "sgd_b100": "sgd",
        "adam_lr0p01": "adam",
        "other": None,
    }


def test_summary_known_answers(eos, results):
    s = eos.summarize(results)
    gd = {r["run"]: r for r in s["gd"]}
    assert gd["gd_lr0p1"]["frac_within_band"] == pytest.approx(3 / 5)
    assert gd["gd_lr0p1"]["median_ratio"] == pytest.approx(1.0)
    assert gd["gd_lr0p1"]["min_ratio"] == 0.75 and gd["gd_lr0p1"]["max_ratio"] == 1.3
    assert gd["gd_lr0p1"]["stayed_within_band"] is False
    assert gd["gd_lr0p1"]["two_over_eta"] == pytest.approx(20.0)
    assert gd["gd_lr0p2"]["n_second_half"] == 4
    assert gd["gd_lr0p2"]["stayed_within_band"] is True
    assert gd["gd_lr0p2"]["median_batch_sharpness_ratio"] == pytest.approx(1.0)
    sgd = {r["batch_size"]: r for r in s["sgd"]}
    assert sorted(sgd) == [20, 100, 400]  # the GD run at the SGD learning rate is the B = subset end
    assert sgd[20]["median_batch_sharpness_ratio"] == pytest.approx(1.0)
    assert sgd[20]["frac_batch_sharpness_within_band"] == pytest.approx(4 / 5)
    assert sgd[20]["median_lambda_max"] == pytest.approx(4.0)
    assert sgd[100]["median_lambda_max"] == pytest.approx(8.0)
    assert sgd[400]["median_lambda_max"] == pytest.approx(10.5)
    assert sgd[20]["first_half_median_lambda_max"] == pytest.approx(0.3)  # FIRST, steps 10..50
    assert sgd[20]["first_half_median_batch_sharpness_ratio"] == pytest.approx(0.3)
    assert sgd[20]["steps"] == 100
    assert s["lambda_max_falls_as_batch_shrinks"] == {"0.2": True}
    (adam,) = s["adam"]
    assert adam["threshold"] == pytest.approx(3800.0)
    assert adam["median_preconditioned_ratio"] == pytest.approx(1.0)
    assert adam["frac_within_band"] == pytest.approx(3 / 5)
    assert adam["peak_ratio"] == 5.0 and adam["peak_step"] == 50  # over the whole run


def test_falls_detects_a_rise(eos, results):
    results["sgd_b20"]["curvature"]["lambda_max"] = FIRST + [20] * 5
    assert eos.summarize(results)["lambda_max_falls_as_batch_shrinks"] == {"0.2": False}


def test_analyze_writes_table_plots_and_analysis(eos, results, tmp_path):
    analysis = eos.analyze(str(tmp_path), results, quick=True)
    json.dumps(analysis, allow_nan=False)  # strict JSON, as analysis.json is written
    for name in ("eos.md", "eos_ratios.png", "eos_gd.png", "eos_summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "eos.md").read_text()
    assert "| 0.1 | 20 | 5 | 0.6 | 1 | 0.75 | 1.3 |" in table
    assert "eta 0.2: yes" in table
    assert analysis["summary"]["lambda_max_falls_as_B_shrinks_lr0.2"] is True


def test_analyze_tolerates_runs_without_curvature(eos, results, tmp_path):
    results["gd_lr0p1"] = dict(results["gd_lr0p1"], status="diverged", curvature={})
    s = eos.summarize(results)
    row = next(r for r in s["gd"] if r["run"] == "gd_lr0p1")
    assert row["n_second_half"] == 0 and row["frac_within_band"] is None and row["stayed_within_band"] is None
    eos.analyze(str(tmp_path), results, quick=True)


@pytest.mark.slow
def test_tracked_lambda_max_is_that_of_the_full_training_loss(eos, tmp_path):
    """With sharpness_examples = train_subset (the experiment's setting) the tracker's lambda_max is the
    top eigenvalue of the mean cross-entropy over exactly the training subset: checked against the
    dense Hessian (jax.hessian, numpy eigvalsh) of a loss written here from the subset's examples."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.flatten_util import ravel_pytree

    from lbbench import data as data_lib
    from lbbench.results import load_run
    from lbbench.training import run

    cfg = eos.base_config(True).replace(
        learning_rate=0.5,
        epochs=20,
        track_curvature_every=5,
        track_curvature_iters=20,
        save_params=True,
        workdir=str(tmp_path),
        run_name="gd",
    )
    r = run(cfg)
    curv = r["curvature"]
    assert curv["step"][-1] == 20 and cfg.sharpness_examples == cfg.train_subset
    _, model, variables = load_run(r["run_dir"])
    ds = data_lib.load(cfg.dataset, cfg.cache_dir).subset(cfg.train_subset)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    flat, unravel = ravel_pytree(variables["params"])

    def loss(f):
        logits = model.apply({"params": unravel(f)}, x, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    top = np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(flat), np.float64))[-1]
    assert curv["lambda_max"][-1] == pytest.approx(top, rel=1e-3)
    assert curv["lambda_max_ratio"][-1] == pytest.approx(top * 0.5 / 2.0, rel=1e-3)
