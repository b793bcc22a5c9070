"""A sweep's time account: packed programs charged 1/T per trial, instruments as measured, the rest idle."""

import pytest

from lbbench.study import accounting


def _result(batch, trials, compile_s, steps_s, eval_s, total_s, sharp=0.0):
    instruments = {
        "sharpness": {
            "seconds": sharp,
            "runs": 1 if sharp else 0,
            "declared_cost_steps": 88.0,
            "measured_cost_steps": sharp * 10 if sharp else None,
        }
    }
    timing = {
        "trials_in_program": trials,
        "compile_s": compile_s,
        "steps_s": steps_s,
        "eval_s": eval_s,
        "total_s": total_s,
        "instruments": instruments,
    }
    return {"config": {"batch_size": batch}, "timing": timing}


def test_a_packed_program_is_charged_once_over_its_trials_and_idle_is_the_rest():
    results = {
        "a0": _result(256, 2, 4.0, 20.0, 6.0, 32.0),  # one program of two trials: 32 s of wall
        "a1": _result(256, 2, 4.0, 20.0, 6.0, 32.0),
        "b": _result(4096, 1, 3.0, 5.0, 1.0, 15.0, sharp=4.0),
    }
    acc = accounting.account(results, wall_s=50.0)
    b256 = acc["by_batch_size"]["256"]
    assert (b256["compile"], b256["training steps"], b256["evaluation"], b256["other"]) == (4.0, 20.0, 6.0, 2.0)
    b4096 = acc["by_batch_size"]["4096"]
    assert b4096["instruments"] == 4.0 and b4096["by_instrument"] == {"sharpness": 4.0} and b4096["other"] == 2.0
    assert sum(acc["total"][p] for p in accounting.PARTS) == pytest.approx(32.0 + 15.0)  # every point's share
    assert acc["idle_s"] == pytest.approx(3.0)
    assert acc["instrument_costs"]["sharpness"] == {
        "declared_cost_steps": 88.0,
        "measured_cost_steps_median": 40.0,
        "runs": 1,
    }
    text = "\n".join(accounting.lines(acc))
    assert "stated 88 train steps a run, measured 40" in text and "idle or bookkeeping 3.0 s" in text
