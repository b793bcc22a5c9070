"""Host tasks between compiled epoch segments: test evaluation and instruments every N steps.

`segment_steps(cfg)` says how often the host needs the state; `periodic_tasks` builds the tasks a
group runs there (lbbench.instruments for curvature and gradient tests), each writing per-trial
columns that end up in result.json.
"""

from __future__ import annotations

from typing import Callable

from lbbench.config import Config

class Periodic:
    """A host task run at segment boundaries, at least `every` steps after its previous run."""

    def __init__(self, every: int, fn: Callable, at_end: bool = False):
        self.every, self.fn, self.last, self.at_end = every, fn, 0, at_end

    def __call__(self, state, step: int) -> None:
        if step - self.last >= self.every:
            self.last = step
            self.fn(state, step)

    def finish(self, state, step: int) -> None:
        """Once more at the end of training (tasks marked at_end), unless it just ran there."""
        if self.at_end and step != self.last:
            self.last = step
            self.fn(state, step)


def segment_steps(cfg: Config) -> int:
    """How often the host needs the state inside an epoch: the shortest periodic interval (0 = never)."""
    return min([n for n in (cfg.eval_every_steps, cfg.track_curvature_every, cfg.gradient_tests_every) if n],
               default=0)


def _step_evaluation(trainer, records: list) -> Callable:
    """Test loss/accuracy of every training trial every cfg.eval_every_steps steps (result.json `evals`)."""

    def evaluate(state, step):
        for r, ev in zip(records, trainer.evaluate(state, sets=("test",))):
            if r.status is None:
                for k, v in {"step": step, **ev}.items():
                    r.evals.setdefault(k, []).append(v)
                r.writer.scalars(step, {"eval/test_accuracy": ev["test_accuracy"], "eval/test_loss": ev["test_loss"]})

    return evaluate


def _instrument_run(trainer, records: list, instrument) -> Callable:
    """Run `instrument` on every training trial; its values go to TensorBoard and result.json columns."""
    from lbbench.instruments import Columns

    def measure(state, step):
        for i, r in enumerate(records):
            if r.status is None:
                pairs = list(instrument.run(trainer.trial_view(state, i, step)))
                r.instruments.setdefault(instrument.name, Columns()).add(step, pairs)
                r.writer.scalars(step, {f"{instrument.name}/{k}": v for k, v in pairs})

    return measure


CHARTS = {"curvature": {"lambda_max and its stability threshold": ["curvature/lambda_max", "curvature/threshold"],
                        "Adam preconditioned sharpness and 38/eta": ["curvature/preconditioned_sharpness",
                                                                     "curvature/preconditioned_threshold"],
                        "batch sharpness, lambda_max and 2/eta": ["curvature/batch_sharpness",
                                                                  "curvature/lambda_max", "curvature/threshold"]}}


def periodic_tasks(trainer, records: list, log: Callable) -> list[Periodic]:
    """Test evaluation between epochs and the configured instruments (lbbench.instruments.build)."""
    from lbbench import instruments

    cfg, tasks = trainer.cfg, []
    if cfg.eval_every_steps:
        tasks.append(Periodic(cfg.eval_every_steps, _step_evaluation(trainer, records)))
    for inst in instruments.build(cfg):  # built once per group; per-trial state is keyed on the trial index
        log(f"lbbench: instrument {inst.name} every {inst.every} steps and at the end, {inst.cost()} each")
        tasks.append(Periodic(inst.every, _instrument_run(trainer, records, inst), at_end=True))
        for r in records:
            r.writer.charts({k: v for k, v in CHARTS.items() if k == inst.name})
    return tasks
