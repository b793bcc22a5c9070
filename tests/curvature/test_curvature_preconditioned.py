"""Adam's preconditioned sharpness: P matches optax's own update, and lambda_max(P^-1 H) matches the
generalised eigenproblem H u = lambda P u on a quadratic with known H."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from lbbench.curvature import preconditioned as pc

B1, B2, EPS, LR = 0.9, 0.99, 1e-3, 0.01


def _trained_state(tx, params, steps: int):
    state = tx.init(params)
    for i in range(steps):
        g = jax.tree.map(lambda p, i=i: jax.random.normal(jax.random.PRNGKey(i), p.shape), params)
        _, state = tx.update(g, state, params)
    return state


@pytest.fixture(scope="module")
def setup():
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(4)}
    tx = optax.chain(
        optax.clip_by_global_norm(100.0), optax.inject_hyperparams(optax.adam)(learning_rate=LR, b1=B1, b2=B2, eps=EPS)
    )
    return params, tx, _trained_state(tx, params, 3)


def test_finds_adam_state_and_hyperparams_inside_chain(setup):
    params, _, state = setup
    adam = pc.find_adam_state(state)
    assert isinstance(adam, optax.ScaleByAdamState) and int(adam.count) == 3
    hp = pc.adam_hyperparams(state, "adam", momentum=0.5, beta2=0.5)  # injected values win
    assert hp == pytest.approx({"b1": B1, "b2": B2, "eps": EPS})
    assert pc.find_adam_state(optax.sgd(0.1).init(params)) is None
    assert pc.adam_hyperparams((), "lamb", 0.8, 0.95) == {"b1": 0.8, "b2": 0.95, "eps": 1e-6}
    lbbench_names = optax.inject_hyperparams(
        lambda learning_rate, momentum, beta2: optax.adam(learning_rate, momentum, beta2)
    )(learning_rate=0.1, momentum=0.7, beta2=0.9).init(params)
    assert pc.adam_hyperparams(lbbench_names, "adam", 0.5, 0.5) == pytest.approx({"b1": 0.7, "b2": 0.9, "eps": 1e-8})


@pytest.mark.parametrize("steps", [1, 4])
def test_preconditioner_reproduces_optax_adam_step(setup, steps):
    """optax's next update equals -eta P^-1 m with P built from the *new* state (bias corrections
    included): the definition of P in Cohen et al. 2022 applied to optax's Adam."""
    params, tx, _ = setup
    state = _trained_state(tx, params, steps)
    g = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(99), p.shape), params)
    updates, new_state = tx.update(g, state, params)
    adam = pc.find_adam_state(new_state)
    p_diag = pc.adam_preconditioner(adam, B1, B2, EPS)
    want = -LR * ravel_pytree(adam.mu)[0] / p_diag
    np.testing.assert_allclose(ravel_pytree(updates)[0], want, rtol=1e-5, atol=1e-8)


def test_preconditioned_sharpness_quadratic_closed_form(setup):
    _, _, state = setup
    p_diag = pc.adam_preconditioner(pc.find_adam_state(state), B1, B2, EPS)
    n = p_diag.size
    a = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (n, n)), np.float64)
    hess = a @ a.T / n + np.diag(np.linspace(0.1, 1.0, n))
    want = scipy.linalg.eigh(hess, np.diag(np.asarray(p_diag, np.float64)), eigvals_only=True)[-1]
    h32 = jnp.asarray(hess, jnp.float32)
    lam, vec = pc.preconditioned_sharpness(lambda v: h32 @ v, p_diag, None, n, jax.random.PRNGKey(6))
    np.testing.assert_allclose(lam, want, rtol=1e-4)
    assert vec.shape == (n,)
    # the raw lambda_max differs: the preconditioner really changes the answer
    assert abs(np.linalg.eigvalsh(hess)[-1] - want) > 0.1 * want


@pytest.mark.parametrize(
    "name,has_adam",
    [("adam", True), ("adamw", True), ("lamb", True), ("sgd", False), ("momentum", False), ("lars", False)],
)
def test_finds_adam_state_in_lbbench_optimizers(name, has_adam):
    """lbbench.optim's chains (masked weight decay, trust ratios) hide ScaleByAdamState at
    different depths; the search finds it, shaped like the parameters, and nothing in SGD-family."""
    from lbbench.config import Config
    from lbbench.training.optim import make_optimizer

    params = {"Dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    tx = make_optimizer(Config(optimizer=name, weight_decay=1e-4, learning_rate=1e-3))
    adam = pc.find_adam_state(tx.init(params))
    assert (adam is not None) == has_adam
    if has_adam:
        assert ravel_pytree(adam.nu)[0].size == ravel_pytree(params)[0].size
