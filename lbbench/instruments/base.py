"""The instrument interface: what the training loop hands an instrument, and what it gets back.

Modelled on big_vision's evaluators (DESIGN.md): an instrument is one module of this package,
built from the Config by its `build(cfg, ctx)`, that says when it runs and what one run costs,
and whose `run(view)` yields (name, value) pairs for one trial at one step. The scheduler
(instruments/scheduler.py) calls it; the training loop never names an instrument. Where its values
go follows from a few declared attributes:

    every          run every this many steps (0 = not periodically)
    at_end         run once more when a trial completes (unless it just ran at that step)
    record_prefix  run at every epoch's end; the pairs join that epoch's record (result.json
                   history, metrics.jsonl) as record_prefix + name
    columns_key    result.json key of the per-step columns of its periodic runs (None = not kept)
    summary_key    result.json key of `summary(trial)`, taken after the run at the end (None = none)

Every pair is also a TensorBoard scalar `<instrument name>/<value name>`. `cost_steps()` is the
declared cost of one run in train steps (a number), which the scheduler records beside the
seconds it measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np

from lbbench.runs.atomic import finite_or_none

HVP_IN_GRADIENTS = 2.4  # one forward-over-reverse HVP ≈ 2.4 gradients of the same loss (BUILD_NOTES)
MEASUREMENT_SUBSET_SEED = 1703  # fixed: every run is measured on the same training examples


def measurement_subset(ds, n: int):
    """The fixed, seeded training subset instruments measure on (the same for every run)."""
    idx = np.sort(np.random.default_rng(MEASUREMENT_SUBSET_SEED).permutation(ds.num_train)[: min(n, ds.num_train)])
    return ds.x_train[idx], ds.y_train[idx]


@dataclasses.dataclass
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
    # plain closure per call recompiles every jitted measurement (seconds each, bench curvature).
    logits_fn: Callable
    measure_x: Any  # the fixed, seeded measurement subset (same for every run)
    measure_y: Any
    batch_x: Any = None  # a training minibatch of the run's batch size drawn at this step (or batch_fn)
    batch_y: Any = None
    key: jax.Array | None = None  # fresh at every step
    # optional: (grads, opt_state, params) -> updates, the optimizer's own update. GradientTests
    # measures alpha along it; without it, along the plain SGD step -learning_rate * g.
    update_fn: Callable | None = None
    state: Any = None  # the trial's whole training state (in-step accumulators such as the noise scale)
    measure_key: jax.Array | None = None  # the trial's fixed measurement key (same at every step)
    batch_fn: Callable | None = None  # () -> (batch_x, batch_y), drawn on first use
    log: Callable[[str], None] | None = None  # progress lines of long measurements (process 0 only)

    def batch(self):
        """(batch_x, batch_y): the minibatch given, else drawn once by batch_fn."""
        if self.batch_x is None and self.batch_fn is not None:
            self.batch_x, self.batch_y = self.batch_fn()
        return self.batch_x, self.batch_y


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What building an instrument may need besides the Config."""

    steps_per_epoch: int
    vectors: TopVectors  # per-trial top eigenvectors shared by the instruments that need them


class Instrument:
    """Base class: one measurement and where its values go (see the module docstring)."""

    name: str = ""
    every: int = 0
    at_end: bool = False
    record_prefix: str | None = None
    columns_key: str | None = None
    summary_key: str | None = None
    charts: dict = {}  # TensorBoard custom-scalars layout {category: {title: [tags]}}

    def cost_steps(self) -> float:
        """Declared cost of one run, in train steps of the run's batch size."""
        raise NotImplementedError

    def describe_cost(self) -> str:
        return f"≈ {self.cost_steps():.1f} train steps"

    def run(self, view: TrialView) -> Iterator[tuple[str, float]]:
        raise NotImplementedError

    def summary(self, trial: int) -> dict | None:
        """The end-of-run summary of `trial` for result.json[summary_key] (after its last run)."""
        return None

    def histograms(self, trial: int) -> dict:
        """{TensorBoard tag: (grid, density)} to log as a histogram after the end-of-run measurement."""
        return {}

    def trial_state(self, trial: int) -> dict:
        """What a checkpoint keeps of `trial`'s host state: its last report, which the summary reads
        (warm-start vectors are not kept: a resumed run starts those iterations cold)."""
        last = getattr(self, "_last", None)
        return {"last": last[trial]} if isinstance(last, dict) and trial in last else {}

    def restore_trial(self, trial: int, saved: dict) -> None:
        """Undo `trial_state` into (possibly another) trial index of this group."""
        if "last" in saved and isinstance(getattr(self, "_last", None), dict):
            self._last[trial] = saved["last"]


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

    Pairs added for the same step land in one row; `to_dict()` gives {"step": [...], name: [...]}
    with steps ascending, every column as long as "step", None where a name was not measured at a
    step or its value was NaN/inf (strict JSON).
    """

    def __init__(self):
        self._rows: dict[int, dict[str, float]] = {}
        self._names: list[str] = []

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, step: int, pairs: Iterable[tuple[str, float]] | dict) -> None:
        row = self._rows.setdefault(int(step), {})
        for name, value in pairs.items() if isinstance(pairs, dict) else pairs:
            if name not in self._names:
                self._names.append(name)
            row[name] = value

    def state(self) -> dict:
        """Everything added so far, for a checkpoint (msgpack keys must be strings)."""
        steps = sorted(self._rows)
        return {"steps": steps, "rows": [self._rows[s] for s in steps], "names": list(self._names)}

    @classmethod
    def restore(cls, saved: dict) -> Columns:
        out = cls()
        out._rows = {int(s): dict(row) for s, row in zip(saved["steps"], saved["rows"])}
        out._names = list(saved["names"])
        return out

    def to_dict(self) -> dict[str, list]:
        steps = sorted(self._rows)
        out = {"step": steps}
        for name in self._names:
            out[name] = [finite_or_none(self._rows[s].get(name)) for s in steps]
        return out
