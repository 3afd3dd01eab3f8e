"""Hypothesis strategies that draw model inputs inside a model's representative range (extra ``hypothesis``).

A quantized model only promises parity with its float original for inputs inside the range it was
calibrated on: outside it, the int8 input clips and any two models may disagree. These strategies draw
batches inside that range, for parity property tests:

* :func:`inputs_for` draws each feature uniformly between a low and a high bound taken from the model's
  input quantization (a quantized ``TFLiteArtifact``), or from the data's per-feature min and max (a
  ``Dataset`` or an array of samples);
* :func:`blends_of` draws convex blends of two real samples, which stay near the data and so near the
  activations the model was calibrated on.

Example:
    >>> from hypothesis import given
    >>> from pytest_tinyml.strategies import inputs_for
    >>> @given(inputs_for(int8_model, samples=8))  # doctest: +SKIP
    ... def test_parity(x):
    ...     assert_parity(float_model, int8_model, x, max_error_steps=3)
"""

from __future__ import annotations

import numpy as np

from pytest_tinyml.errors import ConfigError

try:
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigError(
        "pytest_tinyml.strategies needs Hypothesis: pip install 'pytest-tinyml[hypothesis]'"
    ) from exc

__all__ = ["blends_of", "inputs_for", "representative_range"]

BATCH_SIZES = st.integers(1, 16)


def _samples_of(source) -> np.ndarray | None:
    """Training samples of a Dataset, or the array itself; None when ``source`` is neither."""
    x = getattr(source, "x_train", None)
    if x is None and isinstance(source, (np.ndarray, list, tuple)):
        x = source
    if x is None:
        return None
    array = np.asarray(x)
    if array.dtype.kind not in "biuf" or array.ndim < 2 or len(array) == 0:
        raise ConfigError(
            f"samples must be a non-empty numeric array (samples, features...), got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    return array.astype(np.float64)


def representative_range(source) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(low, high)`` bounds of one input sample, as float64 arrays of the sample's shape.

    ``source`` is a quantized ``TFLiteArtifact`` (the bounds are what its int8/uint8 input can represent:
    ``(qmin - zero_point) * scale`` to ``(qmax - zero_point) * scale``), a ``Dataset`` (the min and max
    of ``x_train`` per feature) or an array of samples (its min and max per feature).

    Example:
        >>> import numpy as np
        >>> low, high = representative_range(np.array([[0.0, 5.0], [2.0, 1.0]]))
        >>> low.tolist(), high.tolist()
        ([0.0, 1.0], [2.0, 5.0])
    """
    samples = _samples_of(source)
    if samples is not None:
        return samples.min(axis=0), samples.max(axis=0)
    inputs = getattr(source, "inputs", None)
    if not inputs:
        raise ConfigError(
            f"cannot tell the input range of a {type(source).__name__}: give a quantized TFLiteArtifact, "
            "a Dataset or an array of samples"
        )
    quant = inputs[0]
    scale = np.asarray(getattr(quant, "scale", 0.0), dtype=np.float64).reshape(-1)
    try:
        info = np.iinfo(np.dtype(getattr(quant, "dtype", "float32")))
    except (TypeError, ValueError):
        info = None
    if info is None or not scale.size or float(scale.max()) <= 0:
        raise ConfigError(
            f"the model's input {getattr(quant, 'name', '')!r} is not quantized (dtype "
            f"{getattr(quant, 'dtype', '?')}), so it has no representative range of its own: "
            "pass the Dataset or the calibration samples instead"
        )
    zero_point = float(np.asarray(getattr(quant, "zero_point", 0)).reshape(-1)[0])
    shape = tuple(int(d) for d in getattr(quant, "shape", ())[1:])
    low = np.full(shape, (info.min - zero_point) * float(scale[0]))
    high = np.full(shape, (info.max - zero_point) * float(scale[0]))
    return low, high


def _count(samples) -> st.SearchStrategy[int]:
    if isinstance(samples, st.SearchStrategy):
        return samples
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ConfigError(f"samples must be a whole number >= 1 or a strategy of them, got {samples!r}")
    return st.just(int(samples))


def inputs_for(source, *, samples=BATCH_SIZES) -> st.SearchStrategy[np.ndarray]:
    """Batches of float32 inputs, each feature uniform inside :func:`representative_range` of ``source``.

    ``samples`` is the batch size, or a strategy of batch sizes. Shrinking moves features to their low
    bound, so a minimal failing example is easy to read.

    Example:
        >>> from hypothesis import given
        >>> @given(inputs_for(digits, samples=4))  # doctest: +SKIP
        ... def test_in_range(x):
        ...     assert x.shape == (4, *digits.input_shape)
    """
    low, high = representative_range(source)
    low32, high32 = low.astype(np.float32), high.astype(np.float32)
    span = high - low

    def scale(unit: np.ndarray) -> np.ndarray:
        # float32 rounding may step a hair past a bound: clip back inside.
        return np.clip((low + unit * span).astype(np.float32), low32, high32)

    unit = st.floats(0.0, 1.0, width=32)
    return _count(samples).flatmap(
        lambda n: arrays(np.float32, (n, *low.shape), elements=unit).map(scale)
    )


def blends_of(source, *, samples=BATCH_SIZES) -> st.SearchStrategy[np.ndarray]:
    """Batches of convex blends ``(1 - t) * a + t * b`` of two real samples ``a``, ``b`` of ``source``.

    ``source`` is a ``Dataset`` (its ``x_train``) or an array of samples. Blends stay inside the data's
    range and near its distribution, where a well-calibrated quantized model should agree with its float
    original.

    Example:
        >>> import numpy as np
        >>> blends_of(np.zeros((3, 4)), samples=2).example().shape  # doctest: +SKIP
        (2, 4)
    """
    data = _samples_of(source)
    if data is None:
        raise ConfigError(f"blends_of needs a Dataset or an array of samples, got {type(source).__name__}")
    index = st.integers(0, len(data) - 1)
    one = st.tuples(index, index, st.floats(0.0, 1.0)).map(
        lambda pick: (1.0 - pick[2]) * data[pick[0]] + pick[2] * data[pick[1]]
    )
    return _count(samples).flatmap(
        lambda n: st.lists(one, min_size=n, max_size=n).map(lambda rows: np.stack(rows).astype(np.float32))
    )
