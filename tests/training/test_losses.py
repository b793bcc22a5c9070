"""The train step, the evaluation and the curvature tools compute one and the same loss (Config.loss):
under MSE each equals Cohen et al.'s 0.5 * mean |f(x) - onehot(y)|^2 recomputed here in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lbbench.curvature.loss import loss_value, make_loss
from lbbench.models import build_model
from lbbench.training.epoch import make_evaluate
from lbbench.training.step import make_group_loss


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_step_evaluation_and_curvature_agree_on_the_loss(loss):
    model = build_model("tiny_mlp", 10)
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 40))
    y = jax.random.randint(jax.random.PRNGKey(1), (40,), 0, 10)
    params = model.init(jax.random.PRNGKey(2), x, train=False)["params"]
    logits = np.asarray(model.apply({"params": params}, x, train=False), np.float64)
    if loss == "mse":
        want = 0.5 * ((logits - np.eye(10)[np.asarray(y)]) ** 2).sum(axis=1).mean()
    else:
        want = (np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(40), np.asarray(y)]).mean()
    step_loss, (_, acc) = make_group_loss(model, loss)(params, {}, x, y, jax.random.PRNGKey(3))
    mask = jnp.ones(40)
    eval_loss, eval_acc = make_evaluate(model, 8, loss)(params, {}, x, y, mask)
    logits_fn = lambda p, xb: model.apply({"params": p}, xb, train=False)  # noqa: E731
    curvature_loss = loss_value(make_loss(logits_fn, x, y, 16, loss), params)
    for got in (step_loss, eval_loss, curvature_loss):
        assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(acc) == float(eval_acc) == pytest.approx(np.mean(logits.argmax(1) == np.asarray(y)))
