"""Datasets that need no download: MNIST-1D (generated once, cached) and the seed article's toy.

MNIST-1D (Greydanus 2020) is generated procedurally by the `mnist1d` package; we generate
70,000 examples (60,000 train / 10,000 test) so that batch 4096 really is a large batch
(6.8 % of the training set, near Keskar et al.'s 10 %), and cache them as one .npz file. The
validation set is generated apart, by the same generator with another seed, so the training set
stays the one every earlier result trained on (BUILD_NOTES: "A validation split").
"""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np

from lbbench.data.dataset import DataError, Dataset
from lbbench.runs import signals, ticker
from lbbench.runs.atomic import atomic_open

MNIST1D_TRAIN, MNIST1D_TEST, MNIST1D_SEED = 60_000, 10_000, 42
MNIST1D_VAL_SEED = 43


def generate_mnist1d(
    num_train: int = MNIST1D_TRAIN, num_test: int = MNIST1D_TEST, seed: int = MNIST1D_SEED
) -> dict[str, np.ndarray]:
    """Generate MNIST-1D with the package's default transforms (its own normalisation included).

    Generation takes seconds; a Ctrl-C stops it between two examples (a safe point per example)."""
    import mnist1d.data as m1d  # only when the cache is missing

    args = m1d.get_dataset_args()
    args.num_samples = num_train + num_test
    args.train_split = num_train / (num_train + num_test) if num_test else 1.0
    args.seed = seed
    state = np.random.get_state()  # mnist1d seeds numpy's global RNG; leave it as we found it
    transform = m1d.transform

    def checked(*a, **k):
        signals.check()
        return transform(*a, **k)

    m1d.transform = checked  # the package's per-example step: the same calls, in the same order
    try:
        d = m1d.make_dataset(args)
    finally:
        m1d.transform = transform
        np.random.set_state(state)
    return {
        "x_train": d["x"].astype(np.float32),
        "y_train": d["y"].astype(np.int32),
        "x_test": d["x_test"].astype(np.float32),
        "y_test": d["y_test"].astype(np.int32),
    }


def generated_counts(num_train: int, num_test: int) -> tuple[int, int]:
    """(train, test) sizes generate_mnist1d gives: mnist1d makes num_samples // 10 examples per
    class and splits them at int(total * train_split)."""
    total = (num_train + num_test) // 10 * 10
    train = int(total * (num_train / (num_train + num_test) if num_test else 1.0))
    return train, total - train


def _read_cache(path: str, counts: dict[str, int]) -> dict[str, np.ndarray] | None:
    """The arrays at `path` if readable and of the expected sizes, else None (said in one line).

    `counts` maps each array to its number of examples: a file of another size under the standard
    name (copied from another generation, truncated, hand-edited) is regenerated, never trained on."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in counts}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        print(f"lbbench: cached MNIST-1D at {path} is unreadable ({e}); regenerating it", file=sys.stderr)
        return None
    wrong = {k: len(a) for k, a in arrays.items() if a.ndim == 0 or len(a) != counts[k]}
    if wrong:
        print(
            f"lbbench: cached MNIST-1D at {path} holds {wrong} examples, not the {counts} its name "
            "promises; regenerating it",
            file=sys.stderr,
        )
        return None
    return arrays


def _cached(path: str, counts: dict[str, int], generate) -> dict[str, np.ndarray]:
    """The arrays cached at `path`, generated and written atomically when missing, unreadable or of
    the wrong size."""
    arrays = _read_cache(path, counts) if os.path.exists(path) else None
    if arrays is not None:
        return arrays
    print(f"lbbench: generating MNIST-1D into {path} (once; later runs read the cache)", file=sys.stderr)
    with ticker.still_running("generating MNIST-1D", lambda line: print(line, file=sys.stderr, flush=True)):
        arrays = generate()
    try:
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        raise DataError(
            f"cannot write the MNIST-1D cache {path}: {e}; set --data_dir or $LBBENCH_CACHE to a writable directory"
        ) from e
    return arrays


def load_mnist1d(
    cache_dir: str, num_train: int = MNIST1D_TRAIN, num_test: int = MNIST1D_TEST, num_val: int = 0
) -> Dataset:
    """MNIST-1D from `cache_dir`, generated (about 16 s on 2 CPU cores) and cached on first use.

    `num_val` > 0 adds a validation set drawn by the same generator with another seed: the same
    distribution, independent of train and test, and the training set unchanged. (mnist1d scales
    each generated set by its own mean and standard deviation; over thousands of examples the two
    scalings agree to a fraction of a percent.)
    """
    n_train, n_test = generated_counts(num_train, num_test)
    counts = {"x_train": n_train, "y_train": n_train, "x_test": n_test, "y_test": n_test}
    path = os.path.join(cache_dir, f"mnist1d_{num_train}_{num_test}_seed{MNIST1D_SEED}.npz")
    ds = Dataset("mnist1d", num_classes=10, **_cached(path, counts, lambda: generate_mnist1d(num_train, num_test)))
    if not num_val:
        return ds.validate()
    val_path = os.path.join(cache_dir, f"mnist1d_val_{num_val}_seed{MNIST1D_VAL_SEED}.npz")
    n_val = generated_counts(num_val, 0)[0]
    val_counts = {"x_train": n_val, "y_train": n_val}
    val = _cached(val_path, val_counts, lambda: generate_mnist1d(num_val, 0, MNIST1D_VAL_SEED))
    return ds.with_validation(val["x_train"], val["y_train"])


def load_random_toy(seed: int = 0, num_val: int = 0) -> Dataset:
    """The seed article's Keras toy: 1,000 x 20 uniform inputs with *random* binary labels.

    Labels are independent of the inputs, so test accuracy is 50 % in expectation for every
    batch size: no generalization gap between batch sizes can exist here, only noise. A validation
    set, if asked for, is drawn the same way from its own stream (train and test unchanged).
    """
    rng = np.random.default_rng(seed)
    ds = Dataset(
        "random",
        x_train=rng.random((1000, 20), dtype=np.float32),
        y_train=rng.integers(0, 2, 1000).astype(np.int32),
        x_test=rng.random((200, 20), dtype=np.float32),
        y_test=rng.integers(0, 2, 200).astype(np.int32),
        num_classes=2,
    ).validate()
    if not num_val:
        return ds
    val = np.random.default_rng([seed, 1])
    return ds.with_validation(val.random((num_val, 20), dtype=np.float32), val.integers(0, 2, num_val).astype(np.int32))
