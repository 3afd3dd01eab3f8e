"""Datasets for the zoo: real offline data (scikit-learn's digits), seeded synthetic data per task, the public
benchmarks when a local copy or the network allows, and the user's own arrays.

Example:
    >>> from pytest_tinyml import datasets
    >>> ds = datasets.load("digits")
    >>> ds.input_shape, ds.num_classes, ds.synthetic
    ((64,), 10, False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from pytest_tinyml.datasets import public, synthetic, synthetic_images
from pytest_tinyml.datasets._arrays import from_arrays
from pytest_tinyml.datasets.dataset import Dataset
from pytest_tinyml.errors import DatasetError

__all__ = ["Dataset", "digits", "from_arrays", "load", "names"]


def digits(
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    *,
    test_fraction: float = 0.2,
    image: bool = False,
) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real samples, offline), scaled to [0, 1].

    Flat (64,) by default, (8, 8, 1) with ``image=True``; a seeded stratified train/test split (1,438 / 359),
    of which ``n_train`` / ``n_test`` keep the first (already shuffled) samples.

    Example:
        >>> digits().x_train.shape
        (1438, 64)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    shape = (8, 8, 1) if image else (64,)
    ds = from_arrays(
        x.reshape((-1, *shape)),
        bunch.target.astype(np.int32),
        test_fraction=test_fraction,
        seed=seed,
        name="digits_image" if image else "digits",
        task="classification",
        num_classes=10,
        description="scikit-learn's 8x8 handwritten digits (real data, UCI optdigits test set), pixels / 16.",
    )
    for arg, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DatasetError(
                f"dataset {ds.name!r}: {arg} must be a positive integer or None, got {value!r}"
            )
    return ds.head(n_train, n_test)


def _digits_image(
    n_train: int | None = None, n_test: int | None = None, seed: int = 0, *, test_fraction: float = 0.2
) -> Dataset:
    return digits(n_train, n_test, seed, test_fraction=test_fraction, image=True)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "digits_image": _digits_image,
    "keywords": synthetic.keywords,
    "keywords_seq": synthetic.keywords_seq,
    "gestures": synthetic.gestures,
    "anomaly": synthetic.anomaly,
    "images32": synthetic_images.images32,
    "vww96": synthetic_images.vww96,
    "mnist": public.mnist,
    "cifar10": public.cifar10,
    "speech_commands": public.speech_commands,
}
_OFFLINE = ("digits", "digits_image", "keywords", "keywords_seq", "gestures", "anomaly", "images32", "vww96")


def names(offline_only: bool = False) -> list[str]:
    """Dataset names ``load`` accepts; ``offline_only`` leaves out the ones that need a download.

    Example:
        >>> "keywords" in names(offline_only=True)
        True
    """
    return list(_OFFLINE) if offline_only else list(_LOADERS)


def load(name: str, **kwargs) -> Dataset:
    """Load dataset ``name``; ``kwargs`` go to its loader (``n_train``, ``n_test``, ``seed``, ...).

    Example:
        >>> load("keywords", n_train=120, n_test=24, seed=1).x_train.shape
        (120, 49, 10, 1)
    """
    try:
        loader = _LOADERS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(_LOADERS)}") from None
    accepted = inspect.signature(loader).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise DatasetError(
            f"dataset {name!r} takes no argument {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    return loader(**kwargs)
