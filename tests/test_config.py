import pytest

from lbbench.config import Config, ConfigError


def test_defaults_validate():
    assert Config().validate() == Config()


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -4}, "batch_size"),
        ({"epochs": -1}, "epochs"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"model": "vit"}, "model"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"schedule": "cyclic"}, "schedule"),
        ({"lr_scaling": "cubic"}, "lr_scaling"),
        ({"loss": "hinge"}, "loss"),
        ({"batch_size": 100, "ghost_batch_size": 33}, "ghost_batch_size"),
        ({"batch_size": 100, "noise_scale_groups": 3}, "noise_scale_groups"),
        ({"coordinator_address": "h:1234"}, "coordinator_address"),
        ({"epochs": 10, "decay_epochs": (11,)}, "decay_epochs"),
    ],
)
def test_bad_values_name_their_flag(change, flag):
    with pytest.raises(ConfigError) as e:
        Config(**change).validate()
    assert e.value.flag == flag and f"--{flag}" in str(e.value)


@pytest.mark.parametrize("rule, expected", [("none", 0.1), ("linear", 0.1 * 16), ("sqrt", 0.1 * 4)])
def test_lr_scaling_rules(rule, expected):
    cfg = Config(learning_rate=0.1, base_batch_size=256, batch_size=4096, lr_scaling=rule)
    assert cfg.scaled_learning_rate == pytest.approx(expected)


def test_round_trip_through_dict():
    cfg = Config(epsilons=(1e-3,), decay_epochs=(3, 6), epochs=8)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_loss_shapes_the_program_and_names_only_non_default_runs():
    from lbbench.config import TRACED_FIELDS
    from lbbench.config.sections import BOOKKEEPING

    assert "loss" not in TRACED_FIELDS and "loss" not in BOOKKEEPING  # a hyperparameter of the program
    assert Config(loss="mse").group_key() != Config().group_key()
    assert Config(loss="mse").default_run_name() == Config().default_run_name().replace("_s0", "_mse_s0")
    assert Config.from_dict({k: v for k, v in Config().to_dict().items() if k != "loss"}).loss == "cross_entropy"


def test_lars_small_lr_warns():
    assert Config(optimizer="lars", learning_rate=0.01).warnings()
    assert not Config(optimizer="lars", learning_rate=10.0).warnings()


def test_every_field_is_in_exactly_one_help_section():
    import dataclasses

    from lbbench.config.sections import SECTIONS

    listed = [name for names in SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(Config))
    assert len(listed) == len(set(listed))
    assert list(SECTIONS) == ["data", "model", "optimisation", "measurement", "output", "distribution"]


def test_default_noise_groups_not_dividing_the_batch_blames_the_batch_and_says_how_to_fix_it():
    with pytest.raises(ConfigError) as e:
        Config(batch_size=250).validate()
    msg = str(e.value)
    assert e.value.flag == "batch_size" and msg.startswith("--batch_size: 250 is not divisible by 4, the default")
    assert "--noise_scale_groups=2" in msg and "--noise_scale_groups=1" in msg and "divisible by 4" in msg
