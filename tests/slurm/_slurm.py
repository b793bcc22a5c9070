"""Submitting to, and waiting on, the Slurm cluster the tests in this folder run on."""

import os
import re
import shutil
import subprocess
import sys
import time

from _paths import ROOT

SWEEP_SBATCH = os.path.join(ROOT, "scripts", "slurm", "sweep_array.sbatch")
DISTRIBUTED_SBATCH = os.path.join(ROOT, "scripts", "slurm", "distributed.sbatch")
ENV = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
    "LBBENCH_PYTHON": sys.executable,
}
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL")


def why_not_up() -> str | None:
    """None when `sinfo` answers with a usable node, else why the Slurm tests are skipped."""
    if shutil.which("sinfo") is None:
        return "Slurm is not installed: run scripts/slurm_cluster.sh (as root) first"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo does not answer ({e}): run scripts/slurm_cluster.sh first"
    states = p.stdout.split()
    if p.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"Slurm is not up (sinfo: {(p.stdout + p.stderr).strip()[:200]!r}): run scripts/slurm_cluster.sh first"
    return None


def sbatch(*args) -> str:
    """Submit from the repository root with the test environment; the job id."""
    p = subprocess.run(["sbatch", "--parsable", *map(str, args)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split(";")[0]


def tasks(job: str) -> dict:
    """{array task id (0 for a plain job): {JobState, ExitCode, Restarts, ...}} from scontrol."""
    p = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30)
    out = {}
    for line in p.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        task = fields.get("ArrayTaskId", "0")
        out[int(task) if task.isdigit() else task] = fields
    return out


def wait_done(job: str, timeout_s: float = 600) -> dict:
    """Wait until every task of the job has ended (a requeued task is waited for again)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        now = tasks(job)
        if now and all(t.get("JobState") in DONE for t in now.values()):
            return now
        time.sleep(1)
    subprocess.run(["scancel", job])
    raise AssertionError(f"job {job} did not end within {timeout_s:g} s: {tasks(job)}")


def cancel(job: str) -> None:
    subprocess.run(["scancel", job], capture_output=True)
