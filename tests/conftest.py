"""Tests run on the CPU backend; multi-device tests start their own processes (see _multidevice.py).

tests/slurm needs a running Slurm cluster (scripts/slurm_cluster.sh) and minutes of jobs: it is
collected only when named on the command line (`python -m pytest -q tests/slurm`), never by
`python -m pytest tests`.
"""

import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")

SLURM_TESTS = pathlib.Path(__file__).resolve().parent / "slurm"


def _names_slurm_tests(config) -> bool:
    for arg in config.args:
        path = pathlib.Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == SLURM_TESTS or SLURM_TESTS in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if collection_path.resolve() == SLURM_TESTS and not _names_slurm_tests(config):
        return True
    return None
