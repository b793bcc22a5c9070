"""The instrument interface: what the training loop hands an instrument, what it gets back.

Modelled on big_vision's evaluators (DESIGN.md): an instrument is built once from the Config,
says how often it runs and what one run costs, and `run(view)` yields (name, value) pairs for one
trial at one step. The loop needs nothing else to call it; `Columns` turns the yielded pairs into
result.json's per-step column dict, e.g. curvature: {"step": [...], "lambda_max": [...], ...}.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator, Protocol

import jax

from lbbench.runs.writer import finite_or_none


@dataclasses.dataclass(frozen=True)
class TrialView:
    """One trial's state at a measurement point (host-side call)."""

    trial: int  # index of the trial in its group (instruments key per-trial state on it)
    step: int
    cfg: Any  # lbbench.config.Config of this trial
    params: Any
    batch_stats: Any
    opt_state: Any  # optax state, e.g. inject_hyperparams (hyperparams holds 'learning_rate')
    learning_rate: float  # the LR applied at this step (after schedule and scaling)
    # (params, x) -> logits, BatchNorm in inference mode with this trial's stats. Pass
    # lbbench.curvature.loss.BoundLogits(apply_fn, batch_stats) with one apply_fn per run: a new
    # plain closure per call recompiles every jitted measurement (seconds each, bench_curvature).
    logits_fn: Callable
    measure_x: Any  # the fixed, seeded measurement subset (same for every run)
    measure_y: Any
    batch_x: Any  # a training minibatch of the run's batch size drawn at this step
    batch_y: Any
    key: jax.Array
    # optional: (grads, opt_state, params) -> updates, the optimizer's own update. GradientTests
    # measures alpha along it; without it, along the plain SGD step -learning_rate * g.
    update_fn: Callable | None = None


class Instrument(Protocol):
    """Something measured every `every` steps (0 = only at the end) that yields named floats."""

    name: str
    every: int

    def run(self, view: TrialView) -> Iterator[tuple[str, float]]: ...

    def cost(self) -> str: ...


def is_due(instrument: Instrument, step: int, final: bool = False) -> bool:
    """True at the end of the run, and every `instrument.every` steps (never if every = 0)."""
    return final or (instrument.every > 0 and step % instrument.every == 0)


class TopVectors:
    """Per-trial (step, unit top Hessian eigenvector) shared by the instruments that need it, so a
    warm start survives between measurements and a vector found at this step is not recomputed."""

    def __init__(self):
        self._store: dict[int, tuple[int, jax.Array]] = {}

    def get(self, trial: int) -> tuple[int | None, jax.Array | None]:
        return self._store.get(trial, (None, None))

    def put(self, trial: int, step: int, vector: jax.Array) -> None:
        self._store[trial] = (step, vector)


class Columns:
    """Accumulates yielded (name, value) pairs per step into result.json's column dict.

    Pairs added for the same step land in one row (several instruments may share a Columns);
    `to_dict()` gives {"step": [...], name: [...]} with steps ascending, every column as long as
    "step", None where a name was not measured at a step or its value was NaN/inf (strict JSON).
    """

    def __init__(self):
        self._rows: dict[int, dict[str, float]] = {}
        self._names: list[str] = []

    def add(self, step: int, pairs: Iterable[tuple[str, float]] | dict) -> None:
        row = self._rows.setdefault(int(step), {})
        for name, value in (pairs.items() if isinstance(pairs, dict) else pairs):
            if name not in self._names:
                self._names.append(name)
            row[name] = value

    def to_dict(self) -> dict[str, list]:
        steps = sorted(self._rows)
        out = {"step": steps}
        for name in self._names:
            out[name] = [finite_or_none(self._rows[s].get(name)) for s in steps]
        return out


def run_due(instruments: Iterable[Instrument], view: TrialView, columns: dict[str, Columns],
            final: bool = False) -> None:
    """Run every instrument due at `view.step`, adding its pairs to columns[instrument.name]."""
    for instrument in instruments:
        if is_due(instrument, view.step, final):
            columns.setdefault(instrument.name, Columns()).add(view.step, instrument.run(view))
