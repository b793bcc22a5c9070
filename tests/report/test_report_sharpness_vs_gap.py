"""`python -m lbbench.report.sharpness_vs_gap`: the table, JSON and plot of τ per measure; exit 2 on bad input."""

import json

import pytest

from lbbench.report import sharpness_vs_gap


def test_the_command_writes_one_table_per_workload_and_its_plot_and_refuses_a_missing_folder(tmp_path, capsys):
    study = tmp_path / "study"
    for model, sign in (("mlp", 1), ("bn_mlp", -1)):  # λ_max ranks the gap on one model, inversely on the other
        for i, lam in enumerate((1.0, 5.0, 20.0, 40.0)):
            (study / f"{model}{i}").mkdir(parents=True)
            result = {
                "status": "completed",
                "config": {"batch_size": 32 * 4**i, "model": model},
                "final": {"generalization_gap": 0.05 + sign * 0.01 * i, "test_accuracy": 0.9},
                "sharpness": {"lambda_max": lam},
            }
            (study / f"{model}{i}" / "result.json").write_text(json.dumps(result))
    out = tmp_path / "out"
    assert sharpness_vs_gap.main(["x", str(study), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sharpness_vs_gap.json",
        "sharpness_vs_gap.md",
        "sharpness_vs_gap.png",
    ]
    data = json.loads((out / "sharpness_vs_gap.json").read_text())
    assert data["runs"] == 8 and list(data["workloads"]) == ["bn_mlp", "mlp"]  # never pooled across models
    for model, tau in (("mlp", 1.0), ("bn_mlp", -1.0)):
        first = data["workloads"][model]["table"][0]
        assert first["measure"] == "lambda_max" and first["tau"] == pytest.approx(tau) and first["n"] == 4
    md = (out / "sharpness_vs_gap.md").read_text()
    assert "## Workload `mlp`: 4 runs" in md and "| lambda_max | generalization_gap | 4 | 1 |" in md
    assert "| lambda_max | generalization_gap | 4 | -1 |" in md
    assert sharpness_vs_gap.main(["x", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


def test_a_saved_json_stands_in_for_its_sweep_folders(tmp_path):
    """The JSON keeps every run's row, so a later analysis can add a study without the earlier folders."""
    study = tmp_path / "study"
    for i, (lam, gap) in enumerate(((1.0, 0.01), (5.0, 0.03), (20.0, 0.02), (40.0, 0.08))):
        (study / f"r{i}").mkdir(parents=True)
        result = {
            "status": "completed",
            "config": {"batch_size": 32 * 4**i, "model": "mlp", "hidden": [8, 8]},
            "final": {"generalization_gap": gap, "test_accuracy": 0.9},
            "sharpness": {"lambda_max": lam},
        }
        (study / f"r{i}" / "result.json").write_text(json.dumps(result))
    first, again = tmp_path / "first", tmp_path / "again"
    assert sharpness_vs_gap.main(["x", str(study), "--out", str(first)]) == 0
    assert sharpness_vs_gap.main(["x", str(first / "sharpness_vs_gap.json"), "--out", str(again)]) == 0
    a, b = (json.loads((d / "sharpness_vs_gap.json").read_text()) for d in (first, again))
    assert (
        a == b
        and "from: study;" in (again / "sharpness_vs_gap.md").read_text()
        and len(a["rows"]) == 4
        and a["workloads"]["mlp"]["table"][0]["tau"] == pytest.approx(2 / 3)
    )
    (tmp_path / "old.json").write_text(json.dumps({"runs": 4, "workloads": {}}))  # an older file without rows
    assert sharpness_vs_gap.main(["x", str(tmp_path / "old.json"), "--out", str(again)]) == 2
