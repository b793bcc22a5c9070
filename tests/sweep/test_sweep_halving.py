"""Successive halving in a real sweep: the ladder promotes on validation, promoted trials continue from
their own checkpoint and end equal to the same trial trained at its full budget without stopping."""

import json
import os
import re
import textwrap

import flax
import numpy as np
import pytest

from lbbench.cli import sweep as sweep_cli
from lbbench.sweep import halving as sweep_halving

EXPERIMENT = textwrap.dedent("""
    from lbbench.config import Config
    from lbbench.study.halving import Halving
    NAME = "halvingtest"
    SEEN = []

    def base_config(quick):
        return Config(dataset="random", model="tiny_mlp", batch_size=50, noise_scale_groups=2,
                      sharpness=False, epochs=9, optimizer="momentum", train_eval_examples=200,
                      validation_examples=200)

    def grid(quick):
        lrs = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
        return [{"learning_rate": lr, "run_name": f"t{i}"} for i, lr in enumerate(lrs)]

    def halving(quick):
        return Halving(rungs=(1 / 9, 1 / 3, 1.0), keep=1 / 3)

    def analyze(sweep_dir, results, quick):
        return {"seen": sorted((k, r["status"]) for k, r in results.items())}
""")


def _sweep(path, workdir, *extra):
    return sweep_cli.main(["sweep", str(path), "--workdir", str(workdir), *extra])


def _params(run_dir):
    with open(os.path.join(run_dir, "params.msgpack"), "rb") as f:
        return flax.serialization.msgpack_restore(f.read())


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.slow
def test_halving_ladder_continues_promoted_trials_exactly(tmp_path, capsys):
    exp = tmp_path / "halvingtest.py"
    exp.write_text(EXPERIMENT)
    assert _sweep(exp, tmp_path / "sh") == 0
    sh = tmp_path / "sh" / "halvingtest"
    ladder = _json(sh / "halving.json")["brackets"]["50"]
    assert ladder["rung_epochs"] == [1, 3, 9]
    results = {f"t{i}": _json(sh / f"t{i}" / "result.json") for i in range(6)}
    # rung 1: ⌊6/3⌋ = 2 promoted on validation accuracy at epoch 1; rung 2: ⌊2/3⌋ → 1 runs the full budget
    at1 = {k: r["history"]["val_accuracy"][0] for k, r in results.items()}
    order = sorted(at1, key=lambda k: (-at1[k], k))
    full = [k for k, r in results.items() if r["status"] == "completed"]
    assert len(full) == 1 and full[0] in order[:2]
    stopped1 = [k for k, r in results.items() if r["config"]["pause_at_epoch"] == 1]
    assert sorted(stopped1) == sorted(order[2:]) and all(results[k]["status"] == "paused" for k in stopped1)
    assert all(len(results[k]["history"]["epoch"]) == 1 for k in stopped1)
    winner = full[0]
    assert ladder["trials"][winner]["outcome"] == "full budget"
    assert "stopped after rung 1" in ladder["trials"][order[5]]["outcome"]
    assert results[winner]["timing"]["earlier_attempts"]  # two rungs before the last one
    assert _json(sh / "analysis.json")["seen"] == [[winner, "completed"]]  # paused runs never analysed
    assert not os.path.exists(sh / f".{winner}.ckpt")  # a finished run removes its checkpoints
    assert os.path.exists(sh / f".{order[5]}.ckpt")  # a stopped one keeps them (a later rung resumes)
    rows = [line for line in (sh / "halving.md").read_text().splitlines() if re.match(r"\| t\d ", line)]
    assert len(rows) == 6
    # the same grid at its full budget (no stops): the promoted trial is the same run, to 1e-6
    assert _sweep(exp, tmp_path / "full", "--full_search") == 0
    fs = tmp_path / "full" / "halvingtest"
    ref = _json(fs / winner / "result.json")
    assert ref["status"] == "completed" and "earlier_attempts" not in ref["timing"]
    # equal up to float rounding: the two ran in programs of different sizes (6 trials vs 2 and 1)
    for key, col in ref["history"].items():
        got = results[winner]["history"][key]
        np.testing.assert_allclose(np.array(got, float), np.array(col, float), rtol=1e-4, atol=1e-6, err_msg=key)
    a, b = _params(sh / winner), _params(fs / winner)
    for x, y in zip(flax.traverse_util.flatten_dict(a).values(), flax.traverse_util.flatten_dict(b).values()):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
    # a rerun replays the ladder from the results and trains nothing
    capsys.readouterr()
    mtimes = {k: os.stat(sh / k / "result.json").st_mtime for k in results}
    assert _sweep(exp, tmp_path / "sh") == 0
    assert mtimes == {k: os.stat(sh / k / "result.json").st_mtime for k in results}
    assert "one program for" not in capsys.readouterr().out


def test_a_trial_that_diverged_at_a_rung_is_counted_once(tmp_path):
    """The ladder stops a diverged trial at its rung, and its result is finished too: the analysis passes
    the names it counts from results, and the ladder's count leaves them out."""
    ladder = {
        "brackets": {
            "256": {
                "trials": {
                    "a": {"outcome": "stopped after rung 1 (rank 3 of 3)"},
                    "b": {"outcome": "stopped after rung 1 (diverged or failed)"},
                    "c": {"outcome": "full budget"},
                }
            }
        }
    }
    (tmp_path / "halving.json").write_text(json.dumps(ladder))
    assert sweep_halving.stopped_by_bracket(str(tmp_path)) == {"256": 2}
    assert sweep_halving.stopped_by_bracket(str(tmp_path), {"b": {}, "c": {}}) == {"256": 1}
