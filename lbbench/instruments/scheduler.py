"""The one scheduler: when a group's instruments run, for which trials, where the values go, what it cost.

The training loop calls it at three points and never names an instrument:

    after_segment(state, step, trials)   periodic instruments that are due (at least `every` steps
                                         since their last run; segments end every `segment_steps()`)
    epoch_record(state, step, trial)     per-epoch instruments, whose pairs join the epoch's record
    finish(state, step, trial)           the end-of-run runs of a completed trial, and its summaries

Each run's pairs go to the trial's writer as TensorBoard scalars `<instrument>/<value>` (and a
metrics.jsonl record named after the instrument). `result_extras(trial)` gives what result.json
keeps: the columns of periodic runs, the summaries, and under `instruments` each instrument's
declared cost in train steps beside its measured seconds per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lbbench.instruments.base import Columns, Instrument, TrialView


class Scheduler:
    """Runs the instruments of one group of trials (instrument state is keyed per trial)."""

    def __init__(
        self,
        instruments: list[Instrument],
        view_fn: Callable[..., TrialView],
        writers: list,
        log: Callable[[str], None] | None = None,
    ):
        """`view_fn(state, trial, step)` builds a TrialView; `writers[i]` is trial i's RunWriter."""
        self.instruments, self.view_fn, self.writers, self.log = instruments, view_fn, writers, log
        self._last: dict[tuple[str, int], int] = {}
        self._columns = [{inst.name: Columns() for inst in instruments} for _ in writers]
        self._seconds = [{inst.name: [0.0, 0] for inst in instruments} for _ in writers]
        for w in writers:
            for inst in instruments:
                if inst.charts:
                    w.charts(inst.charts)

    def describe(self) -> list[str]:
        """One line per instrument: when it runs and what one run costs."""
        lines = []
        for inst in self.instruments:
            when = [f"every {inst.every} steps"] if inst.every else []
            when += ["every epoch"] if inst.record_prefix is not None else []
            when += ["at the end"] if inst.at_end else []
            lines.append(f"instrument {inst.name} {' and '.join(when)}, {inst.describe_cost()} each")
        return lines

    def segment_steps(self) -> int:
        """How often the periodic instruments need the state (the shortest interval; 0 = never)."""
        return min((inst.every for inst in self.instruments if inst.every), default=0)

    def _run(self, inst: Instrument, state, trial: int, step: int) -> list[tuple[str, float]]:
        view = self.view_fn(state, trial, step)
        view.log = self.log
        t0 = time.perf_counter()
        pairs = list(inst.run(view))
        spent = self._seconds[trial][inst.name]
        spent[0] += time.perf_counter() - t0
        spent[1] += 1
        self._last[(inst.name, trial)] = step
        if inst.every:
            self._columns[trial][inst.name].add(step, pairs)
        self.writers[trial].scalars(step, {f"{inst.name}/{k}": v for k, v in pairs}, record=inst.name)
        return pairs

    def after_segment(self, state, step: int, trials) -> None:
        """Run every periodic instrument due at `step` for each trial in `trials` (still training)."""
        for inst in self.instruments:
            if not inst.every:
                continue
            for i in trials:
                if step - self._last.get((inst.name, i), 0) >= inst.every:
                    self._run(inst, state, i, step)

    def epoch_record(self, state, step: int, trial: int) -> dict:
        """{record_prefix + name: value} of the per-epoch instruments for this trial."""
        out = {}
        for inst in self.instruments:
            if inst.record_prefix is not None:
                out.update({inst.record_prefix + k: v for k, v in self._run(inst, state, trial, step)})
        return out

    def finish(self, state, step: int, trial: int) -> None:
        """The end-of-run runs of a completed trial (skipped where one just ran at `step`), and histograms."""
        for inst in self.instruments:
            if inst.at_end and self._last.get((inst.name, trial)) != step:
                self._run(inst, state, trial, step)
            for tag, (grid, density) in inst.histograms(trial).items():
                self.writers[trial].histogram(tag, grid, density, step)

    def trial_state(self, trial: int) -> dict:
        """Trial's scheduler and instrument state, for a checkpoint."""
        return {
            "last": {name: step for (name, t), step in self._last.items() if t == trial},
            "columns": {name: col.state() for name, col in self._columns[trial].items()},
            "seconds": {name: list(v) for name, v in self._seconds[trial].items()},
            "instruments": {inst.name: inst.trial_state(trial) for inst in self.instruments},
        }

    def restore_trial(self, trial: int, saved: dict) -> None:
        """Undo `trial_state` into trial index `trial` of this group (it may differ from the saved one)."""
        for name, step in saved["last"].items():
            self._last[(name, trial)] = int(step)
        for name, col in saved["columns"].items():
            self._columns[trial][name] = Columns.restore(col)
        for name, (seconds, runs) in saved["seconds"].items():
            self._seconds[trial][name] = [float(seconds), int(runs)]
        for inst in self.instruments:
            inst.restore_trial(trial, saved["instruments"].get(inst.name) or {})

    def result_extras(self, trial: int, step_seconds: float | None = None) -> dict:
        """What result.json keeps of this trial's instruments (see the module docstring)."""
        out, timing = {}, {}
        for inst in self.instruments:
            columns = self._columns[trial][inst.name]
            if inst.columns_key and columns:
                out[inst.columns_key] = columns.to_dict()
            summary = inst.summary(trial) if inst.summary_key else None
            if summary is not None:
                out[inst.summary_key] = summary
            seconds, runs = self._seconds[trial][inst.name]
            each = seconds / runs if runs else None
            timing[inst.name] = {
                "declared_cost_steps": inst.cost_steps(),
                "runs": runs,
                "seconds": seconds,
                "seconds_per_run": each,
                "measured_cost_steps": each / step_seconds if each and step_seconds else None,
            }
        return {"extras": out, "timing": timing}
