"""`python -m lbbench.report.sharpness_vs_gap`: the table, JSON and plot of τ per measure; exit 2 on bad input."""

import json

import pytest

from lbbench.report import sharpness_vs_gap


def test_the_command_writes_its_table_and_plot_and_refuses_a_missing_folder(tmp_path, capsys):
    study = tmp_path / "study"
    for i, lam in enumerate((1.0, 5.0, 20.0, 40.0)):
        (study / f"r{i}").mkdir(parents=True)
        result = {
            "status": "completed",
            "config": {"batch_size": 32 * 4**i},
            "final": {"generalization_gap": 0.01 * i, "test_accuracy": 0.9},
            "sharpness": {"lambda_max": lam},
        }
        (study / f"r{i}" / "result.json").write_text(json.dumps(result))
    out = tmp_path / "out"
    assert sharpness_vs_gap.main(["x", str(study), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sharpness_vs_gap.json",
        "sharpness_vs_gap.md",
        "sharpness_vs_gap.png",
    ]
    table = json.loads((out / "sharpness_vs_gap.json").read_text())["table"]
    assert table[0]["measure"] == "lambda_max" and table[0]["tau"] == pytest.approx(1.0)
    assert "| lambda_max | generalization_gap | 4 | 1 |" in (out / "sharpness_vs_gap.md").read_text()
    assert sharpness_vs_gap.main(["x", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
