"""Results written by an earlier lbbench (tests/fixtures/v0, made by the code before the package layout
moved) still load, report and resume: load_run, the DataFrame loader, the report, and a sweep rerun
that finds every point finished and trains nothing."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from _paths import ROOT

from lbbench.results import load_run
from lbbench.runs import reader as results

V0 = os.path.join(ROOT, "tests", "fixtures", "v0")
RUNS = [
    "runs/bn_tracked",
    "v0_sweep/b50_lr0.001",
    "v0_sweep/b50_lr0.01",
    "v0_sweep/b200_lr0.001",
    "v0_sweep/b200_lr0.01",
]


def test_old_runs_load_with_their_parameters():
    for rel in RUNS:
        cfg, model, variables = load_run(os.path.join(V0, rel))
        x = np.zeros((3, 20), np.float32)
        logits = model.apply(variables, x, train=False)
        assert logits.shape == (3, 2) and np.all(np.isfinite(logits)), rel
        assert cfg.dataset == "random"


def test_old_runs_load_as_a_dataframe():
    df = results.load(V0)
    assert sorted(df.run_dir) == sorted(RUNS)
    assert df.status.eq("completed").all()
    assert df.lambda_max.notna().all() and df.b_simple.notna().all()


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}


@pytest.mark.slow
def test_old_sweep_reports_and_resumes_without_training(tmp_path):
    work = tmp_path / "w"
    shutil.copytree(os.path.join(V0, "v0_sweep"), work / "v0_sweep")
    before = {
        p: os.stat(work / "v0_sweep" / p / "result.json").st_mtime_ns
        for p in os.listdir(work / "v0_sweep")
        if os.path.isdir(work / "v0_sweep" / p)
    }
    rep = subprocess.run(
        [sys.executable, "-m", "lbbench.report", str(work / "v0_sweep")],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (work / "v0_sweep" / "report.md").exists()

    def sweep(*extra):
        return subprocess.run(
            [sys.executable, "-m", "lbbench.sweep", os.path.join(V0, "v0_sweep.py"), "--workdir", str(work), *extra],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=300,
        )

    # The old runs held out no validation set; today's default holds out 5,000 examples, so resuming with
    # the defaults is a changed config: exit 2, named, nothing retrained or deleted.
    changed = sweep()
    assert changed.returncode == 2 and "--rerun_changed" in changed.stderr and "b50_lr0.001" in changed.stderr
    # Asked for what the old runs did (no validation set), the sweep recognises them as finished.
    same = sweep("--set", "validation_examples=0")
    assert same.returncode == 0, same.stdout[-2000:] + same.stderr[-2000:]
    assert "4 of 4 runs already finished" in same.stdout
    after = {p: os.stat(work / "v0_sweep" / p / "result.json").st_mtime_ns for p in before}
    assert after == before  # nothing retrained
