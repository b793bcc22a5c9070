"""Tests for lbbench.sharpness against independent references (exact Hessians, closed forms).

Everything runs in float32 on a ~200-parameter tanh MLP, where `jax.hessian` of the flattened
loss is cheap and exact; tolerances are float32 ones.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lbbench import eps_sharpness as eps_sh
from lbbench import sharpness as sh

N_EXAMPLES, N_IN, N_HIDDEN, N_CLASSES = 64, 5, 20, 3


class TinyMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(N_CLASSES)(jnp.tanh(nn.Dense(N_HIDDEN)(x)))


class TinyBNNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Dense(8)(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.5)(h)
        return nn.Dense(N_CLASSES)(jnp.tanh(h))


def _data(seed=0):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (N_EXAMPLES, N_IN))
    y = jax.random.randint(ky, (N_EXAMPLES,), 0, N_CLASSES)
    return x, y


def _plain_loss(logits_fn, params, x, y):
    """Independent reference: one-shot mean cross-entropy, no chunking."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y).mean()


def _exact_hessian(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))(flat), np.float64)


@pytest.fixture(scope="module")
def mlp():
    """(logits_fn, params, x, y, loss_fn, exact Hessian, eigenvalues ascending)."""
    x, y = _data()
    model = TinyMLP()
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)["params"]
    logits_fn = lambda p, xb: model.apply({"params": p}, xb)
    loss_fn = sh.make_loss(logits_fn, x, y, chunk_size=16)
    hess = _exact_hessian(lambda p: _plain_loss(logits_fn, p, x, y), params)
    return logits_fn, params, x, y, loss_fn, hess, np.linalg.eigvalsh(hess)


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64, 1000])
def test_make_loss_chunked_equals_plain_mean(mlp, chunk_size):
    logits_fn, params, x, y, *_ = mlp
    chunked = sh.make_loss(logits_fn, x, y, chunk_size)(params)
    np.testing.assert_allclose(chunked, _plain_loss(logits_fn, params, x, y), rtol=1e-6)


def test_make_loss_gradient_equals_plain_gradient(mlp):
    logits_fn, params, x, y, loss_fn, *_ = mlp
    got = ravel_pytree(jax.grad(loss_fn)(params))[0]
    want = ravel_pytree(jax.grad(lambda p: _plain_loss(logits_fn, p, x, y))(params))[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_hvp_matches_exact_hessian(mlp):
    _, params, _, _, loss_fn, hess, _ = mlp
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(2), flat.shape)
    hv = jax.jit(sh.hvp)(loss_fn, params, unravel(v))
    got = np.asarray(ravel_pytree(hv)[0], np.float64)
    want = hess @ np.asarray(v, np.float64)
    assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_flat_matvec_matches_exact_hessian(mlp, cache_bytes):
    """Both the plain forward-over-reverse matvec and the cached linearisation equal H v."""
    _, params, _, _, loss_fn, hess, _ = mlp
    matvec, n, dtype = sh.flat_matvec(loss_fn, params, cache_bytes)
    assert n == hess.shape[0] and dtype == jnp.float32
    for seed in (2, 3):
        v = jax.random.normal(jax.random.PRNGKey(seed), (n,))
        want = hess @ np.asarray(v, np.float64)
        got = np.asarray(matvec(v), np.float64)
        assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)


def test_top_eigenvalues_match_eigvalsh(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    top = np.asarray(sh.top_eigenvalues(loss_fn, params, 3, 30, jax.random.PRNGKey(3)))
    want = eigs[::-1][:3]
    assert top.shape == (3,) and np.all(np.diff(top) <= 0)
    np.testing.assert_allclose(top, want, rtol=1e-4)


def test_lanczos_survives_breakdown_and_recovers_whole_spectrum():
    """diag(1,1,2,2,3) has only 3 distinct eigenvalues: the Krylov space is exhausted after 3 steps,
    so the restart path must supply the remaining directions (with beta = 0)."""
    d = jnp.array([1.0, 1.0, 2.0, 2.0, 3.0])
    alphas, betas = sh.lanczos(lambda v: d * v, jnp.zeros(5), 30, jax.random.PRNGKey(4))
    assert alphas.shape == (5,) and betas.shape == (4,)
    values, weights = sh.ritz(alphas, betas)
    np.testing.assert_allclose(values, np.sort(np.asarray(d)), atol=1e-5)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)


def test_power_iteration_agrees_with_lanczos(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    assert eigs[-1] > abs(eigs[0])  # precondition: the top eigenvalue has the largest magnitude
    power = sh.power_iteration(loss_fn, params, num_iters=300, key=jax.random.PRNGKey(5))
    lanczos_top = float(sh.top_eigenvalues(loss_fn, params, 1, 20, jax.random.PRNGKey(6))[0])
    np.testing.assert_allclose(power, lanczos_top, rtol=1e-3)
    np.testing.assert_allclose(power, eigs[-1], rtol=1e-3)


def test_hutchinson_trace_within_three_standard_errors(mlp):
    _, params, _, _, loss_fn, hess, _ = mlp
    mean, stderr = sh.hutchinson_trace(loss_fn, params, num_probes=50, key=jax.random.PRNGKey(7))
    assert stderr > 0
    assert abs(mean - np.trace(hess)) <= 3 * stderr


def test_spectral_density_is_normalised_and_inside_spectrum(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    sigma = 0.01 * (eigs[-1] - eigs[0])
    grid, density = sh.spectral_density(
        loss_fn, params, num_runs=2, num_iters=30, key=jax.random.PRNGKey(8), grid_size=4000,
        sigma=sigma)
    assert grid.shape == density.shape == (4000,) and np.all(density >= 0)
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-3)
    inside = (grid >= eigs[0]) & (grid <= eigs[-1])
    near = (grid >= eigs[0] - 3 * sigma) & (grid <= eigs[-1] + 3 * sigma)
    assert np.trapezoid(density[inside], grid[inside]) >= 0.9
    assert np.trapezoid(density[near], grid[near]) >= 0.99


def _quadratic(d, c):
    return lambda p: 0.5 * jnp.sum(d * p["w"] ** 2) + c


@pytest.mark.parametrize("epsilon", [1e-2, 1e-3])
def test_epsilon_sharpness_quadratic_closed_form(epsilon):
    """f = 1/2 sum d_i w_i^2 + c with d_i > 0 is maximised over the box at the corner
    y_i = sign(x_i) eps (|x_i| + 1) (Keskar Metric 2.1 with A = I)."""
    kd, kx = jax.random.split(jax.random.PRNGKey(9))
    d = np.asarray(jax.random.uniform(kd, (12,), minval=0.5, maxval=2.0), np.float64)
    x = np.asarray(jax.random.normal(kx, (12,)), np.float64)
    c = 0.3
    f = lambda w: 0.5 * np.sum(d * w**2) + c
    corner = x + np.sign(x) * epsilon * (np.abs(x) + 1)
    want = (f(corner) - f(x)) / (1 + f(x)) * 100
    got = eps_sh.epsilon_sharpness(
        _quadratic(jnp.asarray(d, jnp.float32), c), {"w": jnp.asarray(x, jnp.float32)}, epsilon,
        jax.random.PRNGKey(0), subspace_dim=0, maxiter=10)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_subspace_coordinates_are_pseudo_inverse():
    x = jax.random.normal(jax.random.PRNGKey(10), (50,))
    a, coords = eps_sh._subspace(jax.random.PRNGKey(11), x, 7)
    want = np.linalg.pinv(np.asarray(a, np.float64)) @ np.asarray(x, np.float64)
    np.testing.assert_allclose(coords, want, rtol=1e-4, atol=1e-6)


def test_epsilon_sharpness_subspace_linear_closed_form():
    """Linear f = g.w + c: the subspace-box max gain is sum_i |(A^T g)_i| eps(|(A^+ x)_i| + 1)."""
    kg, kx, ka = jax.random.split(jax.random.PRNGKey(12), 3)
    g, x = jax.random.normal(kg, (40,)), jax.random.normal(kx, (40,))
    c, eps, p = 2.0, 1e-2, 6
    loss_fn = lambda params: jnp.dot(g, params["w"]) + c
    a, coords = eps_sh._subspace(ka, x, p)
    f0 = float(jnp.dot(g, x)) + c
    gain = np.sum(np.abs(np.asarray(a.T @ g, np.float64)) * eps * (np.abs(coords) + 1))
    got = eps_sh.epsilon_sharpness(loss_fn, {"w": x}, eps, ka, subspace_dim=p, maxiter=10)
    np.testing.assert_allclose(got, gain / (1 + f0) * 100, rtol=1e-4)


def test_epsilon_sharpness_nonnegative_and_monotone(mlp):
    """Larger boxes contain smaller ones; checked through measure's path (one shared compile)."""
    _, params, _, _, loss_fn, _, _ = mlp
    opts = sh.SharpnessOptions(epsilons=(1e-4, 5e-4, 1e-3), subspace_dim=20, lbfgs_iters=10)
    out = eps_sh.all_epsilon_sharpness(loss_fn, params, opts, jax.random.PRNGKey(13))
    for space in ("full", "subspace"):
        values = [out[f"{space}_{eps:g}"] for eps in opts.epsilons]
        assert values[0] > 0 and values[0] <= values[1] <= values[2], (space, values)


SMALL = sh.SharpnessOptions(
    lanczos_iters=10, top_k=2, power_iters=5, hutchinson_probes=4, density=True, density_runs=1,
    density_iters=8, epsilons=(1e-3, 5e-4), subspace_dim=10, lbfgs_iters=3, chunk_size=16)


def _assert_finite_report(report, num_params):
    keys = {"lambda_max", "top_eigenvalues", "power_iteration_lambda_max", "hessian_trace",
            "hessian_trace_stderr", "epsilon_sharpness", "loss", "num_params", "num_examples",
            "seconds", "density"}
    assert keys <= set(report)
    json.dumps(report, allow_nan=False)
    assert report["num_params"] == num_params and report["num_examples"] == N_EXAMPLES
    assert len(report["top_eigenvalues"]) == 2
    assert report["top_eigenvalues"][0] == report["lambda_max"]
    assert set(report["epsilon_sharpness"]) == {"full_0.001", "full_0.0005", "subspace_0.001",
                                                "subspace_0.0005"}
    assert set(report["seconds"]) >= {"lambda_max", "trace", "epsilon", "density", "total"}
    scalars = [report[k] for k in ("lambda_max", "hessian_trace", "hessian_trace_stderr", "loss",
                                   "power_iteration_lambda_max")]
    scalars += report["top_eigenvalues"] + list(report["epsilon_sharpness"].values())
    scalars += list(report["seconds"].values()) + report["density"]["values"]
    assert all(isinstance(s, float) and np.isfinite(s) for s in scalars)
    assert all(v >= 0 for v in report["epsilon_sharpness"].values())


def test_measure_reports_documented_keys(mlp):
    logits_fn, params, x, y, _, hess, eigs = mlp
    report = sh.measure(logits_fn, params, x, y, SMALL, jax.random.PRNGKey(14))
    _assert_finite_report(report, hess.shape[0])
    np.testing.assert_allclose(report["lambda_max"], eigs[-1], rtol=1e-3)
    np.testing.assert_allclose(report["loss"], _plain_loss(logits_fn, params, x, y), rtol=1e-6)


def test_measure_skips_optional_metrics(mlp):
    logits_fn, params, x, y, *_ = mlp
    opts = sh.SharpnessOptions(lanczos_iters=5, hutchinson_probes=0, epsilons=(), chunk_size=64)
    report = sh.measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(15))
    assert report["hessian_trace"] is None and report["epsilon_sharpness"] == {}
    assert "density" not in report and "power_iteration_lambda_max" not in report


def test_batchnorm_inference_mode_hvp_and_no_mutation():
    x, y = _data(seed=1)
    model = TinyBNNet()
    variables = jax.jit(model.init, static_argnames="train")(jax.random.PRNGKey(16), x, train=False)
    # one training-mode pass so the running statistics are non-trivial
    train_step = jax.jit(lambda v, xb: model.apply(v, xb, train=True, mutable=["batch_stats"]))
    _, updates = train_step(variables, x * 2 + 1)
    params, bs = variables["params"], updates["batch_stats"]
    bs_before = jax.tree.map(np.array, bs)
    params_before = jax.tree.map(np.array, params)
    logits_fn = lambda p, xb: model.apply({"params": p, "batch_stats": bs}, xb, train=False)

    hess = _exact_hessian(lambda p: _plain_loss(logits_fn, p, x, y), params)
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(17), flat.shape)
    loss_fn = sh.make_loss(logits_fn, x, y, chunk_size=16)
    hv = jax.jit(sh.hvp)(loss_fn, params, unravel(v))
    got = np.asarray(ravel_pytree(hv)[0], np.float64)
    want = hess @ np.asarray(v, np.float64)
    assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)

    opts = sh.SharpnessOptions(lanczos_iters=5, hutchinson_probes=2, epsilons=(1e-3,),
                               subspace_dim=4, lbfgs_iters=2, chunk_size=16, hvp_cache_bytes=0)
    report = sh.measure(logits_fn, params, x, y, opts, jax.random.PRNGKey(18))
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
