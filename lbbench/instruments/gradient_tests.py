"""GradientTests: Cockpit's gradient tests, step-size quality alpha and top-eigenvector overlap.

Yields, per measurement (minibatch = the view's training batch; Cockpit, Schneider et al. 2021):
  norm_test, inner_product_test, orthogonality_test, grad_norm   (lbbench.curvature.gradient_tests)
  alpha              where the optimizer's step (view.update_fn, else -eta g_B) lands on the 1-D
                     quadratic fitted along it on the same batch (lbbench.curvature.step_quality)
  top_overlap        (v^T g)^2 / |g|^2, g the measurement-subset gradient, v the top Hessian
                     eigenvector (Gur-Ari et al. 2018); top_overlap_batch with g = g_B
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lbbench.curvature import cockpit as gt
from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.lanczos import warm_lambda_max
from lbbench.curvature.loss import make_loss
from lbbench.curvature.step_quality import step_alpha, top_overlap
from lbbench.instruments.base import HVP_IN_GRADIENTS, Instrument, TopVectors, TrialView

NAME = "gradient_tests"
ORDER = 20
# Config overrides that switch it on, at a size the contract test can afford (tests/instruments)
ENABLE = {"gradient_tests_every": 4, "track_curvature_iters": 3}
PER_EXAMPLE_IN_GRADIENTS = 3.0  # vmapped per-example gradients, reduced chunk by chunk


@jax.jit
def _loss_grad(loss_fn, params):
    """Gradient of a ChunkedLoss, which is a jit argument (its data is never a constant)."""
    return jax.grad(loss_fn)(params)


@dataclasses.dataclass
class GradientTests(Instrument):
    every: int
    iters: int = 5  # warm Lanczos steps refreshing the top eigenvector (0 if found at this step)
    batch_size: int = 256
    measure_examples: int = 2048
    chunk: int = 64  # examples whose per-example gradients are held at once
    chunk_size: int = 512
    loss: str = "cross_entropy"  # the training loss (Config.loss) whose gradients are tested
    vectors: TopVectors = dataclasses.field(default_factory=TopVectors)
    name: str = NAME
    at_end: bool = True
    columns_key: str = NAME

    @classmethod
    def from_config(cls, cfg, vectors: TopVectors | None = None) -> GradientTests:
        return cls(
            every=cfg.gradient_tests_every,
            iters=cfg.track_curvature_iters,
            batch_size=cfg.batch_size,
            measure_examples=cfg.sharpness_examples,
            loss=cfg.loss,
            vectors=vectors or TopVectors(),
        )

    def cost_steps(self) -> float:
        scale = self.measure_examples / self.batch_size
        return 1 + PER_EXAMPLE_IN_GRADIENTS + 1 + (1 + HVP_IN_GRADIENTS * self.iters) * scale

    def describe_cost(self) -> str:
        return (
            f"≈ {self.cost_steps():.1f} train steps (batch and per-example gradients, 2 jvps for alpha; "
            f"gradient + {self.iters} HVPs on {self.measure_examples} examples for the overlap, "
            f"none of the HVPs if the curvature tracker ran at this step; B = {self.batch_size})"
        )

    def run(self, view: TrialView):
        x, y = (jnp.asarray(a) for a in view.batch())
        chunk = min(self.chunk, x.shape[0])
        stats = gt.batch_gradient_stats(view.logits_fn, view.params, x, y, chunk=chunk, loss=self.loss)
        yield "norm_test", float(gt.norm_test(stats["sq_norms"], stats["grad_sq"]))
        yield "inner_product_test", float(gt.inner_product_test(stats["dots"], stats["grad_sq"]))
        yield "orthogonality_test", float(gt.orthogonality_test(stats["sq_norms"], stats["dots"], stats["grad_sq"]))
        yield "grad_norm", float(jnp.sqrt(stats["grad_sq"]))
        unravel = ravel_pytree(view.params)[1]
        grads = unravel(stats["grad"])
        yield "alpha", step_alpha(view.logits_fn, view.params, self._step(view, grads), x, y, self.loss)
        vector, full_grad = self._top_vector_and_gradient(view)
        yield "top_overlap", top_overlap(full_grad, vector)
        yield "top_overlap_batch", top_overlap(stats["grad"], vector)

    @staticmethod
    def _step(view: TrialView, grads):
        if view.update_fn is not None:
            return view.update_fn(grads, view.opt_state, view.params)
        return jax.tree.map(lambda g: -view.learning_rate * g, grads)

    def _top_vector_and_gradient(self, view: TrialView):
        loss = make_loss(view.logits_fn, view.measure_x, view.measure_y, self.chunk_size, self.loss)
        full_grad = ravel_pytree(_loss_grad(loss, view.params))[0]
        step, vector = self.vectors.get(view.trial)
        if step != view.step or vector is None:
            matvec, n, dtype = flat_matvec(loss, view.params)
            _, vector = warm_lambda_max(matvec, n, dtype, vector, self.iters, view.key)
            self.vectors.put(view.trial, view.step, vector)
        return vector, full_grad


def build(cfg, ctx) -> GradientTests | None:
    return GradientTests.from_config(cfg, ctx.vectors) if cfg.gradient_tests_every else None
