"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from their published files, parsed by hand.

Each dataset is described by a `DatasetSpec` in `SPECS` (read at call time, so tests can swap a
spec or pass `checksums=` for their own small files). Files are cached in `data_dir/<spec.name>/`
(MNIST and Fashion-MNIST share file names, hence one folder per dataset).

Normalisation (all four): pixels are scaled to [0, 1], then each channel is standardised with the
mean and standard deviation of the *training* split (the test split reuses them), so test data never
leaks into preprocessing. Inputs are float32 channels-last, labels int32.

Checksum provenance (all MD5, the only digest these sources publish):
  * MNIST: torchvision `torchvision/datasets/mnist.py` (class MNIST, `resources`), the files served
    by its mirror https://ossci-datasets.s3.amazonaws.com/mnist/ (also its default base URL here).
  * Fashion-MNIST: the "Get the Data" table of the zalandoresearch/fashion-mnist README (the same
    values appear in torchvision's FashionMNIST.resources).
  * CIFAR-10 / CIFAR-100: https://www.cs.toronto.edu/~kriz/cifar.html (the `tgz_md5` values in
    torchvision `torchvision/datasets/cifar.py` agree).
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lbbench.data.dataset import DataError, Dataset
from lbbench.data.download import fetch, resolve_base_url

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (LeCun et al., "THE MNIST DATABASE")
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's files come from and how to verify them ("md5:<hex>" per file name)."""

    name: str
    files: tuple[str, ...]
    default_base_url: str
    env_var: str
    checksums: Mapping[str, str]


SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        MNIST_FILES,
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "LBBENCH_MNIST_URL",
        {
            "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        MNIST_FILES,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "LBBENCH_FASHION_MNIST_URL",
        {
            "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        ("cifar-10-python.tar.gz",),
        "https://www.cs.toronto.edu/~kriz/",
        "LBBENCH_CIFAR_URL",
        {"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"},
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        ("cifar-100-python.tar.gz",),
        "https://www.cs.toronto.edu/~kriz/",
        "LBBENCH_CIFAR_URL",
        {"cifar-100-python.tar.gz": "md5:eb9058c3a382ffc7106e4002c42a8d85"},
    ),
}


def dataset_dir(data_dir: str | Path, name: str) -> Path:
    """The cache folder of dataset `name` inside `data_dir` (where to place files by hand)."""
    return Path(data_dir) / name


def fetch_files(
    name: str,
    data_dir: str | Path,
    base_url: str | None = None,
    download: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Verified local paths of every file of dataset `name`, downloading what is missing."""
    spec = SPECS[name]
    url = resolve_base_url(spec.default_base_url, spec.env_var, base_url)
    sums = {**spec.checksums, **(checksums or {})}
    folder = dataset_dir(data_dir, name)
    if not download:
        _require_present(spec, folder, url, sums)
    hint = f"Or point ${spec.env_var} (or base_url) at a mirror that serves {', '.join(spec.files)}."
    return {f: fetch(f, url, folder, sums[f], download=download, hint=hint) for f in spec.files}


def _require_present(spec: DatasetSpec, folder: Path, url: str, sums: Mapping[str, str]) -> None:
    """With downloading off, name *every* missing file at once, with its URL and checksum."""
    missing = [f for f in spec.files if not (folder / f).exists()]
    if missing:
        lines = "".join(f"\n  {url}{f}  ({sums[f]})" for f in missing)
        raise DataError(
            f"{spec.name}: downloading is off (download=False) and {folder} lacks "
            f"{', '.join(missing)}. To place them by hand, download on a machine with internet "
            f"access:{lines}\nand copy them into {folder} under exactly those file names. "
            f"Or allow downloading, pointing ${spec.env_var} (or base_url) at a reachable mirror."
        )


def load_mnist(
    data_dir: str | Path, base_url: str | None = None, download: bool = True, checksums: Mapping[str, str] | None = None
) -> Dataset:
    """MNIST (LeCun et al. 1998): 60k/10k 28x28 grey digits → (N, 28, 28, 1), 10 classes."""
    return _load_idx_dataset("mnist", data_dir, base_url, download, checksums)


def load_fashion_mnist(
    data_dir: str | Path, base_url: str | None = None, download: bool = True, checksums: Mapping[str, str] | None = None
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): MNIST's format and sizes, clothing images, 10 classes."""
    return _load_idx_dataset("fashion_mnist", data_dir, base_url, download, checksums)


def load_cifar10(
    data_dir: str | Path, base_url: str | None = None, download: bool = True, checksums: Mapping[str, str] | None = None
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009): 50k/10k 32x32 colour images → (N, 32, 32, 3), 10 classes."""
    paths = fetch_files("cifar10", data_dir, base_url, download, checksums)
    names = tuple(f"cifar-10-batches-py/{b}" for b in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"))
    members = read_tar_pickles(paths["cifar-10-python.tar.gz"], names)
    train = [_cifar_batch(members[m], m, b"labels") for m in names[:5]]
    test = _cifar_batch(members[names[5]], names[5], b"labels")
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    return _build("cifar10", x_train, y_train, *test, num_classes=10, augment="crop_flip")


def load_cifar100(
    data_dir: str | Path, base_url: str | None = None, download: bool = True, checksums: Mapping[str, str] | None = None
) -> Dataset:
    """CIFAR-100 (Krizhevsky 2009) with the 100 fine labels → (N, 32, 32, 3)."""
    paths = fetch_files("cifar100", data_dir, base_url, download, checksums)
    names = ("cifar-100-python/train", "cifar-100-python/test")
    members = read_tar_pickles(paths["cifar-100-python.tar.gz"], names)
    train, test = (_cifar_batch(members[m], m, b"fine_labels") for m in names)
    return _build("cifar100", *train, *test, num_classes=100, augment="crop_flip")


def _load_idx_dataset(name, data_dir, base_url, download, checksums) -> Dataset:
    """Shared body of the MNIST-format loaders: four IDX gzip files → standardised Dataset."""
    paths = fetch_files(name, data_dir, base_url, download, checksums)
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"], IDX_IMAGES_MAGIC)
        labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"], IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{name}: {prefix} has {images.shape[0]} images but {labels.shape[0]} labels "
                f"in {dataset_dir(data_dir, name)}; delete those files to download them again"
            )
        splits += [images[..., None], labels]
    return _build(name, *splits, num_classes=10, augment="none")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse a gzip'd IDX file (header: 4-byte big-endian magic, one 4-byte size per dimension).

    Raises DataError (never a numpy/gzip traceback) on a bad gzip stream, a wrong magic number,
    or a payload shorter or longer than the header promises.
    """
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path} is not a valid gzip file ({e}); delete it so it is downloaded again") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DataError(
            f"{path}: not an IDX file with magic {magic:#010x} (found "
            f"{'nothing' if found is None else f'{found:#010x}'}); delete it and fetch it again"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != size:
        raise DataError(
            f"{path}: header says {dims} = {size} bytes of data, the file holds "
            f"{len(raw) - header} (truncated or corrupt); delete it and fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_tar_pickles(path: Path, wanted: tuple[str, ...]) -> dict[str, object]:
    """Unpickle the members named in `wanted` from a CIFAR tarball, in one sequential pass.

    Trust note: unpickling can run code; this is only called on archives whose published checksum
    `fetch` has just verified (or that the caller vouched for with its own checksum).
    """
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    with tar.extractfile(member) as f:
                        out[member.name] = pickle.load(f, encoding="bytes")
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"{path} is not a readable CIFAR python archive ({e}); delete it and fetch it again") from e
    missing = [m for m in wanted if m not in out]
    if missing:
        raise DataError(f"{path} lacks {missing}; is it the CIFAR *python* version? Delete it and fetch it again")
    return out


def _cifar_batch(batch: object, member: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch dict → (N, 32, 32, 3) uint8 images and int labels, checking its layout."""
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"CIFAR member {member!r} lacks b'data' or {label_key!r}: {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise DataError(f"CIFAR member {member!r}: data {data.shape}, labels {labels.shape}; want (N, 3072) and (N,)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std of uint8 images in [0, 1] units, from 256-bin histograms.

    Histograms keep memory at O(channels) instead of a float64 copy of the whole training set.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    flat = images.reshape(-1, images.shape[-1])
    means, stds = [], []
    for c in range(flat.shape[1]):
        counts = np.bincount(flat[:, c], minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    return np.array(means), np.array(stds)


def _build(name, x_train, y_train, x_test, y_test, num_classes: int, augment: str) -> Dataset:
    """Standardise uint8 images with training-split channel statistics and validate the Dataset."""
    mean, std = channel_stats(x_train)
    std = np.maximum(std, 1e-6)  # a constant channel would otherwise divide by zero

    def norm(x):
        out = x.astype(np.float32)  # in place from here: CIFAR's float copy alone is 600 MB
        out /= 255.0
        out -= mean.astype(np.float32)
        out /= std.astype(np.float32)
        return out

    return Dataset(
        name,
        norm(x_train),
        y_train.astype(np.int32),
        norm(x_test),
        y_test.astype(np.int32),
        num_classes=num_classes,
        augment=augment,
    ).validate()
