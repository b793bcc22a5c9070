"""Schedules against their closed forms at chosen steps."""

import math

import pytest

from lbbench.config import Config
from lbbench.training.schedules import make_schedule

SPE = 10  # steps per epoch


def lr_at(cfg, step):
    return float(make_schedule(cfg, SPE)(step))


def test_constant():
    cfg = Config(learning_rate=0.3, schedule="constant", epochs=5)
    assert [lr_at(cfg, s) for s in (0, 7, 49)] == pytest.approx([0.3] * 3)


@pytest.mark.parametrize("step", [0, 1, 9, 24, 48, 49, 50, 51, 200])
def test_warmup_is_linear_then_constant(step):
    cfg = Config(learning_rate=0.2, schedule="warmup", warmup_epochs=5, epochs=30)
    w = 5 * SPE  # lr(t) = lr * min(1, (t + 1) / W), the seed article's (epoch + 1) / warmup per step
    assert lr_at(cfg, step) == pytest.approx(0.2 * min(1.0, (step + 1) / w), rel=1e-5)


@pytest.mark.parametrize("step", [0, 19, 20, 25, 50, 99])
def test_warmup_cosine(step):
    cfg = Config(learning_rate=1.0, schedule="warmup_cosine", warmup_epochs=2, epochs=10)
    w, total = 20, 100
    expected = (step + 1) / w if step < w else 0.5 * (1 + math.cos(math.pi * (step - w) / (total - w)))
    assert lr_at(cfg, step) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    "step, factor", [(0, 1 / 10), (9, 1.0), (10, 1.0), (29, 1.0), (30, 0.1), (59, 0.1), (60, 0.01), (79, 0.01)]
)
def test_warmup_step_goyal(step, factor):
    cfg = Config(
        learning_rate=0.1,
        batch_size=1024,
        base_batch_size=256,
        lr_scaling="linear",
        schedule="warmup_step",
        warmup_epochs=1,
        epochs=8,
        decay_epochs=(3, 6),
    )
    peak = 0.1 * 4  # linear scaling rule, Goyal et al. 2017 eq. (1)
    expected = peak * (step + 1) / 10 if step < 10 else peak * factor
    assert lr_at(cfg, step) == pytest.approx(expected, rel=1e-5)


def test_warmup_step_default_boundaries_at_half_and_three_quarters():
    cfg = Config(learning_rate=1.0, schedule="warmup_step", warmup_epochs=0, epochs=8)
    assert [lr_at(cfg, s) for s in (39, 40, 59, 60)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_warmup_step_divides_by_the_decay_factor():
    cfg = Config(
        learning_rate=1.0, schedule="warmup_step", warmup_epochs=0, epochs=8, decay_epochs=(2, 6), decay_factor=4
    )
    lr = make_schedule(cfg, 10)
    assert [float(lr(s)) for s in (19, 20, 59, 60)] == pytest.approx([1.0, 0.25, 0.25, 0.0625])


def test_warmup_steps_override_epochs_and_do_not_depend_on_the_run_length_or_batch():
    """--warmup_steps: the same warmup whatever the epochs or the steps per epoch (issue 17)."""
    for epochs in (3, 6, 100):
        cfg = Config(learning_rate=0.2, schedule="warmup", warmup_epochs=5, warmup_steps=40, epochs=epochs)
        for spe in (1, 10, 1875):
            f = make_schedule(cfg, spe)
            assert [float(f(t)) for t in (0, 19, 39, 40)] == pytest.approx([0.2 / 40, 0.2 * 20 / 40, 0.2, 0.2])
    cfg = Config(schedule="warmup", warmup_steps=0, epochs=2)
    assert lr_at(cfg, 0) == pytest.approx(cfg.learning_rate)  # zero steps means no warmup, not "use epochs"
