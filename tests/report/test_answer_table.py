"""report/answer_table.py: the three-column answer is each study's own verdicts, placed and never recomputed."""

import json

import pytest

from lbbench.report import answer_table


def _v(diff, verdict):
    return {"diff": diff, "low": diff - 0.005, "high": diff + 0.005, "verdict": verdict}


CB = {
    "summary": {
        "budgets": {"epochs": 10, "steps": 1001},
        "degradation": {
            "epochs": {"reference": 32, "comparisons": {"64": _v(0.004, "non-inferior"), "2048": _v(-0.05, "worse")}},
            "steps": {"reference": 32, "comparisons": {"64": _v(0.08, "better"), "2048": _v(0.27, "better")}},
        },
    }
}
CONV = {
    "summary": {
        "reference": 64,
        "budget": {"epochs": 30, "steps": 3000},
        "comparisons": {"2048": _v(-0.02, "inconclusive"), "2048 (regime adaptation)": _v(0.001, "non-inferior")},
    }
}


def _write(tmp_path, name, data):
    d = tmp_path / name
    d.mkdir()
    (d / "analysis.json").write_text(json.dumps(data))
    return str(d)


def test_every_cell_is_its_studys_verdict_and_missing_arms_are_dashes(tmp_path):
    out = tmp_path / "answer_table.md"
    rc = answer_table.main(
        [
            "--study",
            f"mlp={_write(tmp_path, 'cb', CB)}",
            "--study",
            f"mlp={_write(tmp_path, 'cv', CONV)}",
            "--out",
            str(out),
        ]
    )
    md = out.read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert rc == 0 and "| B | mlp: equal epochs | mlp: equal steps | mlp: at convergence |" in md
    assert rows["2048"].count("**") == 6 and "-0.0500 [-0.0550, -0.0450] **worse**" in rows["2048"]
    assert "+0.2700" in rows["2048"] and "**inconclusive**" in rows["2048"]
    assert rows["64"].endswith("| — |")  # the convergence study has no B = 64 arm against itself
    assert rows["2048 (regime adaptation)"].startswith("| 2048 (regime adaptation) | — | — |")
    assert "| reference | B = 32 | B = 32 | B = 64 |" in md
    # the conclusions are the columns' verdicts, in the studies' own sentence form
    assert "mlp: equal epochs (10 epochs), test accuracy against B = 32: non-inferior or better: 64; worse: 2048" in md
    assert "mlp: at convergence (max(30 epochs, 3,000 steps), warmup + cosine)" in md


def test_a_missing_or_foreign_analysis_is_a_one_line_error(tmp_path, capsys):
    out = str(tmp_path / "t.md")
    assert answer_table.main(["--study", f"x={tmp_path / 'none'}", "--out", out]) == 2
    assert answer_table.main(["--study", f"y={_write(tmp_path, 'other', {'summary': {'x': 1}})}", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("lbbench.report.answer_table: error:") for e in err)
    with pytest.raises(SystemExit) as e:
        answer_table.main(["--study", "no-equals-sign", "--out", out])
    assert e.value.code == 2
