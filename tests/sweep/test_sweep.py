"""Sweep runner: every experiment's quick mode end to end, bad input, and a real SIGKILL + resume."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _paths import ROOT

from lbbench.cli import sweep as sweep_cli
from lbbench.sweep import experiment_file

EXPERIMENTS = (
    "seed_article",
    "keskar",
    "goyal",
    "lars",
    "hoffer",
    "critical_batch",
    "critical_batch_bn",
    "remedies",
    "edge_of_stability",
    "halving_check",
    "local_critical_batch",
    "convergence",
)
# files each study-layer experiment's analyze() writes (tuned, with follow-ups)
STUDY_FILES = {
    "goyal": ("answer.md", "goyal.json", "goyal.png"),
    "lars": ("answer.md", "lars.json", "lars.png"),
    "hoffer": ("answer.md", "hoffer.json", "hoffer.png"),
    "critical_batch": (
        "answer.md",
        "critical_batch.json",
        "steps_to_target_0.12.png",
        "accuracy_vs_batch.png",
        "halving.json",
        "halving.md",
    ),
    "critical_batch_bn": ("answer.md", "critical_batch.json", "accuracy_vs_batch.png", "halving.md"),
    "remedies": ("answer.md", "remedies.json", "remedies.png"),
    "convergence": ("answer.md", "convergence.json", "accuracy_vs_batch.png", "halving.md"),
    "local_critical_batch": ("answer.md", "local_critical_batch.json", "local_critical_batch.png"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quick_mode_produces_report(name, tmp_path):
    path = name
    rc = sweep_cli.main(["sweep", path, "--quick", "--workdir", str(tmp_path)])
    assert rc == 0
    module = experiment_file.load_experiment(path)
    sweep_dir = tmp_path / f"{module.NAME}-quick"
    assert (sweep_dir / "report.md").exists() and (sweep_dir / "runs.csv").exists()
    assert (sweep_dir / "sweep.json").exists()
    assert glob.glob(str(sweep_dir / "*.png"))
    assert not os.path.exists(sweep_dir / "report_tb")  # report figures stay out of the runs' logdir
    with open(sweep_dir / "sweep.json") as f:
        followup = json.load(f)["followup"]
    assert bool(followup) == hasattr(module, "followup")  # the study experiments re-run their winners
    with open(sweep_dir / "runs.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + len(module.grid(True)) + len(followup)
    if name == "keskar":
        assert glob.glob(str(sweep_dir / "interpolation_*.json"))
        assert glob.glob(str(sweep_dir / "interpolation_*.png"))
    for f in STUDY_FILES.get(name, ()):
        assert (sweep_dir / f).exists(), f
    if name in STUDY_FILES:
        with open(sweep_dir / "analysis.json") as f:
            assert "error" not in json.load(f)


def test_retired_experiment_says_where_its_question_went(tmp_path, capsys):
    path = "shallue"
    assert sweep_cli.main(["sweep", path, "--quick", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is retired" in err[0] and "experiments/critical_batch.py" in err[0]
    assert not os.listdir(tmp_path)


def test_bad_arguments_exit_2_one_line(tmp_path, capsys):
    assert sweep_cli.main(["sweep", str(tmp_path / "missing.py")]) == 2
    assert sweep_cli.main(["sweep", "goyal", "--bogus"]) == 2
    bad = tmp_path / "bad.py"
    bad.write_text(
        "NAME = 'bad'\nfrom lbbench.config import Config\n"
        "def base_config(q): return Config()\n"
        "def grid(q): return [{'run_name': 'a', 'batch_size': -1}]\n"
    )
    assert sweep_cli.main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("lbbench.sweep: error:") for line in err)


TINY_EXPERIMENT = textwrap.dedent("""
    from lbbench.config import Config
    NAME = "killtest"
    def base_config(quick):
        return Config(dataset="random", model="tiny_mlp", optimizer="adam", epochs=3, batch_size=50,
                      sharpness=False, save_params=False, noise_scale_groups=1)
    def grid(quick):
        return [{"seed": s, "run_name": f"run{s}"} for s in range(4)]
""")


def _results(sweep_dir):
    return sorted(glob.glob(os.path.join(sweep_dir, "*", "result.json")))


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_without_repeats(tmp_path):
    exp = tmp_path / "killtest.py"
    exp.write_text(TINY_EXPERIMENT)
    work = tmp_path / "work"
    sweep_dir = str(work / "killtest")
    # one trial per program, so runs finish one by one and the kill can land between them
    cmd = [sys.executable, "-m", "lbbench.sweep", str(exp), "--workdir", str(work), "--max_trials_per_program", "1"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not _results(sweep_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _results(sweep_dir)
    assert 1 <= len(finished) < 4, "the kill must land after the first run and before the last"
    before = {p: os.stat(p).st_mtime_ns for p in finished}

    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(finished)} of 4 runs already finished" in out.stdout
    for p, mtime in before.items():
        assert os.stat(p).st_mtime_ns == mtime, f"{p} was re-run"
    run_dirs = sorted(d for d in os.listdir(sweep_dir) if os.path.isdir(os.path.join(sweep_dir, d)))
    assert run_dirs == ["run0", "run1", "run2", "run3"]
    for name in ("run0", "run1", "run2", "run3"):
        with open(os.path.join(sweep_dir, name, "result.json")) as f:
            assert json.load(f)["status"] == "completed"
        # a killed attempt's partial TensorBoard file was cleared before the rerun
        assert len(glob.glob(os.path.join(sweep_dir, name, "events.out.tfevents.*"))) == 1
    assert os.path.exists(os.path.join(sweep_dir, "report.md"))


def test_every_shipped_experiment_has_its_quick_mode_run_here():
    """A shipped experiment that is not retired is in EXPERIMENTS (its quick mode runs above)."""
    live = set()
    for name in experiment_file.shipped():
        try:
            experiment_file.load_experiment(name)
        except experiment_file.SweepError as e:
            assert "is retired" in str(e), e  # anything else is a broken experiment file
            continue
        live.add(name)
    assert live <= set(EXPERIMENTS)
