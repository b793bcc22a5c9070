"""lbbench on a real Slurm cluster: a sweep as a job array, a 2-process jax.distributed training
under srun, and a requeued (preempted) array task.

Needs a running cluster; skipped with the reason otherwise. Run as README says:
`scripts/slurm_cluster.sh && JAX_PLATFORMS=cpu python -m pytest -q tests/slurm`
(the normal `pytest tests` never collects this folder, see tests/conftest.py).
"""

import glob
import json
import os
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from _paths import ROOT
from _slurm import DISTRIBUTED_SBATCH, ENV, SWEEP_SBATCH, cancel, sbatch, wait_done, why_not_up

from lbbench.runs.reader import load_run

WHY_NOT = why_not_up()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))

EXPERIMENT = textwrap.dedent("""
    from lbbench.config import Config
    NAME = "t"
    def base_config(quick):
        return Config(dataset="random", model="tiny_mlp", optimizer="adam", epochs={epochs}, batch_size=100,
                      sharpness=False, save_params=True, noise_scale_groups=1, train_eval_examples=200)
    def grid(quick):
        return [{{"seed": s, "run_name": f"run{{s}}"}} for s in range({points})]
""")
TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=100", "--noise_scale_groups=1"]
TINY += ["--train_eval_examples=200", "--nosharpness", "--save_params", "--epochs=2", "--run_name=r"]


def experiment(tmp_path, points, epochs):
    path = tmp_path / "exp.py"
    path.write_text(EXPERIMENT.format(points=points, epochs=epochs))
    return str(path)


def submit_sweep(tmp_path, exp, work):
    out = tmp_path / "slurm-%A_%a.out"
    return sbatch("--array=0-1", f"--output={out}", SWEEP_SBATCH, exp, "--workdir", work, "--max_trials_per_program=1")


def task_log(tmp_path, job, task) -> str:
    path = tmp_path / f"slurm-{job}_{task}.out"
    return path.read_text() if path.exists() else ""


def trained(log):
    """Run names a sweep process reported finishing ("[i/n] name: status ...")."""
    return [line.split("] ", 1)[1].split(":")[0] for line in log.splitlines() if line.startswith("[")]


def check_sweep_folder(sweep_dir, points, epochs):
    """Every point completed exactly once; nothing hidden (locks, staging, failed attempts) left."""
    for s in range(points):
        d = sweep_dir / f"run{s}"
        assert json.loads((d / "result.json").read_text())["status"] == "completed"
        assert len(glob.glob(str(d / "events.out.tfevents.*"))) == 1
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if r["record"] == "epoch"] == [10 * (e + 1) for e in range(epochs)]
    assert not [e for e in os.listdir(sweep_dir) if e.startswith(".")]
    assert len(glob.glob(str(sweep_dir / "**" / "report.md"), recursive=True)) == 1


def params(run_dir):
    return jax.tree_util.tree_leaves(load_run(str(run_dir))[2])


def assert_same_run(a, b, atol):
    """Two run folders hold the same training: history, final metrics and parameters."""
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    assert ra["history"].keys() == rb["history"].keys()
    for k, v in ra["history"].items():
        np.testing.assert_allclose(np.array(v, float), np.array(rb["history"][k], float), atol=atol, err_msg=k)
    for k, v in ra["final"].items():
        np.testing.assert_allclose(v, rb["final"][k], atol=atol, err_msg=k)
    for x, y in zip(params(a), params(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


def uninterrupted_sweep(exp, work):
    cmd = [sys.executable, "-m", "lbbench.sweep", exp, "--workdir", str(work), "--max_trials_per_program=1"]
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]


def test_job_array_sweep_trains_every_point_exactly_once(tmp_path):
    exp, work = experiment(tmp_path, points=4, epochs=2), tmp_path / "work"
    job = submit_sweep(tmp_path, exp, work)
    try:
        ended = wait_done(job)
    finally:
        cancel(job)
    logs = [task_log(tmp_path, job, t) for t in (0, 1)]
    assert {t: ended[t]["JobState"] for t in (0, 1)} == {0: "COMPLETED", 1: "COMPLETED"}, logs
    assert all(f"lbbench sweep task {t} of job {job}" in logs[t] for t in (0, 1))
    assert sorted(trained(logs[0]) + trained(logs[1])) == [f"run{s}" for s in range(4)]
    check_sweep_folder(work / "t", points=4, epochs=2)


def test_srun_two_process_training_equals_one_process_run(tmp_path):
    job = sbatch(f"--output={tmp_path / 'slurm-%j.out'}", DISTRIBUTED_SBATCH, *TINY, f"--workdir={tmp_path / 'two'}")
    try:
        ended = wait_done(job)
    finally:
        cancel(job)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    assert ended[0]["JobState"] == "COMPLETED", log
    one = [sys.executable, "-m", "lbbench.main", *TINY, f"--workdir={tmp_path / 'one'}"]
    p = subprocess.run(one, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "r" / "result.json").read_text())
    assert (two["environment"]["process_count"], two["environment"]["device_count"]) == (2, 2)
    assert "2 cpu device(s)" in log and log.count("lbbench: r done") == 1  # process 0 reports, alone
    assert_same_run(tmp_path / "one" / "r", tmp_path / "two" / "r", atol=1e-5)


def task_pid(tmp_path, job, task) -> int | None:
    for line in task_log(tmp_path, job, task).splitlines():
        if line.startswith(f"lbbench sweep task {task} of job {job} (restart 0)"):
            return int(line.rsplit("pid ", 1)[1])
    return None


def point_in_training(sweep_dir, pid) -> str | None:
    """The point whose staging folder process `pid` is writing (`.run2.new-<pid>-xxxxxx`), if any."""
    try:
        entries = os.listdir(sweep_dir)
    except FileNotFoundError:
        return None
    return next((e[1:].split(".new-")[0] for e in entries if f".new-{pid}-" in e), None)


def requeue_mid_point(tmp_path, job, sweep_dir, timeout_s=300) -> tuple[int, str]:
    """Once an array task is training a point, `scontrol requeue` it; (that task, its point)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for task in (0, 1):
            pid = task_pid(tmp_path, job, task)
            point = pid and point_in_training(sweep_dir, pid)
            if point:
                subprocess.run(["scontrol", "requeue", f"{job}_{task}"], check=True, capture_output=True)
                return task, point
        time.sleep(0.1)
    raise AssertionError(f"no task trained a point: {task_log(tmp_path, job, 0)[-2000:]}")


def test_requeued_array_task_reruns_its_point_to_the_uninterrupted_result(tmp_path):
    exp, work = experiment(tmp_path, points=4, epochs=6), tmp_path / "work"
    job = submit_sweep(tmp_path, exp, work)
    try:
        task, killed = requeue_mid_point(tmp_path, job, work / "t")
        ended = wait_done(job)
    finally:
        cancel(job)
    log = task_log(tmp_path, job, task)
    first, _, again = log.partition(f"lbbench sweep task {task} of job {job} (restart 1)")
    assert int(ended[task]["Restarts"]) == 1 and again, log
    assert "terminated (SIGTERM)" in first and killed not in trained(first), log  # stopped mid-point
    assert ended[task]["JobState"] == "COMPLETED", log
    # every point completed exactly once over all attempts; the killed one after the restart or by the other task
    assert sorted(trained(log) + trained(task_log(tmp_path, job, 1 - task))) == [f"run{s}" for s in range(4)]
    check_sweep_folder(work / "t", points=4, epochs=6)
    assert "0 failed); 0 missing" in (work / "t" / "report.md").read_text()  # the last report is whole
    uninterrupted_sweep(exp, tmp_path / "alone")
    for s in range(4):
        assert_same_run(work / "t" / f"run{s}", tmp_path / "alone" / "t" / f"run{s}", atol=1e-6)
