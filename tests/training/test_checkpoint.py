"""Mid-run checkpoints and --resume: a run killed (SIGKILL) or preempted (SIGTERM) at a random moment
and started again with --resume ends bit-identical to the run that was never interrupted.

Every wait is on an event (a checkpoint file appearing, the process ending) with generous timeouts;
a small random delay after the event varies the moment of the kill.
"""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import flax
import jax
import numpy as np
import pytest
from _paths import ROOT

from lbbench.config import Config
from lbbench.data import load_for
from lbbench.models import build_model
from lbbench.training import checkpoint
from lbbench.training.optim import make_optimizer
from lbbench.training.state import init_state

TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=50", "--noise_scale_groups=2", "--nosharpness"]
RUN = [*TINY, "--epochs=12", "--checkpoint_every_steps=6", "--eval_every_steps=10"]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
TIMEOUT = 600  # seconds; only reached if something is broken


def _cli(*args):
    return [sys.executable, "-m", "lbbench.main", *args]


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)


def _wait_for(pattern: str, proc: subprocess.Popen) -> bool:
    """Until a file matching `pattern` exists (True) or the process ended (False)."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        if glob.glob(pattern):
            return True
        if proc.poll() is not None:
            return bool(glob.glob(pattern))
        time.sleep(0.01)
    raise AssertionError(f"nothing matched {pattern} within {TIMEOUT} s")


def _interrupt(cmd: list[str], ckpt_pattern: str, sig: int) -> int:
    """Start `cmd`, wait for its first checkpoint, send `sig` after a random delay; its exit status."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ckpt_pattern, proc)
        time.sleep(random.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGTERM and proc.returncode == 143:
        assert "Traceback" not in err and "checkpoint saved at step" in out, err[-2000:]
    return proc.returncode


def _same_run(a: str, b: str) -> None:
    """Two run folders hold the same result: history, evals and final metrics equal, params to 1e-6."""
    ra, rb = (json.loads(open(os.path.join(d, "result.json")).read()) for d in (a, b))
    assert ra["status"] == rb["status"] == "completed"
    assert ra["history"] == rb["history"]
    assert ra.get("evals") == rb.get("evals") and ra.get("noise_scale") == rb.get("noise_scale")
    assert ra["final"] == rb["final"]
    pa, pb = (flax.serialization.msgpack_restore(open(os.path.join(d, "params.msgpack"), "rb").read()) for d in (a, b))
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, sig):
    ref = _run([*RUN, f"--workdir={tmp_path}", "--run_name=ref"])
    assert ref.returncode == 0, ref.stderr[-2000:]
    cmd = _cli(*RUN, f"--workdir={tmp_path}", "--run_name=r")
    code = _interrupt(cmd, str(tmp_path / ".r.ckpt" / "step-*.msgpack"), sig)
    assert code in (0, -signal.SIGKILL, 143)
    if code != 0:
        assert checkpoint.steps(str(tmp_path / ".r.ckpt"))
        again = _run([*RUN, f"--workdir={tmp_path}", "--run_name=r", "--resume"])
        assert again.returncode == 0, again.stderr[-2000:]
        assert "resuming from the checkpoint at step" in again.stdout
        result = json.loads((tmp_path / "r" / "result.json").read_text())
        assert result["provenance"]["resumed_at_step"] > 0
    _same_run(str(tmp_path / "ref"), str(tmp_path / "r"))
    assert not os.path.exists(tmp_path / ".r.ckpt")  # removed once the run finished


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_seeds_group_resumes_under_its_default_names(tmp_path, sig):
    group = [*RUN, "--seeds=0,1"]
    ref = _run([*group, f"--workdir={tmp_path / 'ref'}"])
    assert ref.returncode == 0, ref.stderr[-2000:]
    work = tmp_path / "w"
    code = _interrupt(_cli(*group, f"--workdir={work}"), str(work / ".*_s1.ckpt" / "step-*.msgpack"), sig)
    if code != 0:
        again = _run([*group, f"--workdir={work}", "--resume"])
        assert again.returncode == 0, again.stderr[-2000:]
        assert "_v2" not in again.stdout + again.stderr  # the same names, not a new version
    names = sorted(e for e in os.listdir(tmp_path / "ref") if e.endswith(("_s0", "_s1")))
    assert len(names) == 2
    for name in names:
        _same_run(str(tmp_path / "ref" / name), str(work / name))


SWEEP = textwrap.dedent("""
    from lbbench.config import Config
    NAME = "t"
    def base_config(quick):
        return Config(dataset="random", model="tiny_mlp", epochs=12, batch_size=50, sharpness=False,
                      noise_scale_groups=2, checkpoint_every_steps=6)
    def grid(quick):
        return [{"seed": 0, "run_name": "p0"}]
""")


@pytest.mark.slow
def test_a_preempted_sweep_point_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(SWEEP)
    sweep = [sys.executable, "-m", "lbbench.sweep", str(path)]
    ref = subprocess.run([*sweep, f"--workdir={tmp_path / 'ref'}"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    work = tmp_path / "w"
    code = _interrupt([*sweep, f"--workdir={work}"], str(work / "t" / ".p0.ckpt" / "step-*.msgpack"), signal.SIGTERM)
    assert code in (0, 143)
    again = subprocess.run([*sweep, f"--workdir={work}"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    if code == 143:
        assert json.loads((work / "t" / "p0" / "result.json").read_text())["provenance"]["resumed_at_step"] > 0
    _same_run(str(tmp_path / "ref" / "t" / "p0"), str(work / "t" / "p0"))


def test_save_then_restore_of_a_train_state_is_exact(tmp_path):
    cfg = Config(dataset="random", model="tiny_mlp", optimizer="adam", batch_size=50, validation_examples=0)
    ds = load_for(cfg)
    model = build_model(cfg.model, ds.num_classes, 0)
    state = init_state(cfg, model, ds, 20)
    grads = jax.tree.map(lambda p: p * 0.5 + 1.0, state.params)
    updates, opt = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    state = state.replace(opt_state=opt, step=state.step + 7, alive=np.asarray(False))
    checkpoint.save(str(tmp_path), 7, {"state": checkpoint.to_host(jax.device_get(state))})
    fresh = init_state(cfg.replace(seed=5), model, ds, 20)
    back = checkpoint.from_host(jax.device_get(fresh), checkpoint.load(str(tmp_path), 7)["state"])
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(jax.device_get(state))):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y)


def test_only_the_last_two_checkpoints_are_kept(tmp_path):
    for step in (3, 6, 9, 12):
        checkpoint.save(str(tmp_path), step, {"step": step})
    assert checkpoint.steps(str(tmp_path)) == [9, 12]
    assert checkpoint.load(str(tmp_path), 12) == {"step": 12}


def test_resume_with_nothing_to_resume_is_one_line_exit_2(tmp_path):
    done = _run([*TINY, "--epochs=1", f"--workdir={tmp_path}", "--resume"])
    assert done.returncode == 2 and "--resume: nothing to resume" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_init_from_starts_from_another_runs_checkpoint(tmp_path):
    src = _run([*TINY, "--epochs=2", "--checkpoint_every_steps=20", f"--workdir={tmp_path}", "--run_name=src"])
    assert src.returncode == 0, src.stderr[-2000:]
    # a finished run keeps no checkpoint: its saved params are the start
    new = _run([*TINY, "--epochs=1", f"--workdir={tmp_path}", "--run_name=b", "--init_from=src"])
    assert new.returncode == 0, new.stderr[-2000:]
    origin = json.loads((tmp_path / "b" / "result.json").read_text())["provenance"]["init_from"]
    assert origin["run"] == str(tmp_path / "src") and origin["from"] == "params" and origin["step"] == 40
    wrong = _run([*TINY, "--model=mlp", "--epochs=1", f"--workdir={tmp_path}", "--run_name=c", "--init_from=src"])
    assert wrong.returncode == 2 and "--init_from: the parameters of" in wrong.stderr
    missing = _run([*TINY, "--epochs=1", f"--workdir={tmp_path}", "--run_name=d", "--init_from=nope:5"])
    assert missing.returncode == 2 and "--init_from: no run 'nope'" in missing.stderr


@pytest.mark.slow
def test_init_from_a_checkpoint_step_takes_params_and_optimizer_state(tmp_path):
    ckpt = tmp_path / ".src.ckpt"
    cmd = _cli(*TINY, "--epochs=200", "--checkpoint_every_steps=20", f"--workdir={tmp_path}", "--run_name=src")
    assert _interrupt(cmd, str(ckpt / "step-*.msgpack"), signal.SIGKILL) == -signal.SIGKILL
    step = checkpoint.steps(str(ckpt))[0]
    new = _run([*TINY, "--epochs=1", f"--workdir={tmp_path}", "--run_name=b", f"--init_from=src:{step}"])
    assert new.returncode == 0, new.stderr[-2000:]
    origin = json.loads((tmp_path / "b" / "result.json").read_text())["provenance"]["init_from"]
    assert origin["from"] == "checkpoint" and origin["step"] == step and origin["optimizer_state"] is True


def test_keep_all_keeps_every_checkpoint(tmp_path):
    for step in (3, 6, 9, 12):
        checkpoint.save(str(tmp_path), step, {"step": step}, keep_all=True)
    assert checkpoint.steps(str(tmp_path)) == [3, 6, 9, 12]


def test_keep_checkpoints_does_not_change_what_a_run_computes():
    from lbbench.runs.folder import fingerprint

    cfg = Config(dataset="random", model="tiny_mlp")
    assert fingerprint(cfg) == fingerprint(cfg.replace(keep_checkpoints=True))
    assert cfg.group_key() == cfg.replace(keep_checkpoints=True).group_key()


@pytest.mark.slow
def test_a_finished_run_keeps_its_checkpoints_for_branching(tmp_path):
    from lbbench.training import loop

    base = Config(
        dataset="random", model="tiny_mlp", batch_size=50, noise_scale_groups=1, sharpness=False,
        validation_examples=0, workdir=str(tmp_path), save_params=False,
    )  # fmt: skip
    ref = loop.run(base.replace(epochs=3, checkpoint_every_steps=10, keep_checkpoints=True, run_name="ref"))
    assert ref["status"] == "completed"
    kept = checkpoint.steps(str(tmp_path / ".ref.ckpt"))
    assert kept == [10, 20, 30, 40, 50, 60]  # 20 steps an epoch: every segment end ≥ 10 steps apart
    branch = loop.run(base.replace(epochs=1, batch_size=100, run_name="branch", init_from="ref:20"))
    origin = branch["provenance"]["init_from"]
    assert branch["status"] == "completed" and origin["step"] == 20 and origin["optimizer_state"] is True
    assert checkpoint.steps(str(tmp_path / ".ref.ckpt")) == kept  # the branch left them alone
    plain = loop.run(base.replace(epochs=3, checkpoint_every_steps=10, run_name="plain"))
    assert not os.path.exists(tmp_path / ".plain.ckpt") and plain["final"] == ref["final"]
