"""CurvatureTracker: edge-of-stability quantities during training, from warm-started Lanczos.

Yields, per measurement:
  lambda_max                   top Hessian eigenvalue of the measurement-subset loss (warm start)
  lambda_max_last_change       how much the last Lanczos step still moved it, relative (lanczos.
                               ritz_change): the convergence indicator; above ~1 % it may be low
  threshold, lambda_max_ratio  the optimizer's stability threshold on lambda_max and lambda/threshold
                               (sgd 2/eta, heavy ball (2+2mu)/eta, Nesterov; Cohen et al. 2021)
  preconditioned_sharpness     lambda_max(P^-1 H) for Adam-family states (Cohen et al. 2022), with
  preconditioned_threshold,    (2+2 b1)/(eta (1 - b1)) and the ratio (adam, adamw only)
  preconditioned_ratio
  preconditioned_last_change   its convergence indicator, as for lambda_max
  batch_sharpness              E_B[g_B^T H_B g_B / |g_B|^2] (Andreyev & Beneventano 2024) over
  batch_sharpness_stderr       minibatches of the run's batch size cut from the measurement subset
  batch_sharpness_ratio        (the training minibatch if B exceeds it), and its ratio to 2/eta

All curvature is of the run's training loss (Config.loss: mean cross-entropy or Cohen et al. 2021's
MSE, curvature.objectives) with BatchNorm in inference mode (the view's logits_fn), so for full-batch
GD lambda_max is that of the loss being descended; coupled L2 weight decay, which adds wd I on the
decayed weights to the Hessian the optimizer sees, is not included.
"""

from __future__ import annotations

import dataclasses

import jax
from jax.flatten_util import ravel_pytree

from lbbench.curvature.batch_sharpness import batch_sharpness, split_batches
from lbbench.curvature.hvp import flat_matvec
from lbbench.curvature.lanczos import warm_lambda_max_checked
from lbbench.curvature.loss import make_loss
from lbbench.curvature.preconditioned import (
    adam_hyperparams,
    adam_preconditioner,
    find_adam_state,
    find_hyperparams,
    preconditioned_sharpness_checked,
)
from lbbench.curvature.thresholds import ADAM_LIKE, adam_threshold, gd_threshold, stability_threshold
from lbbench.instruments.base import HVP_IN_GRADIENTS, Instrument, TopVectors, TrialView

NAME = "curvature"
ORDER = 10
# Config overrides that switch it on, at a size the contract test can afford (tests/instruments)
ENABLE = {"track_curvature_every": 4, "track_curvature_iters": 3}
# lambda_max: Lanczos runs at least `iters` steps, then on until its last step moves the value by
# < 0.1 %, at most 20; the warm start gets 10 % of a random vector (lanczos.warm_lambda_max_checked).
# Adam's preconditioned sharpness has nearly tied top eigenvalues that a short warm-started run
# converges past (the indicator cannot see it), so it always runs PRECONDITIONED_MIN_ITERS steps.
# Both measured against the largest of several runs' values on the default MLP (BUILD_NOTES, issue 23).
UNTIL = {"max_iters": 20, "tol": 1e-3, "mix": 0.1}
PRECONDITIONED_MIN_ITERS = 20
BATCH_HVP_IN_GRADIENTS = 3.0  # linearize (primal gradient) + tangent, per minibatch


@dataclasses.dataclass
class CurvatureTracker(Instrument):
    every: int
    iters: int = 5  # warm-started Lanczos steps (HVPs) per lambda_max and per P^-1 H
    optimizer: str = "adam"
    momentum: float = 0.9
    beta2: float = 0.999
    batch_size: int = 256  # for the cost estimate; run() uses the view's batch
    measure_examples: int = 2048
    chunk_size: int = 512
    batch_sharpness_batches: int = 0  # 0 = every whole minibatch of the measurement subset
    # 0: plain forward-over-reverse HVPs. A cached linearisation (measure's choice) pays off over
    # ~50 HVPs, not 5-10: its setup and a fresh compile of the cached product cost more here.
    hvp_cache_bytes: int = 0
    loss: str = "cross_entropy"  # the training loss (Config.loss), whose curvature is measured
    vectors: TopVectors = dataclasses.field(default_factory=TopVectors)
    name: str = NAME
    at_end: bool = True
    columns_key: str = NAME
    charts = {
        NAME: {
            "lambda_max and its stability threshold": ["curvature/lambda_max", "curvature/threshold"],
            "Adam preconditioned sharpness and 38/eta": [
                "curvature/preconditioned_sharpness",
                "curvature/preconditioned_threshold",
            ],
            "batch sharpness, lambda_max and 2/eta": [
                "curvature/batch_sharpness",
                "curvature/lambda_max",
                "curvature/threshold",
            ],
        }
    }

    def __post_init__(self):
        self._preconditioned = TopVectors()  # warm starts for P^-1/2 H P^-1/2

    @classmethod
    def from_config(cls, cfg, vectors: TopVectors | None = None) -> CurvatureTracker:
        return cls(
            every=cfg.track_curvature_every,
            iters=cfg.track_curvature_iters,
            optimizer=cfg.optimizer,
            momentum=cfg.momentum,
            beta2=cfg.scaled_beta2,
            batch_size=cfg.batch_size,
            measure_examples=cfg.sharpness_examples,
            loss=cfg.loss,
            vectors=vectors or TopVectors(),
        )

    def _adam_family(self) -> bool:
        return self.optimizer in ADAM_LIKE + ("lamb",)

    def cost_steps(self) -> float:
        # at least: lambda_max may take up to UNTIL["max_iters"] steps when it has not converged
        hvps = self.iters + (max(self.iters, PRECONDITIONED_MIN_ITERS) if self._adam_family() else 0)
        return (HVP_IN_GRADIENTS * hvps + BATCH_HVP_IN_GRADIENTS) * self.measure_examples / self.batch_size

    def describe_cost(self) -> str:
        # at least: lambda_max may take up to UNTIL["max_iters"] steps when it has not converged
        hvps = self.iters + (max(self.iters, PRECONDITIONED_MIN_ITERS) if self._adam_family() else 0)
        return (
            f"≈ {self.cost_steps():.1f} train steps ({hvps} HVPs on {self.measure_examples} examples "
            f"+ one HVP per minibatch for batch sharpness, at B = {self.batch_size})"
        )

    def run(self, view: TrialView):
        k_lambda, k_pre = jax.random.split(view.key)
        loss = make_loss(view.logits_fn, view.measure_x, view.measure_y, self.chunk_size, self.loss)
        matvec, n, dtype = flat_matvec(loss, view.params, self.hvp_cache_bytes)
        previous = self.vectors.get(view.trial)[1]
        lam, vec, change = warm_lambda_max_checked(matvec, n, dtype, previous, self.iters, k_lambda, **UNTIL)
        self.vectors.put(view.trial, view.step, vec)
        yield "lambda_max", lam
        yield "lambda_max_last_change", change  # how much the last Lanczos step moved it (0 = converged)
        lr = float(view.learning_rate)
        optimizer, momentum, _ = self._settings(view)
        momentum = float(find_hyperparams(view.opt_state).get("momentum", momentum))
        threshold = stability_threshold(optimizer, lr, momentum)
        if threshold is not None:
            yield "threshold", threshold
            yield "lambda_max_ratio", lam / threshold
        yield from self._preconditioned_pairs(view, matvec, lr, k_pre)
        del matvec  # frees a cached linearisation before batch sharpness
        yield from self._batch_pairs(view, lr)

    def _settings(self, view: TrialView) -> tuple[str, float, float]:
        """(optimizer, momentum/beta1, beta2) of this trial: its own Config if the view has one
        (trials of a group differ in momentum and beta2), else the values built from."""
        cfg = view.cfg
        if cfg is None:
            return self.optimizer, self.momentum, self.beta2
        return cfg.optimizer, float(cfg.momentum), float(cfg.scaled_beta2)

    def _preconditioned_pairs(self, view: TrialView, matvec, lr: float, key):
        optimizer, momentum, beta2 = self._settings(view)
        adam = find_adam_state(view.opt_state) if optimizer in ADAM_LIKE + ("lamb",) else None
        if adam is None:
            return
        hp = adam_hyperparams(view.opt_state, optimizer, momentum, beta2)
        diag_p = adam_preconditioner(adam, hp["b1"], hp["b2"], hp["eps"])
        if diag_p.size != ravel_pytree(view.params)[0].size:
            raise ValueError(
                f"Adam's second moment has {diag_p.size} entries, the parameters "
                f"{ravel_pytree(view.params)[0].size}: not one optimizer's state"
            )
        previous = self._preconditioned.get(view.trial)[1]
        iters = max(self.iters, PRECONDITIONED_MIN_ITERS)
        lam, vec, change = preconditioned_sharpness_checked(matvec, diag_p, previous, iters, key, **UNTIL)
        self._preconditioned.put(view.trial, view.step, vec)
        yield "preconditioned_sharpness", lam
        yield "preconditioned_last_change", change
        if optimizer in ADAM_LIKE:
            threshold = adam_threshold(lr, hp["b1"])
            yield "preconditioned_threshold", threshold
            yield "preconditioned_ratio", lam / threshold

    def _batch_pairs(self, view: TrialView, lr: float):
        b = int(view.batch()[0].shape[0])
        xs, ys = split_batches(view.measure_x, view.measure_y, b, self.batch_sharpness_batches)
        if xs.shape[0] == 0:  # the batch is larger than the measurement subset
            xs, ys = split_batches(*view.batch(), b)
        mean, stderr = batch_sharpness(view.logits_fn, view.params, xs, ys, loss=self.loss)
        yield "batch_sharpness", mean
        yield "batch_sharpness_stderr", stderr
        yield "batch_sharpness_ratio", mean / gd_threshold(lr)


def build(cfg, ctx) -> CurvatureTracker | None:
    return CurvatureTracker.from_config(cfg, ctx.vectors) if cfg.track_curvature_every else None
