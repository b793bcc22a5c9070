"""Tests run on the CPU backend; multi-device tests start their own processes (see _multidevice.py);
compiled programs are shared through one session-wide persistent compilation cache.

tests/slurm needs a running Slurm cluster (scripts/slurm_cluster.sh) and minutes of jobs: it is
collected only when named on the command line (`python -m pytest -q tests/slurm`), never by
`python -m pytest tests`.
"""

import atexit
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole session and every process it starts: the suite
# compiles the same tiny programs again and again (each Trainer jits its own closures, each CLI test
# is a new process). Set before jax is imported, so jax reads it; removed when the session ends.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="lbbench-tests-jax-")
    atexit.register(shutil.rmtree, _CACHE, True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["LBBENCH_COMPILE_CACHE"] = _CACHE  # what the commands would otherwise put in ~/.cache

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
