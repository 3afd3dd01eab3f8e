"""`from_arrays`: the user's own data (numpy arrays or a finite tf.data.Dataset) as a `Dataset`."""

from __future__ import annotations

import numpy as np

from pytest_tinyml.datasets.dataset import Dataset
from pytest_tinyml.errors import DatasetError

DEFAULT_MAX_SAMPLES = 200_000
_TASKS = ("classification", "reconstruction", "anomaly")


def _is_tf_dataset(obj: object) -> bool:
    # Checked by type name so that plain numpy input never imports TensorFlow.
    return any(
        cls.__module__.startswith("tensorflow") and cls.__name__.endswith("Dataset")
        for cls in type(obj).__mro__
    )


def _materialise(ds, what: str, max_samples: int, batched: bool | None):
    """Read a finite tf.data.Dataset of ``x`` or ``(x, y)`` elements into numpy arrays."""
    import tensorflow as tf

    if int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise DatasetError(
            f"{what} is an infinite tf.data.Dataset (a .repeat() without count?): it cannot be materialised; "
            "pass dataset.take(n) or drop the repeat"
        )
    spec = ds.element_spec
    if isinstance(spec, dict):
        raise DatasetError(f"{what}: tf.data elements must be x or (x, y) tuples, got a dict {sorted(spec)}")
    parts = spec if isinstance(spec, tuple) else (spec,)
    if len(parts) not in (1, 2):
        raise DatasetError(f"{what}: tf.data elements must be x or (x, y), got tuples of {len(parts)}")
    if batched is None:  # .batch() without drop_remainder leaves the leading dimension unknown
        batched = parts[0].shape.rank is not None and parts[0].shape.rank > 0 and parts[0].shape[0] is None
    xs, ys, count = [], [], 0
    for element in ds.as_numpy_iterator():
        element = element if isinstance(element, tuple) else (element,)
        count += len(element[0]) if batched else 1
        if count > max_samples:
            raise DatasetError(
                f"{what} yields more than max_samples={max_samples} samples; pass dataset.take(n) or a larger "
                "max_samples= (everything is held in memory)"
            )
        xs.append(element[0])
        if len(element) == 2:
            ys.append(element[1])
    if not xs:
        raise DatasetError(f"{what} is an empty tf.data.Dataset")
    join = np.concatenate if batched else np.stack
    return join(xs), (join(ys) if ys else None)


def _infer_task(x: np.ndarray, y: np.ndarray | None) -> str:
    if y is None or (y.shape == x.shape and np.issubdtype(y.dtype, np.floating)):
        return "reconstruction"
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1 and np.allclose(y.sum(axis=1), 1.0):
        return "classification"  # one-hot or probabilities
    if y.ndim == 1 and np.all(np.mod(y, 1) == 0):
        return "classification"
    raise DatasetError(
        f"cannot tell the task from labels of dtype {y.dtype} and shape {y.shape}: pass task='classification', "
        "'reconstruction' or 'anomaly'"
    )


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot -> class index
    y = y.reshape(len(y), -1)
    if y.shape[1] != 1:
        raise DatasetError(f"{what}: classification labels must be one per sample, got shape {y.shape}")
    y = y[:, 0]
    if not np.all(np.mod(y, 1) == 0) or (len(y) and y.min() < 0):
        raise DatasetError(f"{what}: classification labels must be integers >= 0")
    return y.astype(np.int32)


def _check(x, y, what: str) -> None:
    if x.ndim < 2:
        raise DatasetError(
            f"{what}: x must have a sample axis and at least one feature axis, got shape {x.shape}"
        )
    if y is not None and len(y) != len(x):
        raise DatasetError(f"{what}: x has {len(x)} samples but y has {len(y)}")
    from pytest_tinyml.errors import ConfigError
    from pytest_tinyml.validation import check_finite

    try:
        check_finite(x, f"{what}: x")  # the one NaN/Inf check (count, first sample)
    except ConfigError as exc:
        raise DatasetError(str(exc)) from None


def _as_input(x, y, what, max_samples, batched):
    if _is_tf_dataset(x):
        if y is not None:
            raise DatasetError(
                f"{what}: a tf.data.Dataset yields (x, y) pairs itself; pass its labels as None"
            )
        x, y = _materialise(x, what, max_samples, batched)
    x = np.asarray(x)
    if x.dtype == np.float64:
        x = x.astype(np.float32)  # Keras and TFLite compute in float32
    y = None if y is None else np.asarray(y)
    _check(x, y, what)
    return x, y


def from_arrays(
    x_train,
    y_train=None,
    x_test=None,
    y_test=None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "user",
    task: str | None = None,
    num_classes: int | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    batched: bool | None = None,
    description: str = "",
) -> Dataset:
    """Wrap your own data as a :class:`Dataset`.

    ``x_train`` (and ``x_test``) may be numpy-like arrays or a finite ``tf.data.Dataset`` yielding ``x`` or
    ``(x, y)`` (then pass ``y_*=None``); it is materialised in memory, at most ``max_samples`` samples;
    ``batched`` says whether its elements are batches (default: guessed from an unknown leading dimension).
    Without a test split, a seeded split of ``test_fraction`` is made (stratified for classification).
    ``task`` is inferred when None: integer or one-hot labels -> classification; no labels, or labels equal
    in shape to x -> reconstruction (targets = inputs).

    Example:
        >>> import numpy as np
        >>> ds = from_arrays(np.random.rand(50, 4), np.arange(50) % 2)
        >>> ds.num_classes, len(ds.x_train), len(ds.x_test)
        (2, 40, 10)
    """
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"dataset {name!r}: test_fraction must be in (0, 1), got {test_fraction!r}")
    if task is not None and task not in _TASKS:
        raise DatasetError(f"dataset {name!r}: task must be one of {', '.join(_TASKS)}, got {task!r}")
    x_train, y_train = _as_input(x_train, y_train, f"dataset {name!r} (train)", max_samples, batched)
    if x_test is None and y_test is not None:
        raise DatasetError(f"dataset {name!r}: y_test given without x_test")
    if x_test is not None:
        x_test, y_test = _as_input(x_test, y_test, f"dataset {name!r} (test)", max_samples, batched)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DatasetError(
                f"dataset {name!r}: test samples have shape {x_test.shape[1:]} but train samples {x_train.shape[1:]}"
            )
    task = task or _infer_task(x_train, y_train)
    if task == "reconstruction":
        y_train = x_train if y_train is None else y_train
        y_test = x_test if (x_test is not None and y_test is None) else y_test
    elif y_train is None:
        raise DatasetError(f"dataset {name!r}: task {task!r} needs labels y_train")
    if task in ("classification", "anomaly"):
        y_train = _labels(y_train, f"dataset {name!r} (train)")
        y_test = None if y_test is None else _labels(y_test, f"dataset {name!r} (test)")
    if x_test is None:
        x_train, x_test, y_train, y_test = _split(x_train, y_train, task, test_fraction, seed, name)
    elif y_test is None:
        raise DatasetError(f"dataset {name!r}: x_test given without y_test")
    if task == "classification":
        seen = int(max(y_train.max(), y_test.max())) + 1
        if num_classes is None:
            num_classes = seen
        elif num_classes < seen:
            raise DatasetError(f"dataset {name!r}: num_classes={num_classes} but labels go up to {seen - 1}")
    else:
        num_classes = None
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=num_classes,
        task=task,
        synthetic=False,
        description=description or f"user data ({len(x_train)} train / {len(x_test)} test samples)",
    )


def _split(x, y, task, test_fraction, seed, name):
    from sklearn.model_selection import train_test_split

    n_test = max(1, round(len(x) * test_fraction))
    if len(x) - n_test < 1:
        raise DatasetError(f"dataset {name!r}: {len(x)} samples are too few to split off a test set")
    stratify = None
    if task == "classification":
        counts = np.bincount(y)
        present = np.count_nonzero(counts)
        # sklearn stratifies only when every class can appear on both sides
        if counts[counts > 0].min() >= 2 and n_test >= present and len(x) - n_test >= present:
            stratify = y
    return train_test_split(x, y, test_size=n_test, random_state=seed, stratify=stratify)
