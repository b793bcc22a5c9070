"""`pip install -e .` into a fresh virtual environment gives working console scripts, and the shipped
experiments run by name from any directory. No network: the new venv sees this environment's
packages through a .pth file (not --system-site-packages, which would expose the *base* Python's,
where setuptools may lack bdist_wheel and `wheel` may be missing), and the build uses them."""

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from _paths import ROOT


def _missing_build_tool() -> str | None:
    """Why an offline editable build is impossible here, or None. setuptools builds the editable
    wheel itself from 70.1 on; older setuptools needs the `wheel` package for bdist_wheel."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed"
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if major_minor >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return None
    return f"setuptools {version} (< 70.1) needs the wheel package to build, and it is not installed"


@pytest.mark.slow
def test_editable_install_in_a_fresh_venv_gives_console_scripts(tmp_path):
    missing = _missing_build_tool()
    if missing:
        pytest.skip(f"no offline build possible: {missing} (pip install 'setuptools>=70.1' or wheel)")
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "lbbench"), src / "lbbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (venv / site.split(str(venv) + os.sep, 1)[1] / "_parent_env.pth").write_text("\n".join(ours) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-e", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    for script in ("lbbench", "lbbench-sweep", "lbbench-report", "lbbench-bench", "lbbench-interpolate"):
        assert (venv / "bin" / script).exists(), script
    out = subprocess.run(
        [str(venv / "bin" / "lbbench"), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert out.returncode == 0 and out.stdout.startswith("usage: lbbench"), out.stderr[-2000:]
    out = subprocess.run(
        [str(venv / "bin" / "lbbench-bench"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("usage: lbbench-bench"), out.stderr[-2000:]
    where = subprocess.run(
        [str(py), "-c", "import lbbench; print(lbbench.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert where.stdout.strip() == str(src / "lbbench" / "__init__.py")  # the editable copy, not the repo
    out = subprocess.run(
        [str(venv / "bin" / "lbbench-report"), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 2 and "is not a directory" in out.stderr
    out = subprocess.run(
        [str(venv / "bin" / "lbbench-sweep"), "critical_batch", "--quick", "--dry_run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0 and "packing:" in out.stdout, out.stderr[-2000:]
