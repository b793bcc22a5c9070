"""lbbench.report.edge_of_stability: eos.md rows, the ratio panels and the files, from fabricated
results with known answers (tests/_eos_fakes.py)."""

import json

from _eos_fakes import fake_results

from lbbench.report import edge_of_stability as report
from lbbench.study import edge_of_stability as study


def test_tables_hold_each_arm_with_its_verdict():
    summary = study.summarize(fake_results())
    text = report.markdown(summary)
    assert text.index("## Full-batch GD on MSE") < text.index("## Full-batch GD on cross-entropy")
    assert "| 0.2 | 10 | 100 | 5 | 0.8 | 1.05 | 0.95 | 1.5 | 9 | – | yes | no | 0.5 | completed |" in text
    assert "| 0.1 | 20 | 100 | 5 | 0.6 | 1 | 0.75 | 1.3 |" in text  # cross-entropy, eta 0.1
    assert "eta 0.2: yes" in text
    assert all(f"- {c}" in text for c in summary["conclusions"])


def test_ratio_panels_one_per_arm_mse_apart_from_cross_entropy():
    panels = report.ratio_panels(fake_results())
    titles = [p["title"] for p in panels]
    assert len(panels) == 5 and titles[1] == "full-batch GD, MSE: λ_max / (2/η)"
    assert [c[0] for c in panels[1]["curves"]] == ["η = 0.2", "η = 0.3"]
    assert [c[0] for c in panels[2]["curves"]] == ["B = 20", "B = 100", "B = 400 (full batch)"]  # no MSE run
    assert panels[1]["halves"] == [50.0]


def test_write_makes_every_file(tmp_path):
    results = fake_results()
    summary = study.summarize(results)
    report.write(str(tmp_path), results, summary)
    for name in ("eos.md", "eos_ratios.png", "eos_gd.png", "eos_gd_mse.png", "eos_summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "eos_summary.json").read_text())["conclusions"] == summary["conclusions"]
    del results["gd_mse_lr0p2"], results["gd_mse_lr0p3"]
    (tmp_path / "ce").mkdir()
    report.write(str(tmp_path / "ce"), results, study.summarize(results))
    assert not (tmp_path / "ce" / "eos_gd_mse.png").exists()  # cross-entropy only: no MSE figure
