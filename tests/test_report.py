"""Report aggregation against numpy on fabricated result.json files."""

import csv
import json
import os

import numpy as np
import pytest

from lbbench import report
from lbbench.config import Config


def _fake_result(run_name, batch_size, optimizer, seed, acc, status="completed"):
    cfg = Config(batch_size=batch_size, optimizer=optimizer, seed=seed, run_name=run_name).to_dict()
    final = {"train_accuracy": acc + 0.05, "test_accuracy": acc, "train_loss": 1 - acc, "test_loss": 1.1 - acc,
             "generalization_gap": 0.05, "loss_gap": 0.1}
    return {"status": status, "config": cfg, "final": final,
            "timing": {"total_s": 1.0 + seed, "steps": 10}, "history": {"epoch": [1], "test_accuracy": [acc]},
            "sharpness": {"lambda_max": 10 * acc, "hessian_trace": 100 * acc,
                          "epsilon_sharpness": {"full_0.001": acc}},
            "noise_scale": {"b_simple": 500.0 + seed}}


@pytest.fixture()
def sweep_dir(tmp_path):
    rng = np.random.default_rng(0)
    accs = {}
    for opt in ("adam", "lars"):
        for b in (256, 4096):
            accs[(opt, b)] = rng.random(3)
            for s, a in enumerate(accs[(opt, b)]):
                name = f"{opt}_b{b}_s{s}"
                os.makedirs(tmp_path / name)
                with open(tmp_path / name / "result.json", "w") as f:
                    json.dump(_fake_result(name, b, opt, s, float(a)), f)
    os.makedirs(tmp_path / "bad")  # a diverged run is counted but not averaged in
    with open(tmp_path / "bad" / "result.json", "w") as f:
        json.dump(_fake_result("bad", 256, "adam", 9, 0.0, status="diverged"), f)
    return tmp_path, accs


def test_mean_std_matches_numpy(sweep_dir):
    path, accs = sweep_dir
    _, results, missing = report.load_sweep(str(path))
    assert len(results) == 13 and not missing
    keys = report.varying_keys(results)
    assert keys == ["batch_size", "optimizer"]
    groups = report.aggregate(results, keys)
    assert len(groups) == 4
    for g in groups:
        a = accs[(g["optimizer"], g["batch_size"])]
        assert g["test_accuracy"]["n"] == 3
        np.testing.assert_allclose(g["test_accuracy"]["mean"], np.mean(a), rtol=1e-12)
        np.testing.assert_allclose(g["test_accuracy"]["std"], np.std(a, ddof=1), rtol=1e-12)
        np.testing.assert_allclose(g["lambda_max"]["mean"], np.mean(10 * a), rtol=1e-12)
        if (g["optimizer"], g["batch_size"]) == ("adam", 256):
            assert g["statuses"] == {"completed": 3, "diverged": 1}


def test_mean_std_edge_cases():
    assert report.mean_std([None]) == {"mean": None, "std": None, "n": 0}
    assert report.mean_std([2.0]) == {"mean": 2.0, "std": 0.0, "n": 1}


def test_write_report_outputs(sweep_dir):
    path, _ = sweep_dir
    report.write_report(str(path))
    text = (path / "report.md").read_text()
    assert "| batch_size | optimizer |" in text and "bad: diverged" in text
    with open(path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and "eps_sharpness_full_0.001" in rows[0] and "b_simple" in rows[0]
    assert (path / "test_accuracy_vs_batch.png").exists()
    assert (path / "lambda_max_vs_batch.png").exists()
    assert report.main(["report", str(path / "nope")]) == 2
