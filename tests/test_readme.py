"""The README's Python snippets run as written, against tiny runs made where they expect them."""

import contextlib
import io
import os
import re

import pytest

from lbbench.cli import train
from tests._paths import ROOT

TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=100", "--epochs=2", "--nosharpness"]


def readme_snippets() -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """runs/<the README's run name> and sweeps/goyal/ (two batch sizes × two warmups), tiny and quick."""
    root = tmp_path_factory.mktemp("readme")
    name = "mnist1d_mlp_adam_b4096_warmup_lr0.001_none_s0"
    assert train.main(["lbbench", *TINY, f"--workdir={root / 'runs'}", f"--run_name={name}"]) == 0
    for warm in (0, 1):
        for batch in (40, 100):
            flags = [f"--warmup_epochs={warm}", "--schedule=warmup", f"--batch_size={batch}", "--nosave_params"]
            assert train.main(["lbbench", *TINY, *flags, f"--workdir={root / 'sweeps' / 'goyal'}"]) == 0
    return root


def test_readme_has_the_snippets_this_test_runs():
    snippets = readme_snippets()
    assert len(snippets) >= 2 and any("load_run" in s for s in snippets) and any("results.load" in s for s in snippets)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_python_snippet_runs_as_written(index, workspace, monkeypatch, tmp_path):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("LBBENCH_CACHE", str(tmp_path / "cache"))
    before = sorted(os.listdir(workspace))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_snippets()[index], f"README.md python block {index}", "exec"), {})
    assert out.getvalue().strip()  # every snippet shows something
    assert sorted(os.listdir(workspace)) == before  # nothing written into the current directory
