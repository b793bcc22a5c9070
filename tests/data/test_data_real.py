"""The real-dataset loaders on small files generated in the exact published formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lbbench.data import real
from lbbench.data.dataset import DataError

N_TRAIN, N_TEST = 50, 20


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: big-endian magic, one big-endian uint32 per dimension, then the uint8 payload."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_like(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "train_x": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def mnist_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The four gzip'd IDX files of an MNIST-format dataset."""
    return {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(arrays["train_x"], 0x803)),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(arrays["train_y"], 0x801)),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(arrays["test_x"], 0x803)),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(arrays["test_y"], 0x801)),
    }


def tarball(members: dict[str, object]) -> bytes:
    """A .tar.gz whose members are pickles (protocol 2, like the originals) or raw bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, obj in members.items():
            data = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar_arrays(rng: np.random.Generator, classes: int) -> dict[str, np.ndarray]:
    return {
        "train_x": rng.integers(0, 256, (N_TRAIN, 3072), dtype=np.uint8),
        "train_y": rng.integers(0, classes, N_TRAIN),
        "test_x": rng.integers(0, 256, (N_TEST, 3072), dtype=np.uint8),
        "test_y": rng.integers(0, classes, N_TEST),
    }


def cifar10_file(a: dict[str, np.ndarray]) -> bytes:
    """cifar-10-python.tar.gz: five training batches (10 examples each here) and a test batch."""
    members: dict[str, object] = {
        "cifar-10-batches-py/readme.html": b"<html></html>",
        "cifar-10-batches-py/batches.meta": {b"label_names": [b"x"] * 10},
    }
    for i in range(5):
        sl = slice(10 * i, 10 * (i + 1))
        members[f"cifar-10-batches-py/data_batch_{i + 1}"] = {
            b"data": a["train_x"][sl],
            b"labels": a["train_y"][sl].tolist(),
            b"batch_label": b"b",
        }
    members["cifar-10-batches-py/test_batch"] = {b"data": a["test_x"], b"labels": a["test_y"].tolist()}
    return tarball(members)


def cifar100_file(a: dict[str, np.ndarray]) -> bytes:
    """cifar-100-python.tar.gz: train and test pickles with fine (and coarse) labels."""
    return tarball(
        {
            "cifar-100-python/file.txt~": b"not a pickle",
            "cifar-100-python/meta": {b"fine_label_names": [b"x"] * 100},
            "cifar-100-python/train": {
                b"data": a["train_x"],
                b"fine_labels": a["train_y"].tolist(),
                b"coarse_labels": (a["train_y"] // 5).tolist(),
            },
            "cifar-100-python/test": {
                b"data": a["test_x"],
                b"fine_labels": a["test_y"].tolist(),
                b"coarse_labels": (a["test_y"] // 5).tolist(),
            },
        }
    )


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: "md5:" + hashlib.md5(data).hexdigest() for name, data in files.items()}


def place(data_dir: Path, dataset: str, files: dict[str, bytes]) -> dict[str, str]:
    """Write files where the loader looks for them; return the checksums to inject."""
    folder = real.dataset_dir(data_dir, dataset)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return md5s(files)


def standardised(train_u8: np.ndarray, u8: np.ndarray) -> np.ndarray:
    """The documented normalisation, computed independently: [0,1] then train-split channel stats."""
    t = train_u8.astype(np.float64) / 255
    mean, std = t.mean(axis=(0, 1, 2)), t.std(axis=(0, 1, 2))
    return (u8.astype(np.float64) / 255 - mean) / std


@pytest.mark.parametrize("loader,name", [(real.load_mnist, "mnist"), (real.load_fashion_mnist, "fashion_mnist")])
def test_mnist_like_loaders(tmp_path, loader, name):
    a = mnist_like(np.random.default_rng(0))
    sums = place(tmp_path, name, mnist_files(a))
    ds = loader(tmp_path, download=False, checksums=sums)
    assert ds.name == name and ds.augment == "none" and ds.num_classes == 10
    assert ds.x_train.shape == (N_TRAIN, 28, 28, 1) and ds.x_test.shape == (N_TEST, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.y_train, a["train_y"])
    np.testing.assert_array_equal(ds.y_test, a["test_y"])
    np.testing.assert_allclose(
        ds.x_test, standardised(a["train_x"][..., None], a["test_x"][..., None]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(), 1, atol=1e-4)


def test_cifar10_loader(tmp_path):
    a = cifar_arrays(np.random.default_rng(1), 10)
    sums = place(tmp_path, "cifar10", {"cifar-10-python.tar.gz": cifar10_file(a)})
    ds = real.load_cifar10(tmp_path, download=False, checksums=sums)
    assert ds.augment == "crop_flip" and ds.num_classes == 10
    assert ds.x_train.shape == (N_TRAIN, 32, 32, 3) and ds.x_test.shape == (N_TEST, 32, 32, 3)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int32
    assert 0 <= ds.y_train.min() and ds.y_train.max() < 10
    np.testing.assert_array_equal(ds.y_train, a["train_y"])
    hwc = a["train_x"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CIFAR rows are channel-major
    np.testing.assert_allclose(ds.x_train, standardised(hwc, hwc), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-5)


def test_cifar100_loader(tmp_path):
    a = cifar_arrays(np.random.default_rng(2), 100)
    sums = place(tmp_path, "cifar100", {"cifar-100-python.tar.gz": cifar100_file(a)})
    ds = real.load_cifar100(tmp_path, download=False, checksums=sums)
    assert ds.num_classes == 100 and ds.augment == "crop_flip"
    assert ds.x_train.shape == (N_TRAIN, 32, 32, 3) and ds.x_test.shape == (N_TEST, 32, 32, 3)
    np.testing.assert_array_equal(ds.y_test, a["test_y"])  # fine labels, not coarse
    assert ds.y_test.dtype == np.int32 and ds.y_test.max() < 100


def _load_with_broken_train_images(tmp_path, payload: bytes):
    files = mnist_files(mnist_like(np.random.default_rng(3)))
    files["train-images-idx3-ubyte.gz"] = payload
    return real.load_mnist(tmp_path, download=False, checksums=place(tmp_path, "mnist", files))


def test_truncated_idx_is_a_data_error(tmp_path):
    raw = idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), 0x803)
    with pytest.raises(DataError, match="truncated"):
        _load_with_broken_train_images(tmp_path, gzip.compress(raw[:-100]))


def test_wrong_magic_is_a_data_error(tmp_path):
    raw = idx_bytes(np.zeros((N_TRAIN, 28, 28), np.uint8), 0x801 + 0x100)  # 0x901: not IDX ubyte
    with pytest.raises(DataError, match="magic"):
        _load_with_broken_train_images(tmp_path, gzip.compress(raw))


def test_labels_file_where_images_expected_is_a_data_error(tmp_path):
    raw = idx_bytes(np.zeros(N_TRAIN, np.uint8), 0x801)
    with pytest.raises(DataError, match="magic"):
        _load_with_broken_train_images(tmp_path, gzip.compress(raw))


@pytest.mark.parametrize("payload", [b"not gzip at all", gzip.compress(b"x" * 1000)[:-12]])
def test_bad_gzip_is_a_data_error(tmp_path, payload):
    with pytest.raises(DataError, match="gzip"):
        _load_with_broken_train_images(tmp_path, payload)


def test_mismatched_counts_is_a_data_error(tmp_path):
    raw = idx_bytes(np.zeros((N_TRAIN - 1, 28, 28), np.uint8), 0x803)
    with pytest.raises(DataError, match="labels"):
        _load_with_broken_train_images(tmp_path, gzip.compress(raw))


def test_cifar_archive_without_test_batch_is_a_data_error(tmp_path):
    a = cifar_arrays(np.random.default_rng(4), 100)
    broken = tarball({"cifar-100-python/train": {b"data": a["train_x"], b"fine_labels": a["train_y"].tolist()}})
    sums = place(tmp_path, "cifar100", {"cifar-100-python.tar.gz": broken})
    with pytest.raises(DataError, match="cifar-100-python/test"):
        real.load_cifar100(tmp_path, download=False, checksums=sums)


def test_hand_placed_file_with_wrong_checksum_is_reported_and_kept(tmp_path):
    files = mnist_files(mnist_like(np.random.default_rng(5)))
    sums = place(tmp_path, "mnist", files)
    sums["t10k-labels-idx1-ubyte.gz"] = "md5:" + "0" * 32
    with pytest.raises(DataError, match="expected 0{32}"):
        real.load_mnist(tmp_path, download=False, checksums=sums)
    assert (real.dataset_dir(tmp_path, "mnist") / "t10k-labels-idx1-ubyte.gz").exists()


def test_registry_checksums_are_well_formed():
    from lbbench.data.download import parse_checksum

    for spec in real.SPECS.values():
        assert set(spec.checksums) == set(spec.files)
        for value in spec.checksums.values():
            assert parse_checksum(value)[0] == "md5"


def test_training_on_cifar_format_with_on_device_augmentation(tmp_path, monkeypatch):
    """End to end: a CIFAR-10 tarball in data_dir → train.run with crop+flip inside the compiled epoch."""
    import dataclasses

    from lbbench.config import Config
    from lbbench.training import loop as train

    files = {"cifar-10-python.tar.gz": cifar10_file(cifar_arrays(np.random.default_rng(7), 10))}
    sums = place(tmp_path / "data", "cifar10", files)
    monkeypatch.setitem(real.SPECS, "cifar10", dataclasses.replace(real.SPECS["cifar10"], checksums=sums))
    cfg = Config(
        dataset="cifar10",
        data_dir=str(tmp_path / "data"),
        download=False,
        model="tiny_c1",
        batch_size=10,
        epochs=1,
        sharpness=False,
        noise_scale_groups=2,
        workdir=str(tmp_path / "runs"),
        run_name="cifar",
    )
    result = train.run(cfg)
    assert result["status"] == "completed" and result["history"]["step"] == [5]
    assert np.isfinite(result["final"]["test_loss"])
