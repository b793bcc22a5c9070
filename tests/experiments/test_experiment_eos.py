"""lbbench/experiments/edge_of_stability.py: the grid, and analyze() end to end on fabricated results
with known answers (tests/_eos_fakes.py; the statistics are tested in tests/study, the tables in
tests/report); and, slow, the tracked lambda_max against a dense Hessian of the training loss."""

import json

import pytest
from _eos_fakes import fake_results

from lbbench.experiments import edge_of_stability


@pytest.fixture(scope="module")
def eos():
    return edge_of_stability


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
        configs = [base.replace(**p) for p in points]
        full = [c for c in configs if c.optimizer == "sgd" and c.batch_size == base.train_subset]
        assert sorted(c.loss for c in full) == ["cross_entropy"] * 3 + ["mse"] * 3
        assert sum(c.loss == "mse" for c in configs) == 3  # MSE only for full-batch GD
        mse = [c for c in full if c.loss == "mse"]
        assert [c.learning_rate for c in mse] == list(eos._plan(quick)["mse_gd_lrs"])
        assert {(c.model, c.track_curvature_iters) for c in mse} == {(base.model, base.track_curvature_iters)}


def test_analyze_writes_tables_plots_and_strict_json(eos, tmp_path):
    analysis = eos.analyze(str(tmp_path), fake_results(), quick=True)
    json.dumps(analysis, allow_nan=False)  # strict JSON, as analysis.json is written
    for name in ("eos.md", "eos_ratios.png", "eos_gd.png", "eos_gd_mse.png", "eos_summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    summary = analysis["summary"]
    assert summary["lambda_max_falls_as_B_shrinks_lr0.2"] is True
    assert [r["lr"] for r in summary["gd_mse"]] == [0.2, 0.3] and len(summary["gd"]) == 2
    assert summary["conclusions"][0].startswith("Full-batch GD, MSE, η = 0.2: within ±20 % of 2/η")


def test_analyze_tolerates_runs_without_curvature(eos, tmp_path):
    results = fake_results()
    results["gd_lr0p1"] = dict(results["gd_lr0p1"], status="diverged", curvature={})
    eos.analyze(str(tmp_path), results, quick=True)


@pytest.mark.slow
@pytest.mark.parametrize("loss, lr", [("cross_entropy", 0.5), ("mse", 0.1)])  # 0.5 diverges on MSE here
def test_tracked_lambda_max_is_that_of_the_full_training_loss(eos, tmp_path, loss, lr):
    """With sharpness_examples = train_subset (the experiment's setting) the tracker's lambda_max is the
    top eigenvalue of the training loss (mean cross-entropy, or Cohen et al.'s MSE under --loss=mse) over
    exactly the training subset: checked against the dense Hessian (jax.hessian, numpy eigvalsh) of a
    loss written here from the subset's examples."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.flatten_util import ravel_pytree

    from lbbench import data as data_lib
    from lbbench.results import load_run
    from lbbench.training import run

    cfg = eos.base_config(True).replace(
        learning_rate=lr,
        epochs=20,
        track_curvature_every=5,
        track_curvature_iters=20,
        save_params=True,
        workdir=str(tmp_path),
        run_name="gd",
        loss=loss,
    )
    r = run(cfg)
    curv = r["curvature"]
    assert curv["step"][-1] == 20 and cfg.sharpness_examples == cfg.train_subset
    _, model, variables = load_run(r["run_dir"])
    ds = data_lib.load(cfg.dataset, cfg.cache_dir).subset(cfg.train_subset)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    flat, unravel = ravel_pytree(variables["params"])

    def training_loss(f):
        logits = model.apply({"params": unravel(f)}, x, train=False)
        if loss == "mse":
            return 0.5 * jnp.mean(jnp.sum((logits - jax.nn.one_hot(y, logits.shape[-1])) ** 2, axis=-1))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    top = np.linalg.eigvalsh(np.asarray(jax.hessian(training_loss)(flat), np.float64))[-1]
    assert curv["lambda_max"][-1] == pytest.approx(top, rel=1e-3)
    assert curv["lambda_max_ratio"][-1] == pytest.approx(top * lr / 2.0, rel=1e-3)
