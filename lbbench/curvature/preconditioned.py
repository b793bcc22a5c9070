"""Adam's preconditioned sharpness lambda_max(P^-1 H) (Cohen et al. 2022, "Adaptive gradient
methods at the edge of stability"), read from an optax optimizer state.

optax's Adam step is -eta m_hat/(sqrt(nu_hat) + eps) with m_hat = m/(1 - b1^c),
nu_hat = nu/(1 - b2^c), c = count. Written as -eta P^-1 m (Cohen et al. 2022 Sec. 2), the
preconditioner is P = (1 - b1^c) diag(sqrt(nu/(1 - b2^c)) + eps): the first-moment bias
correction is folded into P. Cohen et al. build P from v_{t+1}, the second moment that includes
the current gradient; the state holds v_t (one EMA step older, weight 1 - b2 on the difference).
P^-1 H is similar to the symmetric P^-1/2 H P^-1/2, which Lanczos handles.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from lbbench.curvature.lanczos import warm_lambda_max_checked
from lbbench.curvature.loss import MatVec

DEFAULT_EPS = {"adam": 1e-8, "adamw": 1e-8, "lamb": 1e-6}  # optax.adam(w) and optim.lamb defaults


def _walk(node):
    """Every node of a (nested namedtuple/tuple/list/dict) optimizer state, depth first."""
    yield node
    if isinstance(node, dict):
        children = node.values()
    elif isinstance(node, (tuple, list)):
        children = node
    else:
        return
    for child in children:
        yield from _walk(child)


def find_adam_state(opt_state) -> optax.ScaleByAdamState | None:
    """The first optax.ScaleByAdamState anywhere in `opt_state` (inject_hyperparams, chain...)."""
    return next((n for n in _walk(opt_state) if isinstance(n, optax.ScaleByAdamState)), None)


def find_hyperparams(opt_state) -> dict:
    """The hyperparams dict of the first inject_hyperparams state in `opt_state` ({} if none)."""
    return next(
        (
            dict(n.hyperparams)
            for n in _walk(opt_state)
            if hasattr(n, "hyperparams") and isinstance(n.hyperparams, dict)
        ),
        {},
    )


def adam_preconditioner(adam_state, b1: float, b2: float, eps: float) -> jax.Array:
    """Flat diagonal of P = (1 - b1^c) (sqrt(nu/(1 - b2^c)) + eps) (module docstring); c >= 1."""
    count = jnp.maximum(jnp.asarray(adam_state.count, jnp.float32), 1.0)
    nu = ravel_pytree(adam_state.nu)[0].astype(jnp.float32)
    return (1.0 - b1**count) * (jnp.sqrt(nu / (1.0 - b2**count)) + eps)


def preconditioned_matvec(matvec: MatVec, diag_p: jax.Array) -> MatVec:
    """v -> P^-1/2 H P^-1/2 v for diagonal P: symmetric, with the eigenvalues of P^-1 H."""
    scale = jax.lax.rsqrt(diag_p)
    return lambda v: scale * matvec(scale * v)


def preconditioned_sharpness(matvec: MatVec, diag_p: jax.Array, previous, num_iters: int, key) -> tuple[float, Any]:
    """(lambda_max(P^-1 H), top eigenvector of P^-1/2 H P^-1/2), warm-started from `previous`.

    Cost: `num_iters` HVPs as in `warm_lambda_max` (~2.4 num_iters n/B train steps) plus
    elementwise scalings.
    """
    value, vec, _ = preconditioned_sharpness_checked(matvec, diag_p, previous, num_iters, key)
    return value, vec


def preconditioned_sharpness_checked(matvec: MatVec, diag_p: jax.Array, previous, num_iters: int, key, **until):
    """preconditioned_sharpness plus the `ritz_change` of its last Lanczos step (`until`: max_iters,
    tol and mix of `warm_lambda_max_checked`)."""
    pmv = preconditioned_matvec(matvec, diag_p)
    return warm_lambda_max_checked(pmv, diag_p.size, diag_p.dtype, previous, num_iters, key, **until)


def adam_hyperparams(opt_state, optimizer: str, momentum: float, beta2: float) -> dict:
    """b1, b2, eps: the values injected into an inject_hyperparams state (optax's names b1, b2,
    eps, or lbbench's momentum, beta2), else the configured ones (eps: the optimizer's default)."""
    hp = find_hyperparams(opt_state)

    def get(names, default):
        return next((float(hp[k]) for k in names if k in hp), default)

    return {
        "b1": get(("b1", "momentum"), momentum),
        "b2": get(("b2", "beta2"), beta2),
        "eps": get(("eps",), DEFAULT_EPS.get(optimizer, 1e-8)),
    }
