"""`Dataset`: train and test arrays plus what a model needs to know about them."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

Task = Literal["classification", "reconstruction", "anomaly"]

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test arrays with their shape facts.

    ``input_shape`` excludes the batch axis. ``num_classes`` is None unless ``task == "classification"``.
    For ``task == "anomaly"`` the train split holds normal samples only and ``y_test`` is 0 (normal) or
    1 (anomalous). ``synthetic`` says whether the data was generated (never mistake it for real data).

    Example:
        >>> from pytest_tinyml import datasets
        >>> ds = datasets.load("digits")
        >>> ds.x_train.shape[1:] == ds.input_shape
        True
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    num_classes: int | None
    task: Task
    synthetic: bool
    description: str = ""

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the four arrays' dtypes, shapes and bytes: equal data, equal fingerprint.

        The artifact cache keys trained models on it. Names and descriptions do not enter it.

        Example:
            >>> from pytest_tinyml import datasets
            >>> datasets.load("digits").fingerprint() == datasets.load("digits").fingerprint()
            True
        """
        digest = hashlib.sha256(b"pytest-tinyml dataset v1\n")
        for field in _ARRAYS:
            array = np.ascontiguousarray(getattr(self, field))
            header = f"{field}|{array.dtype.str}|{','.join(map(str, array.shape))}\n"
            digest.update(header.encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def head(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """A copy keeping the first ``n_train`` train and ``n_test`` test samples (None keeps all).

        Example:
            >>> from pytest_tinyml import datasets
            >>> len(datasets.load("digits").head(100, 20).x_test)
            20
        """
        return dataclasses.replace(
            self,
            x_train=self.x_train[:n_train],
            y_train=self.y_train[:n_train],
            x_test=self.x_test[:n_test],
            y_test=self.y_test[:n_test],
        )

    def reshaped(self, input_shape: tuple[int, ...], name: str | None = None) -> Dataset:
        """A copy whose inputs are reshaped to ``input_shape`` (same number of values per sample).

        Example:
            >>> from pytest_tinyml import datasets
            >>> datasets.load("digits").reshaped((8, 8, 1)).input_shape
            (8, 8, 1)
        """
        from pytest_tinyml.errors import DatasetError

        shape = tuple(int(d) for d in input_shape)
        if int(np.prod(shape)) != int(np.prod(self.input_shape)):
            raise DatasetError(
                f"dataset {self.name!r}: cannot reshape samples of shape {self.input_shape} to {shape} "
                f"({int(np.prod(self.input_shape))} values per sample vs {int(np.prod(shape))})"
            )
        reconstruction = self.task == "reconstruction" and self.y_train.shape == self.x_train.shape
        x_train = self.x_train.reshape((-1, *shape))
        x_test = self.x_test.reshape((-1, *shape))
        return dataclasses.replace(
            self,
            name=name or self.name,
            x_train=x_train,
            x_test=x_test,
            y_train=x_train if reconstruction else self.y_train,
            y_test=x_test if reconstruction else self.y_test,
            input_shape=shape,
        )

    def __repr__(self) -> str:
        kind = "synthetic" if self.synthetic else "real"
        return (
            f"Dataset({self.name!r}, {kind}, task={self.task}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, train={len(self.x_train)}, test={len(self.x_test)})"
        )
