"""The curvature tracker and the gradient tests on a tiny MLP with hand-built TrialViews, against exact
Hessians (jax.hessian) and closed-form thresholds; the Columns contract; both inside real training."""

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest
import scipy.linalg
from _curvature_toys import linear_mse_toy, mlp, plain_loss  # noqa: F401 (mlp is a fixture)

from lbbench.config import Config
from lbbench.curvature.preconditioned import adam_preconditioner, find_adam_state
from lbbench.instruments import Columns, TopVectors, TrialView
from lbbench.instruments.curvature_tracker import CurvatureTracker
from lbbench.instruments.gradient_tests import GradientTests

LR, B = 0.05, 16


def _view(mlp, tx, steps: int, step: int, trial: int = 0, key: int = 0, **kw) -> TrialView:
    logits_fn, params, x, y, *_ = mlp
    state = tx.init(params)
    for i in range(steps):  # a few real optimizer steps so nu and count are not trivial
        g = jax.grad(lambda p, i=i: plain_loss(logits_fn, p, x[i * B : (i + 1) * B], y[i * B : (i + 1) * B]))(params)
        _, state = tx.update(g, state, params)
    return TrialView(
        trial=trial,
        step=step,
        cfg=None,
        params=params,
        batch_stats={},
        opt_state=state,
        learning_rate=LR,
        logits_fn=logits_fn,
        measure_x=x,
        measure_y=y,
        batch_x=x[:B],
        batch_y=y[:B],
        key=jax.random.PRNGKey(key),
        **kw,
    )


@pytest.fixture(scope="module")
def adam_tx():
    return optax.inject_hyperparams(optax.adam)(learning_rate=LR, b1=0.9, b2=0.99, eps=1e-6)


@pytest.mark.slow
def test_curvature_tracker_adam_end_to_end(mlp, adam_tx):
    logits_fn, params, x, y, _, hess, eigs = mlp
    tracker = CurvatureTracker(
        every=1, iters=8, optimizer="adam", batch_size=B, measure_examples=x.shape[0], chunk_size=16
    )
    first = dict(tracker.run(_view(mlp, adam_tx, 3, step=0)))
    view = _view(mlp, adam_tx, 3, step=1, key=1)
    second = dict(tracker.run(view))  # warm-started from the first call's vectors
    assert set(second) == {
        "lambda_max",
        "lambda_max_last_change",
        "preconditioned_last_change",
        "preconditioned_sharpness",
        "preconditioned_threshold",
        "preconditioned_ratio",
        "batch_sharpness",
        "batch_sharpness_stderr",
        "batch_sharpness_ratio",
    }  # adam: no threshold on raw lambda_max
    assert abs(first["lambda_max"] - eigs[-1]) <= 0.05 * eigs[-1]
    np.testing.assert_allclose(second["lambda_max"], eigs[-1], rtol=1e-4)
    assert 0 <= second["lambda_max_last_change"] < 1e-3  # converged, and the indicator says so
    p = np.asarray(adam_preconditioner(find_adam_state(view.opt_state), 0.9, 0.99, 1e-6), np.float64)
    want = scipy.linalg.eigh(hess, np.diag(p), eigvals_only=True)[-1]
    np.testing.assert_allclose(second["preconditioned_sharpness"], want, rtol=1e-3)
    np.testing.assert_allclose(second["preconditioned_threshold"], 38 / LR, rtol=1e-6)
    np.testing.assert_allclose(second["preconditioned_ratio"], second["preconditioned_sharpness"] * LR / 38, rtol=1e-6)
    np.testing.assert_allclose(second["batch_sharpness_ratio"], second["batch_sharpness"] * LR / 2, rtol=1e-6)
    assert 0 < second["batch_sharpness"] and np.isfinite(second["batch_sharpness_stderr"])


def test_curvature_tracker_momentum_threshold(mlp):
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LR, momentum=0.5)  # injected beta wins
    tracker = CurvatureTracker(every=1, iters=4, optimizer="momentum", momentum=0.9)
    out = dict(tracker.run(_view(mlp, tx, 1, step=0)))
    assert "preconditioned_sharpness" not in out
    np.testing.assert_allclose(out["threshold"], 3.0 / LR, rtol=1e-6)
    np.testing.assert_allclose(out["lambda_max_ratio"], out["lambda_max"] * LR / 3.0, rtol=1e-6)


def test_curvature_instruments_measure_the_mse_of_a_linear_model_exactly():
    """Under --loss=mse the tracker's lambda_max is that of the MSE: for logits = x W it is the top
    eigenvalue of X^T X / n, and batch sharpness is each minibatch's g^T H_B g / |g|^2 with
    H_B = I (x) X_B^T X_B / B, g = X_B^T (X_B W - Y_B) / B (closed forms in float64)."""
    logits_fn, params, x, y, gram = linear_mse_toy()
    tracker = CurvatureTracker.from_config(Config(optimizer="sgd", loss="mse", track_curvature_every=1))
    view = TrialView(0, 0, None, params, {}, optax.sgd(LR).init(params), LR, logits_fn, x, y, x[:B], y[:B])
    view = dataclasses.replace(view, key=jax.random.PRNGKey(0))
    out = dict(tracker.run(view))
    assert out["lambda_max"] == pytest.approx(np.linalg.eigvalsh(gram)[-1], rel=1e-5)
    assert out["threshold"] == pytest.approx(2.0 / LR)
    xs, w, onehot = np.asarray(x, np.float64), np.asarray(params["w"], np.float64), np.eye(3)[np.asarray(y)]
    ratios = []
    for i in range(len(xs) // B):
        xb, tb = xs[i * B : (i + 1) * B], onehot[i * B : (i + 1) * B]
        g = xb.T @ (xb @ w - tb) / B
        ratios.append(np.sum(g * (xb.T @ xb @ g / B)) / np.sum(g * g))
    assert out["batch_sharpness"] == pytest.approx(np.mean(ratios), rel=1e-5)
    # the gradient tests on the same batch: |g_B|, and alpha = eta kappa - 1 for the SGD step along -g on
    # an exact quadratic (far point of equal loss at 2|g|/kappa; kappa = the first minibatch's ratio)
    tests = dict(GradientTests.from_config(Config(loss="mse", gradient_tests_every=1, batch_size=B)).run(view))
    g = xs[:B].T @ (xs[:B] @ w - onehot[:B]) / B
    assert tests["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-5)
    assert tests["alpha"] == pytest.approx(LR * ratios[0] - 1, rel=1e-4)


def test_every_loss_measuring_instrument_is_built_with_the_runs_loss():
    from lbbench.instruments import adaptive_sharpness, sharpness

    cfg = Config(loss="mse", track_curvature_every=1, gradient_tests_every=1, adaptive_sharpness_rho=0.1)
    assert CurvatureTracker.from_config(cfg).loss == "mse"
    assert GradientTests.from_config(cfg).loss == "mse"
    assert sharpness.options_of(cfg).loss == "mse"
    assert adaptive_sharpness.build(cfg, None).loss == "mse"


def test_curvature_tracker_reads_each_trials_config(mlp):
    """A group's trials differ in momentum: the view's Config wins over the one built from."""
    tracker = CurvatureTracker.from_config(Config(optimizer="momentum", momentum=0.9, track_curvature_every=1))
    view = _view(mlp, optax.sgd(LR, momentum=0.5), 1, step=0)
    out = dict(tracker.run(dataclasses.replace(view, cfg=Config(optimizer="momentum", momentum=0.5))))
    np.testing.assert_allclose(out["threshold"], 3.0 / LR, rtol=1e-6)


def test_gradient_tests_end_to_end_reuses_tracker_vector(mlp, adam_tx):
    vectors = TopVectors()
    tracker = CurvatureTracker(every=1, iters=30, vectors=vectors, chunk_size=16)  # accurate v
    tests = GradientTests(every=1, iters=8, vectors=vectors, chunk=8)
    update_fn = lambda g, s, p: adam_tx.update(g, s, p)[0]  # noqa: E731
    view = _view(mlp, adam_tx, 2, step=5, update_fn=update_fn)
    dict(tracker.run(view))
    _, vec = vectors.get(0)
    out = dict(tests.run(view))
    assert vectors.get(0)[1] is vec  # found at this step by the tracker: no new Lanczos run
    assert set(out) == {
        "norm_test",
        "inner_product_test",
        "orthogonality_test",
        "grad_norm",
        "alpha",
        "top_overlap",
        "top_overlap_batch",
    }
    assert all(np.isfinite(v) for v in out.values())
    assert 0 <= out["top_overlap"] <= 1 and 0 <= out["top_overlap_batch"] <= 1
    # the overlap with the exact top eigenvector of the exact Hessian
    logits_fn, params, x, y, _, hess, _ = mlp
    g = np.asarray(
        jax.flatten_util.ravel_pytree(jax.grad(lambda p: plain_loss(logits_fn, p, x, y))(params))[0], np.float64
    )
    v = np.linalg.eigh(hess)[1][:, -1]
    np.testing.assert_allclose(out["top_overlap"], (v @ g) ** 2 / (g @ g), rtol=1e-2, atol=1e-4)
    sgd_alpha = dict(tests.run(_view(mlp, adam_tx, 2, step=6)))["alpha"]  # -eta g_B direction
    assert np.isfinite(sgd_alpha) and sgd_alpha != out["alpha"]


def test_columns_contract_is_strict_json():
    cols = Columns()
    cols.add(10, iter([("lambda_max", 3.0), ("threshold", 40.0)]))
    cols.add(0, {"lambda_max": 1.0, "batch_sharpness": float("nan")})
    cols.add(10, {"batch_sharpness": 2.0})  # a second instrument at the same step: same row
    got = cols.to_dict()
    assert got == {"step": [0, 10], "lambda_max": [1.0, 3.0], "threshold": [None, 40.0], "batch_sharpness": [None, 2.0]}
    json.dumps(got, allow_nan=False)


@pytest.mark.slow
def test_instruments_run_inside_training_and_agree_with_the_end_of_run_sharpness(tmp_path):
    """Tracked lambda_max (warm-started, 5 Lanczos steps a time) at the last step equals the end-of-run
    sharpness measurement (cold Lanczos, 20 steps) on the same subset; columns and TensorBoard written."""
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lbbench.config import Config
    from lbbench.training import loop as train

    cfg = Config(
        dataset="random",
        model="tiny_mlp",
        batch_size=100,
        epochs=2,
        optimizer="momentum",
        learning_rate=0.1,
        noise_scale_groups=1,
        train_eval_examples=500,
        sharpness_examples=500,
        hutchinson_probes=0,
        epsilons=(),
        track_curvature_every=4,
        gradient_tests_every=5,
        workdir=str(tmp_path),
        run_name="r",
    )
    train.run(cfg)
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    cur, grad = saved["curvature"], saved["gradient_tests"]
    # 10 steps/epoch in segments of 4: boundaries 4, 8, 10, 14, 18, 20; curvature when >= 4 steps passed,
    # then once more at the end (step 20)
    assert cur["step"] == [4, 8, 14, 18, 20] and grad["step"] == [8, 14, 20]
    for k in ("lambda_max", "threshold", "lambda_max_ratio", "batch_sharpness", "batch_sharpness_ratio"):
        assert len(cur[k]) == 5 and all(v is not None for v in cur[k]), k
    assert cur["threshold"][0] == pytest.approx((2 + 2 * 0.9) / 0.1)  # heavy ball, Cohen et al. 2021
    assert cur["lambda_max"][-1] == pytest.approx(saved["sharpness"]["lambda_max"], rel=1e-3)
    assert all(v is not None for v in grad["norm_test"])
    ea = EventAccumulator(str(tmp_path / "r"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("curvature/lambda_max")] == [4, 8, 14, 18, 20]
