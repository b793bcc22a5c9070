"""`pip install -e .` into a fresh virtual environment gives working console scripts (no network:
the venv sees the installed dependencies and the build uses the installed setuptools)."""

import os
import shutil
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_editable_install_in_a_fresh_venv_gives_console_scripts(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "lbbench"), src / "lbbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-e", str(src)], capture_output=True, text=True, env=env, timeout=120)
    assert pip.returncode == 0, pip.stderr[-2000:]
    for script in ("lbbench", "lbbench-sweep", "lbbench-report", "lbbench-bench"):
        assert (venv / "bin" / script).exists(), script
    out = subprocess.run([str(venv / "bin" / "lbbench"), "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: lbbench"), out.stderr[-2000:]
    out = subprocess.run([str(venv / "bin" / "lbbench-bench"), "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: lbbench-bench"), out.stderr[-2000:]
    where = subprocess.run([str(py), "-c", "import lbbench; print(lbbench.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.stdout.strip() == str(src / "lbbench" / "__init__.py")  # the editable copy, not the repo
    out = subprocess.run([str(venv / "bin" / "lbbench-report"), str(tmp_path / "nope")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "is not a directory" in out.stderr
