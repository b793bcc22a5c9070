"""Sharpness of the minimum: Hessian λ_max, trace and Keskar et al.'s ε-sharpness (curvature.measure)
of the run's training loss (Config.loss).

At the end of a completed run (result.json `sharpness`: the full measurement, spectral density and
per-layer blocks included) and, with `--sharpness_every=N`, every N epochs (result.json
`sharpness_history` columns). Always on the fixed, seeded measurement subset with BatchNorm in
inference mode, and with the trial's own fixed measurement key, so two runs are measured alike.
A Ctrl-C/SIGTERM inside the measurement (which spends its time in XLA and scipy) takes effect
when it ends.
"""

from __future__ import annotations

from lbbench.curvature.measure import SharpnessOptions, measure
from lbbench.instruments.base import HVP_IN_GRADIENTS, Instrument, TrialView
from lbbench.runs import signals, ticker

NAME = "sharpness"
ORDER = 50
# Config overrides that switch it on, at a size the contract test can afford (tests/instruments)
ENABLE = {
    "sharpness": True,
    "sharpness_every": 1,
    "lanczos_iters": 3,
    "hutchinson_probes": 2,
    "epsilons": (1e-3,),
    "eps_subspace_dim": 0,
    "lbfgs_iters": 2,
}
PART_NAMES = {
    "hvp_setup": "Hessian-vector product set-up",
    "lambda_max": "lambda_max (Lanczos)",
    "trace": "Hessian trace (Hutchinson)",
    "density": "spectral density (SLQ)",
    "per_layer": "per-layer blocks",
    "epsilon": "eps-sharpness (L-BFGS-B)",
    "power_iteration": "power iteration",
}
EPSILON_IN_GRADIENTS = 2.0  # one L-BFGS-B iteration: a loss and a gradient on the subset


def options_of(cfg) -> SharpnessOptions:
    return SharpnessOptions(
        lanczos_iters=cfg.lanczos_iters,
        top_k=cfg.top_k,
        hutchinson_probes=cfg.hutchinson_probes,
        density=cfg.spectral_density,
        epsilons=tuple(cfg.epsilons),
        subspace_dim=cfg.eps_subspace_dim,
        lbfgs_iters=cfg.lbfgs_iters,
        per_layer=cfg.sharpness_per_layer,
        loss=cfg.loss,
    )


def scalars(report: dict):
    """The scalar values of a measurement, as (name, value) pairs."""
    yield "lambda_max", report.get("lambda_max")
    yield "hessian_trace", report.get("hessian_trace")
    for k, v in (report.get("epsilon_sharpness") or {}).items():
        yield f"eps_{k}", v
    for layer, row in (report.get("per_layer") or {}).items():
        for k in ("lambda_max", "trace"):
            yield f"layer/{layer}/{k}", row.get(k)


class Sharpness(Instrument):
    name = NAME
    at_end = True
    columns_key = "sharpness_history"
    summary_key = "sharpness"

    def __init__(self, options: SharpnessOptions, every: int = 0, examples: int = 2048, batch_size: int = 256):
        self.options, self.every, self.examples, self.batch_size = options, every, examples, batch_size
        self._last: dict[int, dict] = {}

    def cost_steps(self) -> float:
        o = self.options
        hvps = o.lanczos_iters + o.hutchinson_probes + (o.density_runs * o.density_iters if o.density else 0)
        lbfgs = o.lbfgs_iters * len(o.epsilons) * (2 if o.subspace_dim else 1)
        gradients = HVP_IN_GRADIENTS * hvps * (2 if o.per_layer else 1) + EPSILON_IN_GRADIENTS * lbfgs
        return gradients * self.examples / self.batch_size

    def run(self, view: TrialView):
        say = view.log or (lambda line: None)
        what = f"sharpness of trial {view.trial}" if view.trial else "sharpness"
        say(f"lbbench: measuring {what} (lambda_max, trace, eps-sharpness) ...")
        part = ["hvp_setup"]
        with ticker.still_running(lambda: f"  {PART_NAMES.get(part[0], part[0])}", say) as beat:

            def started(name: str) -> None:
                part[0] = name
                beat.restart()

            report = measure(  # checks for Ctrl-C before every Hessian product (runs.signals.check)
                view.logits_fn,
                view.params,
                view.measure_x,
                view.measure_y,
                self.options,
                view.measure_key,
                lambda name, secs: say(f"lbbench:   {PART_NAMES.get(name, name)}: {secs:.1f} s"),
                started,
                signals.check,
            )
        self._last[view.trial] = report
        yield from scalars(report)

    def summary(self, trial: int) -> dict | None:
        return self._last.get(trial)

    def histograms(self, trial: int) -> dict:
        density = (self._last.get(trial) or {}).get("density")
        return {"sharpness/spectral_density": (density["grid"], density["values"])} if density else {}


def build(cfg, ctx) -> Sharpness | None:
    if not cfg.sharpness:
        return None
    return Sharpness(
        options_of(cfg),
        every=cfg.sharpness_every * ctx.steps_per_epoch,
        examples=cfg.sharpness_examples,
        batch_size=cfg.batch_size,
    )
