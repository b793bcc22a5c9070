"""Embedded datasets: MNIST-1D generation and cache, the seed article's random-label toy, atomic writes."""

import os

import numpy as np
import pytest

from lbbench import data
from lbbench.data import embedded
from lbbench.runs.atomic import atomic_open


def test_mnist1d_generated_then_loaded_from_cache(tmp_path, monkeypatch):
    ds = embedded.load_mnist1d(str(tmp_path), num_train=300, num_test=100)
    assert ds.x_train.shape == (300, 40) and ds.x_test.shape == (100, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert set(np.unique(ds.y_train)) <= set(range(10)) and len(np.unique(ds.y_train)) == 10
    # second load must come from the cache, not the generator
    monkeypatch.setattr(embedded, "generate_mnist1d", lambda *a: pytest.fail("regenerated"))
    again = embedded.load_mnist1d(str(tmp_path), num_train=300, num_test=100)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_generation_leaves_numpy_global_rng_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    embedded.generate_mnist1d(20, 10)
    assert np.random.rand() == expected


def test_corrupt_cache_is_regenerated(tmp_path, capsys):
    ds = embedded.load_mnist1d(str(tmp_path), num_train=100, num_test=50)
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".npz"]
    path.write_bytes(path.read_bytes()[:100])  # truncated file
    again = embedded.load_mnist1d(str(tmp_path), num_train=100, num_test=50)
    assert "unreadable" in capsys.readouterr().err
    np.testing.assert_array_equal(again.x_train, ds.x_train)  # same seed, same data


def test_cache_of_another_size_under_the_standard_name_is_regenerated(tmp_path, capsys):
    ds = embedded.load_mnist1d(str(tmp_path), num_train=100, num_test=50)
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".npz"]
    small = embedded.generate_mnist1d(60, 20)  # e.g. a cache copied from a smaller generation
    with open(path, "wb") as f:
        np.savez(f, **small)
    again = embedded.load_mnist1d(str(tmp_path), num_train=100, num_test=50)
    err = capsys.readouterr().err
    assert "holds {'x_train': 60, 'y_train': 60, 'x_test': 20, 'y_test': 20} examples" in err
    assert again.num_train == 100 and len(again.y_test) == 50
    np.testing.assert_array_equal(again.x_train, ds.x_train)  # regenerated: the data its name promises


def test_generated_counts_match_the_generator():
    for n_train, n_test in ((300, 100), (1234, 567), (15, 0)):
        d = embedded.generate_mnist1d(n_train, n_test)
        assert embedded.generated_counts(n_train, n_test) == (len(d["y_train"]), len(d["y_test"]))


def test_random_toy_matches_the_seed_article():
    ds = data.load("random", "")
    assert ds.x_train.shape == (1000, 20) and ds.x_test.shape == (200, 20) and ds.num_classes == 2
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() < 1.0


def test_atomic_open_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(str(target)) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["result.json"]
    with atomic_open(str(target)) as f:
        f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["result.json"]


def test_train_subset_is_fixed_and_keeps_the_test_set():
    from lbbench.data import load

    ds = load("random", "")
    a, b = ds.subset(300), ds.subset(300)
    assert a.num_train == 300 and np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert np.array_equal(a.x_test, ds.x_test)
    # the rows are real training rows, each once
    rows = {tuple(r) for r in ds.x_train.round(6)}
    assert all(tuple(r) in rows for r in a.x_train.round(6)) and len({tuple(r) for r in a.x_train}) == 300
    assert ds.subset(0) is ds and ds.subset(10**6) is ds


def test_mnist1d_validation_is_generated_apart_and_leaves_train_and_test_unchanged(tmp_path):
    plain = embedded.load_mnist1d(str(tmp_path), num_train=300, num_test=100)
    ds = embedded.load_mnist1d(str(tmp_path), num_train=300, num_test=100, num_val=200)
    np.testing.assert_array_equal(ds.x_train, plain.x_train)
    np.testing.assert_array_equal(ds.x_test, plain.x_test)
    assert ds.x_val.shape == (200, 40) and ds.num_val == 200 and len(np.unique(ds.y_val)) == 10
    # another seed: no validation example is a training or test example
    seen = {row.tobytes() for row in np.concatenate([ds.x_train, ds.x_test])}
    assert not any(row.tobytes() in seen for row in ds.x_val)
    # the same distribution: per-class means of validation and train agree far better than across classes
    mean = lambda x, y, c: x[y == c].mean(0)
    same = np.mean([np.abs(mean(ds.x_val, ds.y_val, c) - mean(ds.x_train, ds.y_train, c)).mean() for c in range(10)])
    other = np.mean(
        [np.abs(mean(ds.x_val, ds.y_val, c) - mean(ds.x_train, ds.y_train, (c + 1) % 10)).mean() for c in range(10)]
    )
    assert same < 0.5 * other


def test_real_datasets_carve_a_seeded_disjoint_validation_set():
    rng = np.random.default_rng(0)
    x = rng.random((100, 4), dtype=np.float32)
    ds = data.Dataset("toy", x, np.arange(100, dtype=np.int32) % 3, x[:10], np.zeros(10, np.int32), 3)
    a, b = ds.carve_validation(20), ds.carve_validation(20)
    np.testing.assert_array_equal(a.x_val, b.x_val)  # seeded: every run holds out the same examples
    assert a.num_train == 80 and a.num_val == 20
    train_rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in train_rows for r in a.x_val)
    assert ds.carve_validation(0) is ds
    with pytest.raises(data.DataError, match="cannot hold out 100 validation examples"):
        ds.carve_validation(100)


def test_the_random_toy_gets_its_own_validation_draws():
    plain, ds = embedded.load_random_toy(), embedded.load_random_toy(num_val=50)
    np.testing.assert_array_equal(plain.x_train, ds.x_train)
    assert ds.x_val.shape == (50, 20) and not np.array_equal(ds.x_val, ds.x_train[:50])
