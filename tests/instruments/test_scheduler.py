"""The scheduler on fake instruments: who runs when, where each run's values go, and what it cost.

The loop hands it TrialViews and writers only; these fakes check every path of the contract:
periodic runs (at least `every` steps apart) into result.json columns, per-epoch values into the
epoch record, the end-of-run run skipped where one just ran, summaries, and the timing record that
puts measured seconds beside the declared cost."""

import pytest

from lbbench.instruments.base import Instrument, TrialView
from lbbench.instruments.scheduler import Scheduler


class Writer:
    def __init__(self):
        self.scalars_seen, self.hist = [], []

    def charts(self, layout):
        self.layout = layout

    def scalars(self, step, values, record=None):
        self.scalars_seen.append((step, record, dict(values)))

    def histogram(self, tag, grid, density, step):
        self.hist.append((tag, step))


class Fake(Instrument):
    def __init__(self, name, every=0, at_end=False, record_prefix=None, columns_key=None, summary_key=None):
        self.name, self.every, self.at_end, self.record_prefix = name, every, at_end, record_prefix
        self.columns_key, self.summary_key = columns_key, summary_key
        self.calls = []

    def cost_steps(self):
        return 2.5

    def run(self, view):
        self.calls.append((view.trial, view.step))
        yield "value", float(view.step + 100 * view.trial)

    def summary(self, trial):
        return {"last": self.calls[-1][1]} if self.calls else None


def view(state, trial, step):
    return TrialView(trial, step, None, None, None, None, 0.1, None, None, None)


@pytest.fixture
def setup():
    periodic = Fake("p", every=4, at_end=True, columns_key="p_cols", summary_key="p_sum")
    epochly = Fake("e", record_prefix="e_")
    ending = Fake("z", at_end=True, summary_key="z")
    writers = [Writer(), Writer()]
    return Scheduler([periodic, epochly, ending], view, writers), periodic, epochly, ending, writers


def test_periodic_runs_are_at_least_every_steps_apart_and_become_columns(setup):
    sched, periodic, _, _, writers = setup
    assert sched.segment_steps() == 4
    for step in (3, 4, 6, 8, 9, 13):  # segment ends; trial 1 stops training after step 8
        sched.after_segment(None, step, [0, 1] if step <= 8 else [0])
    assert periodic.calls == [(0, 4), (1, 4), (0, 8), (1, 8), (0, 13)]
    sched.finish(None, 13, 0)  # just ran at 13: not again
    assert periodic.calls[-1] == (0, 13) and len(periodic.calls) == 5
    extras = sched.result_extras(0, step_seconds=0.5)
    assert extras["extras"]["p_cols"] == {"step": [4, 8, 13], "value": [4.0, 8.0, 13.0]}
    assert extras["extras"]["p_sum"] == {"last": 13}
    assert (4, "p", {"p/value": 4.0}) in writers[0].scalars_seen
    assert (4, "p", {"p/value": 104.0}) in writers[1].scalars_seen


def test_epoch_records_end_runs_and_timing(setup):
    sched, periodic, epochly, ending, _ = setup
    assert sched.epoch_record(None, 10, 1) == {"e_value": 110.0}
    sched.finish(None, 10, 1)
    assert ending.calls == [(1, 10)] and periodic.calls == [(1, 10)]  # end runs, since nothing ran at 10
    extras = sched.result_extras(1, step_seconds=0.25)
    assert "e" not in extras["extras"] and extras["extras"]["z"] == {"last": 10}
    assert extras["extras"]["p_cols"] == {"step": [10], "value": [110.0]}  # the end run of a periodic one
    t = extras["timing"]["z"]
    assert t["declared_cost_steps"] == 2.5 and t["runs"] == 1 and t["seconds"] >= 0
    assert t["measured_cost_steps"] == pytest.approx(t["seconds_per_run"] / 0.25)
    assert extras["timing"]["e"]["runs"] == 1 and sched.result_extras(0)["timing"]["z"]["runs"] == 0


def test_describe_says_when_and_what_it_costs(setup):
    lines = setup[0].describe()
    assert lines[0] == "instrument p every 4 steps and at the end, ≈ 2.5 train steps each"
    assert lines[1] == "instrument e every epoch, ≈ 2.5 train steps each"
