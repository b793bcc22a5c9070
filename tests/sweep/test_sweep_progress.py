"""A sweep's progress lines: one count over the whole sweep, an ETA that says what it covers, the answer at the end."""

import json

from lbbench.config import Config
from lbbench.sweep.progress import SweepProgress, answer_lines, conclusions_of


def _done(counter, name, secs, acc=0.9):
    counter.finished(Config(run_name=name), "completed", {"final": {"test_accuracy": acc}}, None, secs)


def test_count_continues_over_follow_ups_and_eta_covers_the_planned_points():
    lines = []
    counter = SweepProgress(3, lines.append, more_may_come=True)
    counter.skipped(1)
    _done(counter, "a", 10.0)
    assert lines[-1].startswith("[2/3] a: completed test_acc 0.9000 (10 s; ETA 10 s for the 1 planned point(s) left")
    assert lines[-1].endswith("+ follow-ups)")
    _done(counter, "b", 30.0)
    assert lines[-1].endswith("(30 s; follow-ups may come next)"), "never 'done' while follow-ups may come"
    counter.added(2)
    _done(counter, "c", 20.0)
    assert lines[-1].startswith("[4/5] c:"), "follow-ups continue the count instead of restarting it"
    assert "ETA 20 s for the 1 planned point(s) left" in lines[-1]  # mean of 10, 30, 20 s per point


def test_without_follow_ups_the_last_point_says_all_done():
    lines = []
    counter = SweepProgress(1, lines.append)
    counter.finished(Config(run_name="x"), "diverged", None, "loss became NaN/inf in epoch 1", 3.0)
    assert lines == ["[1/1] x: diverged loss became NaN/inf in epoch 1 (3 s; all planned points done)"]


def test_sweep_ends_with_its_conclusions_and_where_to_read_them(tmp_path):
    analysis = {"summary": {"conclusions": ["B = 64 is non-inferior to B = 32."]}}
    assert (
        conclusions_of(analysis)
        == ["B = 64 is non-inferior to B = 32."]
        == conclusions_of(json.loads(json.dumps({"conclusions": ["B = 64 is non-inferior to B = 32."]})))
    )
    report = str(tmp_path / "report.md")
    assert answer_lines(str(tmp_path), {}, report) == [f"lbbench.sweep: read the answer in {report}"]
    (tmp_path / "answer.md").write_text("# answer\n")
    lines = answer_lines(str(tmp_path), analysis, report)
    assert lines[0] == "lbbench.sweep: answer: B = 64 is non-inferior to B = 32."
    assert lines[1] == f"lbbench.sweep: read the answer in {tmp_path / 'answer.md'} (report {report})"
