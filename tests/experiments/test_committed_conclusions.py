"""The committed studies' prose agrees with their committed analysis.json (issue 17: conclusions come from verdicts).

Each study experiment computes its conclusions from the verdicts and fits in its summary
(`conclusions(summary)`); the sweep writes them into analysis.json and at the top of answer.md, and
BUILD_NOTES.md quotes them on lines of the form `> [study] sentence`. These tests recompute the
sentences from the committed analysis.json: a hand-edited conclusion, a stale answer.md or a quote in
BUILD_NOTES that no verdict supports fails here.
"""

import json
import os
import re

import pytest
from _paths import ROOT

from lbbench.sweep import experiment_file

RESULTS = os.path.join(ROOT, "experiments", "results")
# rerun under the validation protocol (issue 17), and the branching study of issue 23
STUDIES = ("critical_batch", "critical_batch_bn", "goyal", "lars", "remedies", "local_critical_batch", "convergence")
QUOTE = re.compile(r"^> \[(\w+)\] (.+)$")


def _summary(study):
    with open(os.path.join(RESULTS, study, "analysis.json"), encoding="utf-8") as f:
        return json.load(f)["summary"]


@pytest.mark.parametrize("study", STUDIES)
def test_committed_conclusions_are_what_the_committed_analysis_computes(study):
    summary = _summary(study)
    module = experiment_file.load_experiment(study)
    assert summary.get("conclusions"), f"{study}: analysis.json has no generated conclusions"
    assert summary["conclusions"] == module.conclusions(summary)
    with open(os.path.join(RESULTS, study, "answer.md"), encoding="utf-8") as f:
        answer = f.read()
    assert all(c in answer for c in summary["conclusions"])


def test_committed_edge_of_stability_verdicts_are_what_its_summary_computes():
    """The edge-of-stability verdicts (lbbench.study.edge_of_stability) from the committed GD rows."""
    from lbbench.study import edge_of_stability

    summary = _summary("edge_of_stability")
    assert summary["gd_mse"] and summary["conclusions"] == edge_of_stability.conclusions(summary)
    with open(os.path.join(RESULTS, "edge_of_stability", "eos.md"), encoding="utf-8") as f:
        table = f.read()
    assert all(f"- {c}" in table for c in summary["conclusions"])


def test_build_notes_quote_only_computed_conclusions():
    with open(os.path.join(ROOT, "BUILD_NOTES.md"), encoding="utf-8") as f:
        quotes = [m.groups() for m in map(QUOTE.match, f.read().splitlines()) if m]
    assert {s for s, _ in quotes} >= set(STUDIES), "BUILD_NOTES quotes every rerun study's conclusions"
    for study, sentence in quotes:
        assert sentence in _summary(study)["conclusions"], f"[{study}] {sentence}"


def test_the_committed_answer_table_is_what_the_committed_studies_give(tmp_path):
    """experiments/results/answer_table.md names its studies; regenerated from their committed
    analysis.json it is the same file (no cell or sentence edited by hand, none stale)."""
    from lbbench.report import answer_table

    with open(os.path.join(RESULTS, "answer_table.md"), encoding="utf-8") as f:
        committed = f.read()
    studies = re.findall(r"`([^`=]+)=([^`]+)`", committed.split("\n\n")[1])
    assert {os.path.basename(folder) for _, folder in studies} >= {"critical_batch", "convergence", "critical_batch_bn"}
    out = tmp_path / "answer_table.md"
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # the folders are named relative to the repository
        answer_table.write(studies, str(out))
    finally:
        os.chdir(cwd)
    assert out.read_text(encoding="utf-8") == committed
