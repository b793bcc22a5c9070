"""Where a result came from: code version, command line, start time, host, and the software and
devices it ran on. Stored in result.json (`provenance`, `environment`).

A result is only reproducible if it says which code made it and how it was started. The git commit
is that of the repository lbbench's source lives in (None when installed from a wheel or when git
is missing); `git_dirty` says whether the source had uncommitted changes.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys

import flax
import jax
import numpy as np
import optax

import lbbench


def _git(*args: str) -> str | None:
    here = os.path.dirname(os.path.abspath(lbbench.__file__))
    try:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def command_line(argv: list[str]) -> str:
    """The command as a user would retype it: the interpreter and script path become `python -m ...`."""
    if not argv:
        return ""
    head = argv[0]
    base = os.path.basename(head)
    if base.endswith(".py") or base == "__main__.py":
        module = "lbbench." + os.path.splitext(base)[0] if "lbbench" in head else base
        head = f"python -m {module}"
    else:
        head = base  # a console script (lbbench, lbbench-sweep): no machine path
    return " ".join([head, *(shlex.quote(a) for a in argv[1:])])


def provenance(argv: list[str] | None = None) -> dict:
    """{"git_commit", "git_dirty", "command", "argv", "started" (ISO 8601, UTC), "host", "lbbench_version"}."""
    argv = list(sys.argv if argv is None else argv)
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "command": command_line(argv),
        "argv": argv[1:],
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "lbbench_version": lbbench.__version__,
    }


def environment() -> dict:
    """Library versions, Python, devices and host CPUs of this process."""
    devices = jax.devices()
    return {
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "host_cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
