"""The batch-size phases of a run (--batch_schedule): which batch each epoch trains at, and where the
global step stands at every epoch boundary.

Smith et al. 2018 ("Don't decay the learning rate, increase the batch size") grow the batch where a
step schedule would decay the rate; Merrill et al. 2025 warm the batch size up as the critical batch
grows early in training. Both train phase after phase at fixed batch sizes, so a run is a sequence of
phases, each one compiled program at its batch (training/loop.py switches between them), and the
training state, step counter and LR schedule simply continue. A run without a schedule is one phase.

Epochs are the run's unit of length (warmup and decay epochs, budgets); steps per epoch change with
the batch, so an epoch count maps to a global step through the phases (`step_at`), which is how the
LR schedule's warmup and decay boundaries find their steps.
"""

from __future__ import annotations

import dataclasses

from lbbench.config import Config


@dataclasses.dataclass(frozen=True)
class Phase:
    batch_size: int
    epochs: int
    first_epoch: int  # 1-based
    start_step: int  # the global step at its start
    steps_per_epoch: int

    @property
    def end_epoch(self) -> int:
        """The epochs done when this phase ends."""
        return self.first_epoch - 1 + self.epochs


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run's phases, in order, and the epoch ↔ global step arithmetic over them."""

    phases: tuple[Phase, ...]
    scheduled: bool = False  # from --batch_schedule (even of one phase): its records say their batch

    @property
    def total_steps(self) -> int:
        last = self.phases[-1]
        return last.start_step + last.epochs * last.steps_per_epoch

    def index(self, epoch: int) -> int:
        """The phase (0-based) that trains 1-based `epoch` (the last one beyond the end)."""
        return next((i for i, p in enumerate(self.phases) if epoch <= p.end_epoch), len(self.phases) - 1)

    def phase(self, epoch: int) -> Phase:
        return self.phases[self.index(epoch)]

    def start_step(self, epoch: int) -> int:
        """The global step at which 1-based `epoch` starts."""
        p = self.phase(epoch)
        return p.start_step + (epoch - p.first_epoch) * p.steps_per_epoch

    def end_step(self, epoch: int) -> int:
        return self.start_step(epoch) + self.phase(epoch).steps_per_epoch

    def step_at(self, epochs: float) -> int:
        """The global step after `epochs` (fractional) epochs: round(epochs × steps per epoch) for one
        phase, counted through the phases otherwise (beyond the end at the last phase's rate)."""
        p = next((p for p in self.phases if epochs <= p.end_epoch), self.phases[-1])
        return p.start_step + int(round((epochs - (p.first_epoch - 1)) * p.steps_per_epoch))

    def examples(self, steps: int) -> int:
        """Training examples in the first `steps` global steps."""
        out = 0
        for p in self.phases:
            out += max(0, min(steps - p.start_step, p.epochs * p.steps_per_epoch)) * p.batch_size
        return out + max(0, steps - self.total_steps) * self.phases[-1].batch_size

    def to_json(self) -> list[dict]:
        """result.json `batch_phases`: each phase's batch, epochs and where it starts."""
        return [dataclasses.asdict(p) for p in self.phases]

    def describe(self) -> str:
        """'256 × 2 epochs (234 steps/epoch), 1024 × 3 (58), 4096 × 5 (14)' for the start line."""
        first, *rest = self.phases
        head = f"{first.batch_size} × {first.epochs} epochs ({first.steps_per_epoch} steps/epoch)"
        return ", ".join([head] + [f"{p.batch_size} × {p.epochs} ({p.steps_per_epoch})" for p in rest])


def plan(cfg: Config, num_train: int) -> Plan:
    """The phases `cfg` trains on `num_train` examples (a remainder short of a batch is dropped each epoch)."""
    out, epoch, step = [], 1, 0
    for batch, epochs in cfg.batch_phases:
        spe = num_train // batch
        out.append(Phase(batch, epochs, epoch, step, spe))
        epoch, step = epoch + epochs, step + epochs * spe
    return Plan(tuple(out), bool(cfg.batch_schedule))
