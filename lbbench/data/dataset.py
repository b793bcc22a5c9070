"""The in-memory dataset every loader returns: numpy arrays, ready to place on device once."""

from __future__ import annotations

import dataclasses

import numpy as np

VALIDATION_SEED = 20240517  # carves real datasets' validation sets; fixed so every run holds out the same


class DataError(Exception):
    """A dataset is missing, corrupt or cannot be fetched; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays (float32 inputs, int32 labels) plus what models need to know.

    Inputs are channels-last: (N, length, channels) for 1-D signals, (N, H, W, C) for images.
    `augment` names the on-device augmentation the training loop may apply ("none" or "crop_flip").
    The validation split (empty until `with_validation`) is what studies select and stop on; the
    test split is read once per reported run (../STUDY_PROTOCOL: Shallue et al. 2019 §3).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    augment: str = "none"
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_val(self) -> int:
        return 0 if self.y_val is None else int(self.y_val.shape[0])

    def with_validation(self, x_val: np.ndarray, y_val: np.ndarray) -> Dataset:
        """The same dataset with a separately drawn validation set (the training set untouched)."""
        return dataclasses.replace(self, x_val=x_val, y_val=y_val).validate()

    def carve_validation(self, n: int, seed: int = VALIDATION_SEED) -> Dataset:
        """Hold out a fixed, seeded set of n training examples as validation (trained on no more).

        How real datasets get a validation split: their official splits are train and test only.
        """
        if not n:
            return self
        if n >= self.num_train:
            raise DataError(f"{self.name}: cannot hold out {n} validation examples from {self.num_train} training ones")
        perm = np.random.default_rng(seed).permutation(self.num_train)
        val, train = np.sort(perm[:n]), np.sort(perm[n:])
        return dataclasses.replace(
            self,
            x_train=self.x_train[train],
            y_train=self.y_train[train],
            x_val=self.x_train[val],
            y_val=self.y_train[val],
        ).validate()

    def subset(self, n: int, seed: int = 20190214) -> Dataset:
        """The same dataset trained on a fixed, seeded subset of n training examples (test set whole)."""
        if not n or n >= self.num_train:
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(self.num_train)[:n])
        return dataclasses.replace(self, x_train=self.x_train[idx], y_train=self.y_train[idx])

    def validate(self) -> Dataset:
        """Check shapes, dtypes and label ranges; raise DataError naming what is wrong."""
        splits = [("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)]
        if self.y_val is not None:
            splits.append(("validation", self.x_val, self.y_val))
        for split, x, y in splits:
            if x.shape[0] != y.shape[0]:
                raise DataError(f"{self.name}: {split} has {x.shape[0]} inputs but {y.shape[0]} labels")
            if x.dtype != np.float32 or y.dtype != np.int32:
                raise DataError(f"{self.name}: {split} dtypes are {x.dtype}/{y.dtype}, want float32/int32")
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f"{self.name}: {split} labels outside [0, {self.num_classes})")
            if not np.all(np.isfinite(x)):
                raise DataError(f"{self.name}: {split} inputs contain NaN or inf")
        return self
