"""The one place that checks data before pytest-tinyml uses it: inputs, labels and calibration samples.

Every assertion (``assert_accuracy_drop``, ``assert_parity``), ``tinyml_cache.fit``, the ``optimize`` recipes
and ``convert``'s representative data go through here, so a bad array is refused the same way everywhere:

- NaN or Inf in inputs: refused, naming how many values and the first sample that has one;
- a sample shape other than the model's: refused with the expected shape. An array with the right number
  of elements in another layout (8x8 for 64, NCHW for NHWC) is reshaped only when asked (``reshape=True``):
  a silent reshape of NCHW data into an NHWC model scrambles every image and still "passes";
- class labels: integers (integral floats are accepted, 2.5 is not) in ``[0, num_classes)``, where the
  number of classes is the width of the model's output; one-hot labels must have that width.

Example:
    >>> import numpy as np
    >>> check_inputs(np.zeros((4, 64)), sample_shape=(64,)).shape
    (4, 64)
    >>> check_inputs(np.full((2, 3), np.nan), sample_shape=(3,))
    Traceback (most recent call last):
    ...
    pytest_tinyml.errors.ConfigError: x has 6 NaN/Inf values (first in sample #0): ...
"""

from __future__ import annotations

from typing import Any

from pytest_tinyml.errors import ConfigError

__all__ = ["check_inputs", "check_labels", "check_binary_labels", "num_classes_of", "representative_samples",
           "sample_shape_of"]


def _np():
    import numpy as np

    return np


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _artifact_of(model):
    """The TFLite artifact behind ``model`` (artifact, resolved assertion model), or None."""
    artifact = getattr(model, "artifact", None)
    if artifact is not None and hasattr(artifact, "inputs"):
        return artifact
    if hasattr(model, "content") and hasattr(model, "inputs") and hasattr(model, "outputs"):
        return model
    return None


def _keras_of(model):
    obj = getattr(model, "obj", model)  # a resolved assertion model carries the Keras model in .obj
    if getattr(model, "kind", "keras") != "keras":
        return None
    return obj if hasattr(obj, "layers") and hasattr(obj, "inputs") else None


def sample_shape_of(model) -> tuple | None:
    """The shape of one input sample (no batch axis) of a single-input model, None when unknown.

    Works for Keras / tf_keras models and TFLite artifacts (and the assertions' resolved models); ``None``
    entries are free dimensions.

    Example:
        >>> sample_shape_of(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()]))   # doctest: +SKIP
        (8, 8, 1)
    """
    artifact = _artifact_of(model)
    if artifact is not None:
        inputs = list(getattr(artifact, "inputs", None) or [])
        if len(inputs) != 1:
            return None
        return tuple(int(d) if int(d) > 0 else None for d in tuple(inputs[0].shape)[1:])
    keras_model = _keras_of(model)
    if keras_model is not None:
        inputs = getattr(keras_model, "inputs", None) or []
        if len(inputs) != 1:
            return None
        return tuple(None if d is None else int(d) for d in tuple(inputs[0].shape)[1:])
    return None


def num_classes_of(model) -> int | None:
    """The width of a single-output model's last axis (2 for a one-unit sigmoid head), None when unknown."""
    artifact = _artifact_of(model)
    shape = None
    if artifact is not None:
        outputs = list(getattr(artifact, "outputs", None) or [])
        shape = tuple(outputs[0].shape) if len(outputs) == 1 else None
    else:
        keras_model = _keras_of(model)
        if keras_model is not None:
            outputs = getattr(keras_model, "outputs", None) or []
            shape = tuple(outputs[0].shape) if len(outputs) == 1 else None
    if not shape or shape[-1] is None:
        return None
    width = int(shape[-1])
    return 2 if width == 1 else width


def _matches(shape, expected) -> bool:
    return len(shape) == len(expected) and all(e is None or int(s) == int(e) for s, e in zip(shape, expected, strict=True))


def _elements(shape) -> int | None:
    total = 1
    for d in shape:
        if d is None:
            return None
        total *= int(d)
    return total


def _first_bad_sample(bad) -> int:
    np = _np()
    flat = bad.reshape(bad.shape[0], -1) if bad.ndim > 1 else bad.reshape(-1, 1)
    return int(np.flatnonzero(flat.any(axis=1))[0])


def check_finite(array, role: str = "x") -> None:
    """``ConfigError`` when a float array holds NaN or Inf: how many, and the first sample that has one."""
    np = _np()
    if array.dtype.kind != "f":
        return
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        nan = int(np.isnan(array).sum())
        raise ConfigError(
            f"{role} has {count} NaN/Inf values (first in sample #{_first_bad_sample(bad)}): {nan} NaN, "
            f"{count - nan} Inf. A model's score on such data means nothing: clean or drop those samples "
            "(np.isfinite(x).all(axis=tuple(range(1, x.ndim))) selects the good ones)"
        )


def check_inputs(x, model=None, *, role: str = "x", reshape: bool = False, sample_shape=None):
    """``x`` as a float32 array whose samples have the model's input shape; ``ConfigError`` otherwise.

    ``sample_shape`` (one sample, no batch axis) defaults to :func:`sample_shape_of` ``(model)``; with
    neither, only the numeric type and NaN/Inf are checked. ``reshape=True`` reshapes samples with the right
    number of elements in another shape (e.g. flat 64 into 8x8x1); without it that is an error.

    Example:
        >>> check_inputs(np.zeros((2, 8, 8)), sample_shape=(64,), reshape=True).shape    # doctest: +SKIP
        (2, 64)
    """
    np = _np()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{role} must be an array of input samples, got {type(x).__name__}: {exc}") from None
    if array.dtype.kind not in "biuf" or array.ndim == 0 or len(array) == 0:
        raise ConfigError(
            f"{role} must be a non-empty numeric array of input samples (first axis = sample), "
            f"got {type(x).__name__} of shape {array.shape} and dtype {array.dtype}"
        )
    array = array.astype(np.float32, copy=False)
    check_finite(array, role)
    expected = tuple(sample_shape) if sample_shape is not None else sample_shape_of(model)
    if expected is None or _matches(array.shape[1:], expected):
        return array
    wanted = "(n, " + _shape_text(expected)[1:].rstrip(",)") + ")"
    if array.shape == tuple(expected) and None not in expected:
        raise ConfigError(
            f"{role} has shape {array.shape}, one sample of the model's input {_shape_text(expected)}: give "
            f"an array of samples {wanted} (x[None] for a single sample)"
        )
    same_size = _elements(expected) is not None and _elements(array.shape[1:]) == _elements(expected)
    if same_size and reshape:
        return array.reshape((array.shape[0], *expected))
    message = (f"{role} has samples of shape {_shape_text(array.shape[1:])}, the model expects "
               f"{_shape_text(expected)} per sample: give an array of shape {wanted}")
    if same_size:
        message += (
            ". The element count matches: if each sample is the same values in another shape (e.g. flattened), "
            f"reshape it (x.reshape(len(x), {', '.join(str(d) for d in expected)}), or reshape=True in the "
            "assertions); if it is another layout (channels first, NCHW, for a channels-last NHWC "
            "model) transpose it instead (x.transpose(0, 2, 3, 1)): a reshape would scramble it"
        )
    raise ConfigError(message)


def check_labels(y, model=None, *, n: int | None = None, role: str = "y", num_classes: int | None = None):
    """Class labels checked against the model's classes; returns them as an integer (or one-hot) array.

    Integer labels must lie in ``[0, num_classes)``; float labels must be integral (3.0, never 2.5); one-hot
    labels must be ``num_classes`` wide. ``num_classes`` defaults to :func:`num_classes_of` ``(model)``.

    Example:
        >>> check_labels([0, 1, 12], num_classes=10)
        Traceback (most recent call last):
        ...
        pytest_tinyml.errors.ConfigError: y has 1 labels outside [0, 10) (first: sample #2, label 12): ...
    """
    np = _np()
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf" or labels.ndim == 0:
        raise ConfigError(f"{role} must be a numeric array of class labels, got {labels.dtype} of shape {labels.shape}")
    if n is not None and len(labels) != n:
        raise ConfigError(f"x has {n} samples but {role} has {len(labels)} labels: give one label per sample")
    classes = num_classes if num_classes is not None else num_classes_of(model)
    if labels.dtype.kind == "f":
        check_finite(labels, role)
    one_hot = labels.ndim == 2 and labels.shape[1] > 1
    if one_hot:
        if classes is not None and labels.shape[1] != classes:
            raise ConfigError(
                f"{role} is one-hot with {labels.shape[1]} columns but the model has {classes} output classes: "
                f"give labels of shape (n, {classes}) or integer labels of shape (n,)"
            )
        return labels
    if labels.ndim > 1 and labels.size == len(labels):
        labels = labels.reshape(len(labels))  # (n, 1) column of labels
    if labels.ndim != 1:
        raise ConfigError(f"{role} has shape {labels.shape}: give integer labels of shape (n,) or one-hot (n, classes)")
    if labels.dtype.kind == "f":
        fractional = np.flatnonzero(labels != np.round(labels))
        if fractional.size:
            first = int(fractional[0])
            raise ConfigError(
                f"{role} has {fractional.size} non-integral float labels (first: sample #{first}, label "
                f"{labels[first].item()!r}): class labels are whole numbers; truncating them would change the classes. "
                "Give integer labels (y.astype(int) only if they are whole numbers stored as floats)"
            )
        labels = labels.astype(np.int64)
    if classes is not None:
        outside = np.flatnonzero((labels < 0) | (labels >= classes))
        if outside.size:
            first = int(outside[0])
            raise ConfigError(
                f"{role} has {outside.size} labels outside [0, {classes}) (first: sample #{first}, label "
                f"{labels[first].item()}): the model has {classes} output classes. Give labels 0..{classes - 1} "
                "(labels starting at 1? subtract 1)"
            )
    return labels


def check_binary_labels(y, *, n: int | None = None, role: str = "y"):
    """Anomaly labels: 0 (normal) or 1 (anomaly), one per sample."""
    return check_labels(y, n=n, role=role, num_classes=2)


# --- representative (calibration) data ---------------------------------------------------------------------

REPRESENTATIVE_FORMS = (
    "an array (n, *input_shape), a list of samples, a list of [sample] lists, a generator or a function "
    "returning one (yielding [x[i:i+1]] as TensorFlow's representative_dataset does), a tf.data.Dataset, or "
    "a pytest_tinyml Dataset"
)


def _unwrap_item(item, index: int):
    np = _np()
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (list, tuple)):
        if len(item) != 1:
            raise ConfigError(
                f"representative sample #{index} holds {len(item)} arrays: only single-input models are "
                "supported; yield one array per sample ([x[i:i+1]]), not (x, y) pairs"
            )
        item = item[0]
    try:
        return np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"representative sample #{index} is not numeric ({type(item).__name__}): {exc}") from None


def _collect(items, sample_shape, limit: int):
    """Stack the samples of an iterable of items; each item is one sample or a batch of them."""
    np = _np()
    samples: list = []
    reference = tuple(sample_shape) if sample_shape is not None else None
    for index, item in enumerate(items):
        array = _unwrap_item(item, index)
        if reference is None:
            # No model to ask: an item with a leading axis of 1 is one sample with its batch axis (TF's
            # convention); anything else is one sample.
            reference = array.shape[1:] if array.ndim >= 2 and array.shape[0] == 1 else array.shape
        if _matches(array.shape, reference):
            samples.append(array)
        elif array.ndim == len(reference) + 1 and _matches(array.shape[1:], reference):
            samples.extend(array)  # a batch: (1, *shape) as TF yields, or (k, *shape) from a batched tf.data
        else:
            raise ConfigError(
                f"representative sample #{len(samples)} (item #{index}) has shape {array.shape}; the model "
                f"expects samples of shape {_shape_text(reference)} (or a batch of them, "
                f"(1, {_shape_text(reference)[1:]}). Give {REPRESENTATIVE_FORMS}"
            )
        if len(samples) >= limit:
            break  # enough to thin from; a generator may be endless
    if not samples:
        raise ConfigError(f"representative data is empty: give {REPRESENTATIVE_FORMS}")
    return np.stack(samples, axis=0)


def representative_samples(data: Any, *, sample_shape=None, max_samples: int = 500):
    """Calibration samples as one float32 array ``(n, *sample_shape)``, whatever form they came in.

    An array, a list of samples, a list of ``[sample]`` lists, a generator (or a function returning one), a
    ``tf.data.Dataset`` and a ``Dataset`` (its ``x_train``) holding the same samples give the same array, so
    the same artifact. NaN/Inf or a sample of another shape is a ``ConfigError`` naming the first bad sample
    and the expected shape. More than ``max_samples`` samples are thinned to ``max_samples`` evenly spaced
    ones, so the whole set is still covered. ``sample_shape`` is the model's input shape without the batch
    axis (inferred from the data when None).

    Example:
        >>> representative_samples([np.zeros(64)] * 150, sample_shape=(64,)).shape
        (150, 64)
    """
    np = _np()
    if data is None:
        return None
    if hasattr(data, "x_train"):  # a pytest_tinyml Dataset
        data = data.x_train
    if callable(data) and not hasattr(data, "shape") and not hasattr(data, "__iter__"):
        data = data()
    if hasattr(data, "shape") and hasattr(data, "dtype") and not _is_tf_dataset(data):
        array = np.asarray(data, dtype=np.float32)
        if array.ndim == 0 or array.shape[0] == 0:
            raise ConfigError(f"representative data has shape {array.shape}: need samples along the first axis")
        if sample_shape is not None and not _matches(array.shape[1:], sample_shape):
            if _matches(array.shape, sample_shape):
                array = array[None]
            else:
                raise ConfigError(
                    f"representative data has shape {array.shape}: the model expects samples of shape "
                    f"{_shape_text(sample_shape)}, so an array of shape (n, {_shape_text(sample_shape)[1:]}"
                )
    elif hasattr(data, "__iter__"):
        array = _collect(iter(data), sample_shape, 20 * max_samples)
    else:
        raise ConfigError(f"representative data is a {type(data).__name__}: give {REPRESENTATIVE_FORMS}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ConfigError(
            f"representative data has {int(bad.sum())} NaN/Inf values (first in sample #{_first_bad_sample(bad)}):"
            " calibration would record a NaN range and quantize nothing. Drop or clean those samples"
        )
    if array.shape[0] > max_samples:
        index = np.linspace(0, array.shape[0] - 1, max_samples).round().astype(int)
        array = array[index]
    return np.ascontiguousarray(array)


def _is_tf_dataset(value) -> bool:
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec")
