"""Report aggregation against numpy on fabricated result.json files."""

import csv
import json
import os
import sys

import numpy as np
import pytest

from lbbench.cli import report as report_cli
from lbbench.config import Config
from lbbench.report import data as report_data
from lbbench.report.write import write_report


def _fake_result(run_name, batch_size, optimizer, seed, acc, status="completed"):
    cfg = Config(batch_size=batch_size, optimizer=optimizer, seed=seed, run_name=run_name).to_dict()
    final = {
        "train_accuracy": acc + 0.05,
        "test_accuracy": acc,
        "train_loss": 1 - acc,
        "test_loss": 1.1 - acc,
        "generalization_gap": 0.05,
        "loss_gap": 0.1,
    }
    return {
        "status": status,
        "config": cfg,
        "final": final,
        "timing": {"total_s": 1.0 + seed, "steps": 10},
        "history": {"epoch": [1], "test_accuracy": [acc]},
        "sharpness": {"lambda_max": 10 * acc, "hessian_trace": 100 * acc, "epsilon_sharpness": {"full_0.001": acc}},
        "noise_scale": {"b_simple": 500.0 + seed},
    }


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
    _, results, missing = report_data.load_sweep(str(path))
    assert len(results) == 13 and not missing
    keys = report_data.varying_keys(results)
    assert keys == ["batch_size", "optimizer"]
    groups = report_data.aggregate(results, keys)
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
    assert report_data.mean_std([None]) == {"mean": None, "std": None, "n": 0, "values": [], "low": None, "high": None}
    assert report_data.mean_std([2.0]) == {"mean": 2.0, "std": 0.0, "n": 1, "values": [2.0], "low": None, "high": None}


def test_intervals_are_the_study_answers_t_interval():
    from lbbench.study.bootstrap import mean_ci

    values = [0.91, 0.93, 0.96, 0.92]
    stat = report_data.mean_std(values, (0.0, 1.0))
    ci = mean_ci(values, bounds=(0.0, 1.0))
    assert (stat["low"], stat["high"]) == (ci["low"], ci["high"]) and stat["low"] < stat["mean"] < stat["high"]


def test_write_report_outputs(sweep_dir):
    path, _ = sweep_dir
    write_report(str(path))
    text = (path / "report.md").read_text()
    assert "| batch_size | optimizer | n | left out |" in text and "bad: diverged" in text
    with open(path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and "eps_sharpness_full_0.001" in rows[0] and "b_simple" in rows[0]
    assert (path / "test_accuracy_vs_batch.png").exists()
    assert (path / "lambda_max_vs_batch.png").exists()
    assert report_cli.main(["report", str(path / "nope")]) == 2


# ---------------------------------------------------------------------------- what a researcher reads


def _goyal_like(tmp_path, quick=False):
    """Goyal-style sweep: 2 arms × 3 batch sizes × 2 seeds. B=4096 without warmup never learns (at
    chance), one seed of B=1024 without warmup neither; B=4096 with warmup has one good seed and one
    poor one (0.387: learned, badly); ε-sharpness and trace recorded."""
    sweep = tmp_path / "goyal"
    grid = []
    accs = {
        (0.0, 256): (0.94, 0.942),
        (3.0, 256): (0.936, 0.937),
        (0.0, 1024): (0.940, 0.11),
        (3.0, 1024): (0.935, 0.935),
        (0.0, 4096): (0.098, 0.097),
        (3.0, 4096): (0.906, 0.387),
    }
    for (warm, b), pair in accs.items():
        for seed, acc in enumerate(pair):
            name = f"w{warm:g}_b{b}_s{seed}"
            grid.append({"batch_size": b, "warmup_epochs": warm, "seed": seed, "run_name": name})
            r = _fake_result(name, b, "momentum", seed, acc)
            r["config"].update(warmup_epochs=warm, model="mlp")
            r["dataset"] = {"name": "mnist1d", "num_classes": 10}
            r["final"]["generalization_gap"] = 0.003 if acc < 0.15 else 0.05
            r["sharpness"].update(
                hessian_trace_stderr=2.5, epsilon_sharpness={"full_0.001": 100 * acc + b / 100, "subspace_0.001": acc}
            )
            os.makedirs(sweep / name)
            (sweep / name / "result.json").write_text(json.dumps(r))
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "experiment": "goyal",
                "quick": quick,
                "grid": grid,
                "command": f"{sys.executable} -m lbbench.sweep experiments/goyal.py --workdir {tmp_path}/sweeps",
            }
        )
    )
    (sweep / "analysis.json").write_text(
        json.dumps(
            {
                "summary": {
                    "mlp": {"sb_test_accuracy": 0.960080003, "lb_test_accuracy": 0.91251999, "lb_lambda_max": 7.2671319}
                },
                "interpolation": [],
            }
        )
    )
    return sweep


def test_never_learned_runs_are_flagged_and_kept_out_of_means(tmp_path):
    sweep = _goyal_like(tmp_path)
    _, results, _ = report_data.load_sweep(str(sweep))
    groups = {
        (g["warmup_epochs"], g["batch_size"]): g
        for g in report_data.aggregate(results, ["batch_size", "warmup_epochs"])
    }
    one = groups[(0.0, 1024)]
    assert one["statuses"] == {"completed": 1, "never learned": 1}
    assert one["test_accuracy"]["n"] == 1 and one["test_accuracy"]["mean"] == pytest.approx(0.940)
    cold = groups[(0.0, 4096)]
    assert cold["test_accuracy"]["n"] == 0 and cold["generalization_gap"]["mean"] is None  # no fake "no gap"
    text = write_report(str(sweep)) and (sweep / "report.md").read_text()
    assert "- w0_b1024_s1: never learned (test accuracy 0.11, chance 0.1)" in text
    row = next(l for l in text.splitlines() if l.startswith("| 1024 | 0 |"))
    assert "| 1 | 1 never learned | 0.94 |" in row
    row = next(l for l in text.splitlines() if l.startswith("| 4096 | 3 |"))
    assert "| 2 | 0 | 0.6465 (seeds 0.906, 0.387) |" in row  # the two seeds, not an interval
    row = next(l for l in text.splitlines() if l.startswith("| 256 | 0 |"))
    assert "0.941 (seeds 0.94, 0.942)" in row  # n < 3: the seeds, not a spread


def test_report_has_epsilon_sharpness_trace_stderr_header_and_no_paths(tmp_path):
    sweep = _goyal_like(tmp_path)
    write_report(str(sweep))
    text = (sweep / "report.md").read_text()
    assert "ε-sharpness full, ε=0.001" in text and "ε-sharpness subspace, ε=0.001" in text
    assert "Hessian trace ± stderr" in text and "± 2.5" in text
    assert "- held fixed: `dataset=mnist1d`, `model=mlp`, `optimizer=momentum`" in text
    assert "- compared: batch_size × warmup_epochs" in text
    assert str(tmp_path) not in text and sys.executable not in text
    assert "`python -m lbbench.sweep experiments/goyal.py --workdir …/sweeps`" in text
    assert "QUICK" not in text and "## Analysis" in text and "```json" not in text
    assert "| mlp | 0.9601 | 0.9125 | 7.267 |" in text  # analysis as a rounded table
    assert (sweep / "eps_sharpness_vs_batch.png").exists() and (sweep / "hessian_trace_vs_batch.png").exists()
    assert not (sweep / "report_tb").exists()  # nothing TensorBoard would list among the runs
    with open(sweep / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"warmup_epochs", "batch_size", "never_learned", "eps_sharpness_full_0.001"} <= set(rows[0])
    assert sum(r["never_learned"] == "True" for r in rows) == 3


def test_quick_runs_say_so_in_the_title(tmp_path):
    sweep = _goyal_like(tmp_path, quick=True)
    write_report(str(sweep))
    assert (sweep / "report.md").read_text().splitlines()[0].startswith("# goyal — QUICK smoke run")


def test_tb_logdir_inside_the_sweep_is_refused(tmp_path):
    sweep = _goyal_like(tmp_path)
    assert report_cli.main(["report", str(sweep), "--tb_logdir", str(sweep / "tb")]) == 2
    assert report_cli.main(["report", str(sweep), "--tb_logdir", str(tmp_path / "goyal-report-tb")]) == 0
    assert list((tmp_path / "goyal-report-tb").glob("events.out.tfevents.*"))


def test_results_load_gives_a_dataframe_of_every_run(tmp_path):
    from lbbench.runs import reader as results

    _goyal_like(tmp_path)
    df = results.load(str(tmp_path))
    assert len(df) == 12 and df["never_learned"].sum() == 3
    assert {"run_dir", "batch_size", "warmup_epochs", "test_accuracy", "eps_sharpness_full_0.001"} <= set(df.columns)
    learned = df[~df.never_learned]
    assert learned.groupby("batch_size").size().to_dict() == {256: 4, 1024: 3, 4096: 2}
    assert df.loc[df.run_name == "w0_b256_s0", "run_dir"].item() == os.path.join("goyal", "w0_b256_s0")
