"""lbbench.curvature.measure: the report, its keys, and BatchNorm in inference mode."""

import json

import jax
import numpy as np
import pytest
from _curvature_toys import N_EXAMPLES, TinyBNNet, data, exact_hessian, mlp, plain_loss  # noqa: F401
from jax.flatten_util import ravel_pytree

from lbbench.curvature.hvp import hvp
from lbbench.curvature.loss import make_loss
from lbbench.curvature.measure import SharpnessOptions, measure

SMALL = SharpnessOptions(
    lanczos_iters=10,
    top_k=2,
    power_iters=5,
    hutchinson_probes=4,
    density=True,
    density_runs=1,
    density_iters=8,
    epsilons=(1e-3, 5e-4),
    subspace_dim=10,
    lbfgs_iters=3,
    chunk_size=16,
)


def _assert_finite_report(report, num_params):
    keys = {
        "lambda_max",
        "top_eigenvalues",
        "power_iteration_lambda_max",
        "hessian_trace",
        "hessian_trace_stderr",
        "epsilon_sharpness",
        "loss",
        "num_params",
        "num_examples",
        "seconds",
        "density",
    }
    assert keys <= set(report)
    json.dumps(report, allow_nan=False)
    assert report["num_params"] == num_params and report["num_examples"] == N_EXAMPLES
    assert len(report["top_eigenvalues"]) == 2
    assert report["top_eigenvalues"][0] == report["lambda_max"]
    assert set(report["epsilon_sharpness"]) == {"full_0.001", "full_0.0005", "subspace_0.001", "subspace_0.0005"}
    assert set(report["seconds"]) >= {"lambda_max", "trace", "epsilon", "density", "total"}
    scalars = [
        report[k] for k in ("lambda_max", "hessian_trace", "hessian_trace_stderr", "loss", "power_iteration_lambda_max")
    ]
    scalars += report["top_eigenvalues"] + list(report["epsilon_sharpness"].values())
    scalars += list(report["seconds"].values()) + report["density"]["values"]
    assert all(isinstance(s, float) and np.isfinite(s) for s in scalars)
    assert all(v >= 0 for v in report["epsilon_sharpness"].values())


def test_measure_reports_documented_keys(mlp):
    logits_fn, params, x, y, _, hess, eigs = mlp
    report = measure(logits_fn, params, x, y, SMALL, jax.random.PRNGKey(14))
    _assert_finite_report(report, hess.shape[0])
    np.testing.assert_allclose(report["lambda_max"], eigs[-1], rtol=1e-3)
    np.testing.assert_allclose(report["loss"], plain_loss(logits_fn, params, x, y), rtol=1e-6)


def test_measure_skips_optional_metrics(mlp):
    logits_fn, params, x, y, *_ = mlp
    opts = SharpnessOptions(lanczos_iters=5, hutchinson_probes=0, epsilons=(), chunk_size=64)
    report = measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(15))
    assert report["hessian_trace"] is None and report["epsilon_sharpness"] == {}
    assert "density" not in report and "power_iteration_lambda_max" not in report


@pytest.mark.slow
def test_batchnorm_inference_mode_hvp_and_no_mutation():
    x, y = data(seed=1)
    model = TinyBNNet()
    variables = jax.jit(model.init, static_argnames="train")(jax.random.PRNGKey(16), x, train=False)
    # one training-mode pass so the running statistics are non-trivial
    train_step = jax.jit(lambda v, xb: model.apply(v, xb, train=True, mutable=["batch_stats"]))
    _, updates = train_step(variables, x * 2 + 1)
    params, bs = variables["params"], updates["batch_stats"]
    bs_before = jax.tree.map(np.array, bs)
    params_before = jax.tree.map(np.array, params)
    logits_fn = lambda p, xb: model.apply({"params": p, "batch_stats": bs}, xb, train=False)

    hess = exact_hessian(lambda p: plain_loss(logits_fn, p, x, y), params)
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(17), flat.shape)
    loss_fn = make_loss(logits_fn, x, y, chunk_size=16)
    hv = jax.jit(hvp)(loss_fn, params, unravel(v))
    got = np.asarray(ravel_pytree(hv)[0], np.float64)
    want = hess @ np.asarray(v, np.float64)
    assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)

    opts = SharpnessOptions(
        lanczos_iters=5,
        hutchinson_probes=2,
        epsilons=(1e-3,),
        subspace_dim=4,
        lbfgs_iters=2,
        chunk_size=16,
        hvp_cache_bytes=0,
    )
    report = measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(18))
    assert report["num_params"] == flat.size
    assert np.isfinite([report["lambda_max"], report["hessian_trace"]]).all()
    # a Ritz value never exceeds lambda_max
    assert report["lambda_max"] <= np.linalg.eigvalsh(hess)[-1] * (1 + 1e-4)
    assert min(report["epsilon_sharpness"].values()) >= 0
    for before, after in zip(jax.tree.leaves(bs_before), jax.tree.leaves(bs)):
        np.testing.assert_array_equal(before, np.asarray(after))
    for before, after in zip(jax.tree.leaves(params_before), jax.tree.leaves(params)):
        np.testing.assert_array_equal(before, np.asarray(after))
    assert not all(np.allclose(m, 0) for m in jax.tree.leaves(bs_before))  # stats really were used
