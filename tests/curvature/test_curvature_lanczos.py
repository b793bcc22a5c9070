"""lbbench.curvature.lanczos: top eigenvalues, breakdown, power iteration, warm starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_toys import mlp  # noqa: F401 (fixture)

from lbbench.curvature.lanczos import lanczos, power_iteration, ritz, ritz_change, top_eigenvalues


def test_top_eigenvalues_match_eigvalsh(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    top = np.asarray(top_eigenvalues(loss_fn, params, 3, 30, jax.random.PRNGKey(3)))
    want = eigs[::-1][:3]
    assert top.shape == (3,) and np.all(np.diff(top) <= 0)
    np.testing.assert_allclose(top, want, rtol=1e-4)


def test_lanczos_survives_breakdown_and_recovers_whole_spectrum():
    """diag(1,1,2,2,3) has only 3 distinct eigenvalues: the Krylov space is exhausted after 3 steps,
    so the restart path must supply the remaining directions (with beta = 0)."""
    d = jnp.array([1.0, 1.0, 2.0, 2.0, 3.0])
    alphas, betas = lanczos(lambda v: d * v, jnp.zeros(5), 30, jax.random.PRNGKey(4))
    assert alphas.shape == (5,) and betas.shape == (4,)
    values, weights = ritz(alphas, betas)
    np.testing.assert_allclose(values, np.sort(np.asarray(d)), atol=1e-5)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)


def test_power_iteration_agrees_with_lanczos(mlp):
    _, params, _, _, loss_fn, _, eigs = mlp
    assert eigs[-1] > abs(eigs[0])  # precondition: the top eigenvalue has the largest magnitude
    power = power_iteration(loss_fn, params, num_iters=300, key=jax.random.PRNGKey(5))
    lanczos_top = float(top_eigenvalues(loss_fn, params, 1, 20, jax.random.PRNGKey(6))[0])
    np.testing.assert_allclose(power, lanczos_top, rtol=1e-3)
    np.testing.assert_allclose(power, eigs[-1], rtol=1e-3)


def test_warm_start_matches_cold_start_with_fewer_hvps(mlp):
    """After a small parameter change, 4 Lanczos steps from the previous top eigenvector match a
    cold 20-step start to 1e-4 relative, and the exact lambda_max (jax.hessian) too."""
    from _curvature_toys import exact_hessian, plain_loss

    from lbbench.curvature.hvp import flat_matvec
    from lbbench.curvature.lanczos import top_eigenpair, unit_normal, warm_lambda_max
    from lbbench.curvature.loss import make_loss

    logits_fn, params, x, y, loss_fn, _, _ = mlp
    matvec, n, dtype = flat_matvec(loss_fn, params)
    _, vec = top_eigenpair(matvec, unit_normal(jax.random.PRNGKey(20), n, dtype), 20, jax.random.PRNGKey(21))
    moved = jax.tree.map(
        lambda p, k: p + 1e-2 * jax.random.normal(k, p.shape),
        params,
        jax.tree.unflatten(jax.tree.structure(params), list(jax.random.split(jax.random.PRNGKey(22), 4))),
    )
    moved_loss = make_loss(logits_fn, x, y, chunk_size=16)
    moved_mv, _, _ = flat_matvec(moved_loss, moved)
    cold = float(top_eigenvalues(moved_loss, moved, 1, 20, jax.random.PRNGKey(23))[0])
    warm, warm_vec = warm_lambda_max(moved_mv, n, dtype, vec, 4, jax.random.PRNGKey(24))
    exact = np.linalg.eigvalsh(exact_hessian(lambda p: plain_loss(logits_fn, p, x, y), moved))[-1]
    assert abs(warm - cold) <= 1e-4 * abs(cold)
    assert abs(warm - exact) <= 1e-4 * abs(exact)
    residual = np.linalg.norm(np.asarray(moved_mv(warm_vec)) - warm * np.asarray(warm_vec))
    assert residual <= 1e-2 * abs(warm) and abs(np.linalg.norm(warm_vec) - 1) < 1e-5
    cold4, _ = warm_lambda_max(moved_mv, n, dtype, None, 4, jax.random.PRNGKey(24))
    assert abs(cold4 - exact) > 1e-4 * abs(exact)  # 4 steps from a random start are not enough


def test_the_convergence_indicator_flags_an_unconverged_value_and_bounds_its_error():
    """A spectrum with a slowly separating top (λ = 1.0, 0.98, 0.96, ...): 3 steps from a random start
    leave λ_max well below 1 and the last step still moved it a lot; 60 steps converge and the last
    step moves it by almost nothing. The indicator is computed from T alone (no HVP)."""
    from lbbench.curvature.lanczos import top_eigenpair_checked, unit_normal

    d = jnp.linspace(0.0, 1.0, 51)[::-1]  # 1.0 first: spacing 0.02
    mv = lambda v: d * v  # noqa: E731
    start = unit_normal(jax.random.PRNGKey(7), 51, jnp.float32)
    short, _, short_change = top_eigenpair_checked(mv, start, 3, jax.random.PRNGKey(8))
    long, _, long_change = top_eigenpair_checked(mv, start, 60, jax.random.PRNGKey(8))
    assert long == pytest.approx(1.0, rel=1e-5) and long_change < 1e-4
    assert 1.0 - short > 0.01, "three steps are not enough here"
    assert short_change > 0.01, "and the indicator says so"
    assert ritz_change(np.array([2.0]), np.array([])) == float("inf")  # one step: nothing to compare


def test_lanczos_until_stops_once_the_top_value_settles_and_matches_plain_lanczos_so_far():
    from lbbench.curvature.lanczos import lanczos_basis, lanczos_basis_until, unit_normal

    d = jnp.concatenate([jnp.array([10.0]), jnp.linspace(0.0, 1.0, 40)])  # a well-separated top: fast
    mv = lambda v: d * v  # noqa: E731
    start = unit_normal(jax.random.PRNGKey(9), 41, jnp.float32)
    a, b, basis = lanczos_basis_until(mv, start, 2, 30, 1e-6, jax.random.PRNGKey(10))
    assert 2 <= len(a) < 30 and len(b) == len(a) - 1 and basis.shape == (len(a), 41)
    assert ritz(a, b)[0][-1] == pytest.approx(10.0, rel=1e-5) and ritz_change(a, b) < 1e-6
    a_full, b_full, _ = lanczos_basis(mv, start, len(a), jax.random.PRNGKey(10))
    np.testing.assert_allclose(a, a_full, rtol=1e-5)
    np.testing.assert_allclose(b, b_full, rtol=1e-5)
    slow = jnp.linspace(0.0, 1.0, 41)[::-1]  # a slow top does not settle to 1e-9 in 8 steps: all 8 run
    a, _, _ = lanczos_basis_until(lambda v: slow * v, start, 2, 8, 1e-9, jax.random.PRNGKey(10))
    assert len(a) == 8
