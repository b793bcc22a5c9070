"""--batch_schedule: phases at their own batch sizes, the full training state handed from one to the next.

Independent references: a plain run (no schedule) for a one-phase schedule and for phase 1; for phase
2, a plain run of phase 1 paused at its end (its checkpoint holds the full state) continued by hand
with a plain Trainer at phase 2's batch. Neither reference goes through the phase switching.
"""

import os

import flax
import jax
import numpy as np
import pytest

from lbbench import data
from lbbench.cli import flags
from lbbench.cli import train as main
from lbbench.config import Config, ConfigError
from lbbench.instruments import noise_scale
from lbbench.training import checkpoint, loop, parallel, phases, schedules
from lbbench.training.state import stack_trials, trial
from lbbench.training.trainer import Trainer

# 1000 random examples: 20 steps an epoch at B = 50, 10 at B = 100
TINY = dict(
    dataset="random",
    model="tiny_mlp",
    sharpness=False,
    train_eval_examples=500,
    noise_scale_groups=2,
    noise_scale_every=3,
    optimizer="momentum",
    learning_rate=0.05,
)
TWO = dict(batch_size=100, epochs=3, batch_schedule="50:1,100:2")  # phase 1: 20 steps; phase 2: 2 × 10


def cfg(tmp_path, name, **kw):
    return Config(workdir=str(tmp_path), run_name=name, **{**TINY, **kw})


def params_of(result):
    with open(os.path.join(result["run_dir"], "params.msgpack"), "rb") as f:
        return flax.serialization.msgpack_restore(f.read())["params"]


def assert_close(a, b, atol=1e-6):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=0, atol=atol)


def checkpoint_state(c: Config) -> dict:
    directory = checkpoint.dir_for(c)
    return checkpoint.load(directory, checkpoint.steps(directory)[-1])["state"]


def test_plan_maps_epochs_to_global_steps():
    plan = phases.plan(Config(**TWO), 1000)
    assert [(p.batch_size, p.steps_per_epoch, p.start_step, p.first_epoch) for p in plan.phases] == [
        (50, 20, 0, 1),
        (100, 10, 20, 2),
    ]
    assert [plan.start_step(e) for e in (1, 2, 3)] == [0, 20, 30] and plan.end_step(3) == plan.total_steps == 40
    assert [plan.step_at(e) for e in (0.5, 1, 1.5, 3)] == [10, 20, 25, 40]
    assert plan.examples(40) == 20 * 50 + 20 * 100 and plan.examples(25) == 1000 + 500
    one = phases.plan(Config(batch_size=100, epochs=3), 1000)
    assert not one.scheduled and [one.step_at(e) for e in (0.5, 1.5, 3)] == [5, 15, 30]
    # the LR schedule runs on the global step: warmup of 1.5 epochs ends inside phase 2, at step 25
    lr = schedules.make_schedule(Config(**TWO, schedule="warmup", warmup_epochs=1.5, learning_rate=1.0), plan)
    assert float(lr(19)) == pytest.approx(20 / 25) and float(lr(24)) == pytest.approx(1.0)


def test_one_phase_schedule_equals_plain_run(tmp_path):
    plain = loop.run(cfg(tmp_path, "plain", batch_size=100, epochs=2))
    one = loop.run(cfg(tmp_path, "one", batch_size=100, epochs=2, batch_schedule="100:2"))
    assert_close(params_of(one), params_of(plain))
    hp, ho = plain["history"], dict(one["history"])
    assert ho.pop("batch_size") == [100, 100] and "batch_size" not in hp
    assert ho == hp  # losses, accuracies, steps, learning rate, noise scale: identical
    assert one["timing"]["steps"] == plain["timing"]["steps"] == 20


def test_two_phases_train_at_their_batches_and_hand_over_the_full_state(tmp_path):
    run = loop.run(cfg(tmp_path, "sched", **TWO))
    h = run["history"]
    assert h["epoch"] == [1, 2, 3] and h["step"] == [20, 30, 40] and h["batch_size"] == [50, 100, 100]
    assert run["timing"]["steps"] == 40 and [p["batch_size"] for p in run["batch_phases"]] == [50, 100]

    # phase 1 = a plain B = 50 run: the whole state at the phase boundary, compared in its checkpoints
    paused = cfg(tmp_path, "sched_paused", **TWO, pause_at_epoch=1)
    loop.run(paused)
    plain1 = cfg(tmp_path, "plain50", batch_size=50, epochs=3, pause_at_epoch=1)
    loop.run(plain1)
    at_boundary, reference = checkpoint_state(paused), checkpoint_state(plain1)
    assert int(at_boundary["step"]) == 20
    assert_close(at_boundary, reference)  # params, optimizer state, step, noise EMA, PRNG key, schedule

    # phase 2 continues from it: the plain run's state, trained on by hand at B = 100, gives the same params
    plain2 = Config(**{**TINY, "batch_size": 100, "epochs": 3})
    ds = data.load_for(plain2)
    trainer = Trainer([plain2], ds, parallel.make_mesh())
    template = jax.device_get(trainer.init_state())
    restored = stack_trials([checkpoint.from_host(trial(template, 0), reference)])
    state = jax.device_put(restored, parallel.replicated(trainer.mesh))
    trainer.compile(state)
    for start in (20, 30):
        state, _ = trainer.epoch_fn(state, start)
    assert_close(params_of(run), trial(jax.device_get(state.params), 0))
    by_hand = noise_scale.summary(trial(jax.device_get(state.noise), 0))  # the noise EMA carried on too
    assert run["noise_scale"]["b_simple"] == pytest.approx(float(by_hand["b_simple"]), rel=1e-5)

    # the paused scheduled run resumes in phase 2 and ends as the uninterrupted one
    resumed = loop.run(paused.replace(pause_at_epoch=0, resume=True))
    assert resumed["history"]["batch_size"] == [50, 100, 100]
    assert_close(params_of(resumed), params_of(run))


def test_trials_of_a_group_share_the_schedule(tmp_path):
    both = loop.run_group([cfg(tmp_path, f"g{s}", **TWO, seed=s) for s in (0, 1)])
    solo = loop.run(cfg(tmp_path, "solo1", **TWO, seed=1))
    assert both[1]["history"]["step"] == solo["history"]["step"] == [20, 30, 40]
    assert_close(params_of(both[1]), params_of(solo), atol=1e-5)
    with pytest.raises(ConfigError, match="batch_schedule"):
        loop.run_group([cfg(tmp_path, "a", **TWO), cfg(tmp_path, "b", batch_size=100, epochs=3)])


def test_flags_take_batch_size_and_epochs_from_the_schedule(tmp_path):
    groups = "--noise_scale_groups=2"
    (c,) = flags.parse(["lbbench", "--batch_schedule=50:1,100:2", groups, f"--workdir={tmp_path}"])
    assert (c.batch_size, c.epochs, c.batch_phases) == (100, 3, ((50, 1), (100, 2)))
    (c,) = flags.parse(["lbbench", "--batch_schedule=50:1,100", "--epochs=4", groups, f"--workdir={tmp_path}"])
    assert c.batch_phases == ((50, 1), (100, 3)) and "_b50-100_" in c.default_run_name()


@pytest.mark.parametrize(
    "schedule, extra, needle",
    [
        ("50:1;100:2", [], "--batch_schedule: expects BATCH:EPOCHS phases"),
        ("50:0,100:2", [], "--batch_schedule: batch sizes and epochs must be positive"),
        ("50:1,50:2", [], "--batch_schedule: phases 1 and 2 both train at batch 50"),
        ("50:1,100:2", ["--epochs=5"], "--batch_schedule: the phases add up to 3 epochs but --epochs=5"),
        ("50:1,100:2", ["--batch_size=200"], "--batch_schedule: the last phase's batch 100 must be --batch_size=200"),
        ("50:1,100", [], "--batch_schedule: the last phase has no epochs"),
        ("25:1,100:2", [], "--batch_schedule: batch 25 is not divisible by --noise_scale_groups=2"),
        ("2000:1,100:2", [], "--batch_schedule: phase at batch 2000: 2000 exceeds the 1000 training examples"),
        ("50:1,100:2", ["--sharpness_every=1"], "--sharpness_every: counts epochs in steps of one batch size"),
    ],
)
def test_bad_schedule_exits_2_with_one_line(schedule, extra, needle, capsys, tmp_path):
    args = ["--dataset=random", "--model=tiny_mlp", "--nosharpness", "--noise_scale_groups=2", f"--workdir={tmp_path}"]
    code = main.main(["lbbench", *args, f"--batch_schedule={schedule}", *extra])
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT
    assert needle in err and len(err.splitlines()) == 1, err
