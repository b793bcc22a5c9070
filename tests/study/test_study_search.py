"""Quasi-random search: reproducible, low discrepancy, stratified marginals, valid Config overrides."""

import numpy as np
import pytest
from scipy.stats import qmc

from lbbench.config import Config
from lbbench.study.search import Dim, SearchSpace, default_space, ghost_batch_dim


def test_same_seed_same_trials_other_seed_differs():
    space = default_space("adam")
    a = space.trials(8, seed=3)
    assert a == space.trials(8, seed=3)
    assert a != space.trials(8, seed=4)


@pytest.mark.parametrize("method", ["sobol", "halton"])
def test_fills_the_space_better_than_iid(method):
    space = default_space("adam")  # 5 dimensions
    n = 64
    u = space.unit_points(n, seed=0, method=method)
    rng = np.random.default_rng(0)
    iid = [qmc.discrepancy(rng.random((n, u.shape[1]))) for _ in range(50)]
    assert qmc.discrepancy(u) < 0.5 * np.median(iid)


def test_every_marginal_is_stratified():
    # scrambled Sobol with n = 2^m puts exactly one point in each of the n equal bins of every axis
    u = default_space("momentum").unit_points(16, seed=1)
    for j in range(u.shape[1]):
        counts = np.bincount((u[:, j] * 16).astype(int), minlength=16)
        assert (counts == 1).all()


def test_scales_map_the_unit_interval_onto_the_declared_ranges():
    assert Dim("lr", 1e-3, 1e-1, "log").value(0.5) == pytest.approx(1e-2)
    m = Dim("momentum", 0.9, 0.999, "log1m")
    assert m.value(0.0) == pytest.approx(0.9) and m.value(1.0) == pytest.approx(0.999)
    assert m.value(0.5) == pytest.approx(0.99)  # 1 - m = 1e-2, the geometric middle of [1e-3, 1e-1]
    wd = Dim("wd", 1e-6, 1e-2, "log_or_zero", zero_fraction=0.25)
    assert wd.value(0.2) == 0.0 and wd.value(0.25) == pytest.approx(1e-6) and wd.value(1.0) == pytest.approx(1e-2)
    assert Dim("w", 0.0, 0.2, "linear").value(0.5) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        Dim("lr", 0.0, 1.0, "log")


def test_trials_are_valid_config_overrides_within_range():
    space = default_space("adam")
    for t in space.trials(32, seed=0):
        cfg = Config(optimizer="adam", epochs=20).replace(**t).validate()
        assert 1e-4 <= cfg.learning_rate <= 3e-2 and 0.5 <= cfg.momentum <= 0.99
        assert 0.9 <= cfg.beta2 <= 0.999 and 0 <= cfg.warmup_steps <= 500 and isinstance(cfg.warmup_steps, int)
        assert cfg.weight_decay == 0 or 1e-6 <= cfg.weight_decay <= 1e-3
    assert "beta2" not in default_space("momentum").fields
    epochs = SearchSpace((Dim("warmup_epochs", 0, 2, "linear"),)).trials(4)  # an absolute length in epochs
    assert all(0 <= t["warmup_epochs"] <= 2 for t in epochs)


def test_warmup_in_steps_is_the_same_at_every_batch_size_and_run_length():
    """A trial's warmup must not depend on the budget rule (issue 17: it was a fraction of the run), and
    each batch size draws its own K trials (issue 22)."""
    from lbbench.experiments import critical_batch
    from lbbench.training import schedules

    by_batch = {}
    for p in critical_batch.grid(quick=False):
        cfg = critical_batch.base_config(False).replace(**{k: v for k, v in p.items() if k != "run_name"})
        assert schedules.warmup_steps(cfg, 60000 // cfg.batch_size) == p["warmup_steps"]  # whatever B and epochs
        by_batch.setdefault(cfg.batch_size, []).append((p["learning_rate"], p["warmup_steps"]))
    assert all(len(set(v)) == critical_batch.K for v in by_batch.values())
    draws = list(by_batch.values())
    assert all(a != b for a, b in zip(draws, draws[1:]))  # independent draws per batch size


def test_unit_inverts_value_on_every_scale():
    dims = (
        Dim("a", 1e-3, 1.0, "log"),
        Dim("b", 0.5, 0.99, "log1m"),
        Dim("c", 0.0, 500.0, "linear"),
        Dim("d", 1e-6, 1e-3, "log_or_zero", zero_fraction=0.25),
    )
    for d in dims:
        for u in (0.3, 0.5, 0.97):
            assert d.unit(d.value(u)) == pytest.approx(u)
    assert dims[3].unit(0.0) is None  # "off" is its own category, never at an edge


def test_sam_tunes_its_radius_and_ghost_batches_are_powers_of_two():
    assert "sam_rho" in default_space("sam").fields and "sam_rho" not in default_space("momentum").fields
    for t in default_space("sam").trials(16, seed=0):
        cfg = Config(optimizer="sam").replace(**t).validate()
        assert 0.01 <= cfg.sam_rho <= 0.5
    space = SearchSpace((ghost_batch_dim(16, 512),))
    sizes = [t["ghost_batch_size"] for t in space.trials(16, seed=0)]
    assert all(isinstance(g, int) and g in (16, 32, 64, 128, 256, 512) for g in sizes) and len(set(sizes)) >= 4
    assert space.dims[0].unit(16) == 0 and space.dims[0].unit(512) == 1
