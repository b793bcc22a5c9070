"""The training losses by name, one definition each: what the train step descends, what evaluation
reports and what every curvature tool differentiates (`Config.loss`).

    cross_entropy  softmax cross-entropy with integer labels (optax)
    mse            0.5 * sum_c (f_c(x) - onehot(y)_c)^2 per example: the squared loss on one-hot
                   targets of Cohen et al. 2021 ("Gradient descent on neural networks typically
                   occurs at the edge of stability", Sec. 3 and App. A), as their reference code
                   computes it (locuslab/edge-of-stability at 5fa3ece, src/utilities.py SquaredLoss:
                   0.5 * ((f - onehot) ** 2).sum(), divided by the number of examples in gd.py)

Every loss here is per example; callers average (or weight and sum) over examples. Logits are
promoted to at least float32 first, so a bfloat16 model still sums its loss in float32. The names
must equal `lbbench.config.LOSSES` (tests/curvature/test_curvature_objectives.py): config is the
layer below and cannot import this module, and curvature imports nothing else of lbbench.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def _at_least_f32(logits: jax.Array) -> jax.Array:
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy, integer labels: shape logits.shape[:-1]."""
    return optax.softmax_cross_entropy_with_integer_labels(_at_least_f32(logits), labels)


def squared_error(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example 0.5 * |logits - onehot(labels)|^2 over the classes (Cohen et al. 2021's MSE).

    Its Hessian in the logits is the identity, so for a linear model (logits = x W) the Hessian
    of the mean over n examples is I_classes (x) X^T X / n (tests/curvature/test_curvature_objectives.py).
    """
    logits = _at_least_f32(logits)
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return 0.5 * jnp.sum(jnp.square(logits - targets), axis=-1)


PER_EXAMPLE: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "cross_entropy": cross_entropy,
    "mse": squared_error,
}


def per_example(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The per-example loss `name`: (logits, integer labels) -> losses; ValueError if unknown."""
    if name not in PER_EXAMPLE:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(PER_EXAMPLE)}")
    return PER_EXAMPLE[name]


def mean_loss(name: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The loss `name` averaged over the examples (the training objective of one batch)."""
    return jnp.mean(per_example(name)(logits, labels))


def weighted_sum(name: str, logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """sum_i weights_i * loss_i: chunked means (padding has weight 0) and masked evaluation."""
    losses = per_example(name)(logits, labels)
    return jnp.sum(weights.astype(losses.dtype) * losses)
