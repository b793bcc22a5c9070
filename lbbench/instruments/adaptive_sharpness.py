"""Adaptive sharpness at the end of a run: the worst loss rise within a ρ-ball scaled by |w|
(lbbench.curvature.adaptive; Kwon et al. 2021, Andriushchenko et al. 2023), beside λ_max, trace and
ε-sharpness, so "does sharpness explain the gap" can be asked of a measure that a ReLU rescaling
does not change. Of the run's training loss (Config.loss), on the fixed measurement subset,
BatchNorm in inference mode; result.json
`adaptive_sharpness`. Switched on by --adaptive_sharpness_rho > 0.
"""

from __future__ import annotations

from lbbench.curvature.adaptive import adaptive_sharpness
from lbbench.curvature.loss import make_loss
from lbbench.instruments.base import Instrument, TrialView

NAME = "adaptive_sharpness"
ORDER = 60
# Config overrides that switch it on, at a size the contract test can afford (tests/instruments)
ENABLE = {"adaptive_sharpness_rho": 0.05, "adaptive_sharpness_steps": 3}
GRADIENTS_PER_STEP = 1.0  # one value-and-gradient of the subset loss per ascent step


class AdaptiveSharpness(Instrument):
    name = NAME
    at_end = True
    summary_key = NAME

    def __init__(
        self, rho: float, steps: int, examples: int, batch_size: int, chunk_size: int = 512, loss: str = "cross_entropy"
    ):
        self.rho, self.steps, self.examples, self.batch_size = rho, steps, examples, batch_size
        self.chunk_size, self.loss = chunk_size, loss
        self._last: dict[int, dict] = {}

    def cost_steps(self) -> float:
        return (self.steps + 2) * GRADIENTS_PER_STEP * self.examples / self.batch_size

    def run(self, view: TrialView):
        loss = make_loss(view.logits_fn, view.measure_x, view.measure_y, self.chunk_size, self.loss)
        out = adaptive_sharpness(loss, view.params, self.rho, self.steps, view.measure_key)
        self._last[view.trial] = out
        yield "value", out["adaptive_sharpness"]

    def summary(self, trial: int) -> dict | None:
        return self._last.get(trial)


def build(cfg, ctx) -> AdaptiveSharpness | None:
    if cfg.adaptive_sharpness_rho <= 0:
        return None
    return AdaptiveSharpness(
        cfg.adaptive_sharpness_rho, cfg.adaptive_sharpness_steps, cfg.sharpness_examples, cfg.batch_size, loss=cfg.loss
    )
