"""The instrument registry: every module of lbbench/instruments/ with NAME and build() is found by name,
in its ORDER, built only when its Config switches it on, and an unknown name is a clear error."""

import pytest

from lbbench.config import Config
from lbbench.instruments import registry

OFF = {"noise_scale_groups": 1, "sharpness": False}


def test_every_instrument_module_is_registered_by_name_in_order():
    names = registry.names()
    assert names[:3] == ["noise_scale", "curvature", "gradient_tests"]  # tracker before gradient tests
    assert {"sharpness", "adaptive_sharpness"} <= set(names)
    for name in names:
        assert registry.get(name).NAME == name


def test_unknown_instrument_names_the_known_ones():
    with pytest.raises(KeyError, match="no instrument 'nope'; known: noise_scale, curvature"):
        registry.get("nope")


def test_build_follows_the_config():
    assert registry.build(Config(**OFF), steps_per_epoch=10) == []
    assert [i.name for i in registry.build(Config(), steps_per_epoch=10)] == ["noise_scale", "sharpness"]
    cfg = Config(**OFF, track_curvature_every=10, gradient_tests_every=5, track_curvature_iters=3, sharpness_every=2)
    built = registry.build(cfg.replace(sharpness=True), steps_per_epoch=7)
    assert [i.name for i in built] == ["curvature", "gradient_tests", "sharpness"]
    assert [i.every for i in built] == [10, 5, 14]  # sharpness_every is in epochs
    assert built[0].vectors is built[1].vectors  # the tracker's eigenvector reaches the gradient tests
