"""Model-quality metrics as plain numpy functions, usable with or without pytest.

Two families:

* task metrics on labels: :func:`accuracy`, :func:`top_k_accuracy`, :func:`reconstruction_error` and
  :func:`roc_auc` (the anomaly score of an autoencoder is its reconstruction error);
* float-vs-quantized parity between a reference output and a candidate output of the same inputs:
  :func:`top1_agreement`, :func:`max_error_steps`, :func:`rmse`, :func:`mae`, :func:`relative_l2`,
  :func:`cosine_similarity`, :func:`snr_db`, :func:`saturation_rate`, :func:`is_constant_output`, and
  :func:`compare_outputs` that computes them all.

Outputs are arrays whose first axis is the input sample. Every function takes array-likes and returns a
Python ``float`` (or ``bool``), so results print and serialize plainly.

Example:
    >>> import numpy as np
    >>> ref = np.array([[0.1, 0.9], [0.8, 0.2]])
    >>> top1_agreement(ref, ref + 0.01)
    1.0
"""

from __future__ import annotations

import math

import numpy as np

from pytest_tinyml.errors import ConfigError

__all__ = [
    "accuracy",
    "clipping_rate",
    "compare_outputs",
    "cosine_similarity",
    "is_constant_output",
    "mae",
    "max_error_steps",
    "output_scale",
    "predicted_classes",
    "quant_range",
    "reconstruction_error",
    "relative_l2",
    "rmse",
    "roc_auc",
    "saturation_rate",
    "snr_db",
    "top1_agreement",
    "top_k_accuracy",
]


def _array(value, name: str) -> np.ndarray:
    if isinstance(value, (list, tuple)) and len(value) == 1 and np.ndim(value[0]) >= 1:
        value = value[0]  # a model with one output returned as a one-element list
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be an array of numbers, got {type(value).__name__}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must be an array of numbers, got an array of dtype {array.dtype}")
    return array


def _pair(reference, candidate) -> tuple[np.ndarray, np.ndarray]:
    ref = _array(reference, "reference").astype(np.float64)
    cand = _array(candidate, "candidate").astype(np.float64)
    if ref.shape != cand.shape:
        if ref.size == cand.size and ref.shape[:1] == cand.shape[:1]:
            cand = cand.reshape(ref.shape)  # e.g. (n, 10) vs (n, 1, 10) from a runtime that keeps a unit axis
        else:
            raise ConfigError(
                f"reference and candidate outputs differ in shape: {ref.shape} vs {cand.shape}; "
                "they must be outputs of the same model on the same inputs"
            )
    if ref.size == 0:
        raise ConfigError("reference and candidate outputs are empty: give at least one input sample")
    return ref, cand


def _labels(y, name: str) -> np.ndarray:
    """Class indices from labels (n,), (n, 1) or one-hot (n, classes)."""
    array = _array(y, name)
    if array.ndim == 2 and array.shape[1] > 1:
        return array.argmax(axis=1)
    return array.reshape(len(array)).astype(np.int64)


def predicted_classes(outputs, name: str = "outputs") -> np.ndarray:
    """Top-1 classes of class scores; a single score column is a binary classifier thresholded at 0.5.

    Example:
        >>> predicted_classes([[0.1, 0.9], [0.8, 0.2]]).tolist(), predicted_classes([[0.7], [0.2]]).tolist()
        ([1, 0], [1, 0])
    """
    array = _array(outputs, name)
    if array.ndim == 0:
        raise ConfigError(f"{name} must have a sample axis, got a scalar")
    flat = array.reshape(len(array), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > 0.5).astype(np.int64)
    return flat.argmax(axis=1)


def accuracy(y_true, outputs) -> float:
    """Share of samples whose predicted class is the label.

    ``outputs`` are class scores (n, classes) (top-1 is taken), one binary score per sample (> 0.5 is
    class 1), or predicted class indices (n,) of an integer dtype. ``y_true`` is indices or one-hot.

    Example:
        >>> accuracy([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        0.6666666666666666
    """
    labels = _labels(y_true, "y_true")
    scores = _array(outputs, "outputs")
    predicted = scores.astype(np.int64) if scores.ndim == 1 and scores.dtype.kind in "biu" else (
        predicted_classes(scores, "outputs"))
    if len(predicted) != len(labels):
        raise ConfigError(f"{len(labels)} labels but {len(predicted)} predictions: give one label per input sample")
    if len(labels) == 0:
        raise ConfigError("accuracy of zero samples is undefined: give at least one sample")
    return float(np.mean(predicted == labels))


def top_k_accuracy(y_true, scores, k: int = 5) -> float:
    """Share of samples whose label is among the ``k`` highest scores (ties broken by class index).

    Example:
        >>> top_k_accuracy([2, 0], [[0.1, 0.3, 0.6], [0.2, 0.5, 0.3]], k=2)
        0.5
    """
    labels = _labels(y_true, "y_true")
    array = _array(scores, "scores")
    if array.ndim != 2:
        raise ConfigError(f"scores must be (samples, classes), got shape {array.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a whole number >= 1, got {k!r}")
    if len(labels) != len(array):
        raise ConfigError(f"{len(labels)} labels but {len(array)} score rows: give one label per input sample")
    top = np.argsort(-array, axis=1, kind="stable")[:, : int(k)]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def reconstruction_error(x, x_hat) -> np.ndarray:
    """Mean squared error per sample between inputs and their reconstruction (an autoencoder's anomaly score).

    Example:
        >>> reconstruction_error([[0.0, 1.0], [1.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]).tolist()
        [0.0, 0.5]
    """
    a, b = _pair(x, x_hat)
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (what Mann-Whitney U needs)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, then the mean rank of each run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve of binary labels (1 = positive, e.g. anomaly) against scores.

    Computed from ranks (Mann-Whitney U), ties counted as one half, so it equals
    ``sklearn.metrics.roc_auc_score``. For an autoencoder, pass ``reconstruction_error(x, model(x))``.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    labels = _array(y_true, "y_true").reshape(-1)
    values = _array(scores, "scores").astype(np.float64).reshape(-1)
    if len(labels) != len(values):
        raise ConfigError(f"{len(labels)} labels but {len(values)} scores: give one score per sample")
    if not np.isin(labels, (0, 1)).all():
        raise ConfigError("roc_auc needs binary labels 0/1 (1 = positive/anomalous)")
    if np.isnan(values).any():
        raise ConfigError("roc_auc scores contain NaN: the model produced NaN outputs")
    positives = labels == 1
    n_pos = int(positives.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(
            f"roc_auc needs both classes, got {n_pos} positive and {n_neg} negative samples"
        )
    ranks = _average_ranks(values)
    u_statistic = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def top1_agreement(reference, candidate) -> float:
    """Share of samples where both outputs pick the same top-1 class.

    Example:
        >>> top1_agreement([[0.9, 0.1], [0.4, 0.6]], [[0.8, 0.2], [0.7, 0.3]])
        0.5
    """
    ref, cand = _pair(reference, candidate)
    return float(np.mean(predicted_classes(ref, "reference") == predicted_classes(cand, "candidate")))


def max_error_steps(reference, candidate, scale: float) -> float:
    """Largest absolute difference in output quantization steps: ``max |reference - candidate| / scale``.

    ``scale`` is the output scale of the quantized model. 1.0 means "off by at most one LSB".

    Example:
        >>> max_error_steps([0.5, 0.25], [0.5, 0.2421875], scale=1 / 256)
        2.0
    """
    ref, cand = _pair(reference, candidate)
    scale = float(np.max(scale)) if np.ndim(scale) else float(scale)
    if not scale > 0:
        raise ConfigError(f"output scale must be > 0, got {scale}: max_error_steps needs a quantized output")
    return float(np.max(np.abs(ref - cand)) / scale)


def rmse(reference, candidate) -> float:
    """Root mean squared difference.

    Example:
        >>> rmse([0.0, 0.0], [3.0, 4.0])
        3.5355339059327378
    """
    ref, cand = _pair(reference, candidate)
    return float(np.sqrt(np.mean((ref - cand) ** 2)))


def mae(reference, candidate) -> float:
    """Mean absolute difference.

    Example:
        >>> mae([1.0, 2.0], [1.5, 1.0])
        0.75
    """
    ref, cand = _pair(reference, candidate)
    return float(np.mean(np.abs(ref - cand)))


def relative_l2(reference, candidate) -> float:
    """``||reference - candidate|| / ||reference||`` over all outputs (inf when the reference is all zero).

    Example:
        >>> relative_l2([3.0, 4.0], [3.0, 3.0])
        0.2
    """
    ref, cand = _pair(reference, candidate)
    error = float(np.linalg.norm(ref - cand))
    norm = float(np.linalg.norm(ref))
    if norm == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / norm


def cosine_similarity(reference, candidate) -> float:
    """Cosine of the angle between the two outputs flattened (1 = same direction; two zero outputs give 1).

    Example:
        >>> cosine_similarity([1.0, 0.0], [1.0, 1.0])
        0.7071067811865475
    """
    ref, cand = _pair(reference, candidate)
    a, b = ref.reshape(-1), cand.reshape(-1)
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 or norm_b == 0.0:
        return 1.0 if norm_a == norm_b else 0.0
    # Clip: rounding can push the ratio a hair past +-1.
    return float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def snr_db(reference, candidate) -> float:
    """Signal-to-noise ratio in dB: ``10 log10(sum(reference^2) / sum((reference - candidate)^2))``.

    inf when the outputs are identical; 40 dB means the error power is 1/10,000 of the signal power.

    Example:
        >>> round(snr_db([1.0, 1.0], [1.1, 0.9]), 1)
        20.0
    """
    ref, cand = _pair(reference, candidate)
    noise = float(np.sum((ref - cand) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def quant_range(dtype) -> tuple[int, int]:
    """``(qmin, qmax)`` of an integer quantized dtype (``"int8"``, ``np.uint8``, ...).

    Example:
        >>> quant_range("int8")
        (-128, 127)
    """
    try:
        info = np.iinfo(np.dtype(dtype))
    except (TypeError, ValueError):
        raise ConfigError(f"{dtype!r} is not an integer quantized dtype (expected int8, uint8, int16, ...)") from None
    return int(info.min), int(info.max)


def saturation_rate(outputs, *, dtype=None, quant=None) -> float:
    """Share of outputs stuck at the edge (qmin or qmax) of the output's integer range.

    Give raw quantized outputs (an integer array; its own dtype is used unless ``dtype=`` says otherwise),
    or dequantized floats with ``quant=`` (anything with ``.scale``, ``.zero_point`` and ``.dtype``, like
    ``TensorQuant``): they are re-quantized first. Many saturated outputs mean the output range chosen
    at calibration is too narrow.

    Example:
        >>> import numpy as np
        >>> saturation_rate(np.array([-128, 0, 5, 127], dtype=np.int8))
        0.5
    """
    array = _array(outputs, "outputs")
    if quant is not None:
        dtype = dtype or getattr(quant, "dtype", None)
        scale = float(np.max(getattr(quant, "scale", 0.0)))
        zero_point = float(np.max(getattr(quant, "zero_point", 0)))
        if not scale > 0:
            raise ConfigError("saturation_rate: quant has no positive scale; the output is not quantized")
        from pytest_tinyml.tflite.quant import TensorQuant

        # Re-quantized exactly as TFLite quantizes (half away from zero, clamped): see TensorQuant.
        quant_range(dtype)  # a ConfigError naming the dtype unless it is an integer one
        tensor = TensorQuant("outputs", array.shape, np.dtype(dtype).name, scale, int(zero_point))
        array = tensor.quantize(array.astype(np.float32))
    elif dtype is None:
        if array.dtype.kind not in "iu":
            raise ConfigError(
                "saturation_rate needs raw integer outputs, or dequantized floats with quant= "
                "(the output tensor's scale, zero point and dtype)"
            )
        dtype = array.dtype
    qmin, qmax = quant_range(dtype)
    if array.size == 0:
        raise ConfigError("saturation_rate of an empty output is undefined")
    return float(np.mean((array <= qmin) | (array >= qmax)))


def clipping_rate(reference, quant) -> float:
    """Share of float ``reference`` outputs outside what the quantized output (``quant``) can represent.

    Unlike :func:`saturation_rate` (a softmax's zero probabilities sit at qmin legitimately), this counts
    only values the quantized model had to clip: more than one step beyond the edges of its range (a
    probability of 1.0 is one step above an int8 softmax's top, 255/256, and is not counted).

    Example:
        >>> from types import SimpleNamespace
        >>> q = SimpleNamespace(scale=0.5, zero_point=0, dtype="int8")   # represents -64.0 .. 63.5
        >>> clipping_rate([0.0, 63.5, 70.0, -100.0], q)
        0.5
    """
    array = _array(reference, "reference").astype(np.float64)
    scale = output_scale(quant)
    if scale is None:
        raise ConfigError("clipping_rate: quant has no positive scale; the output is not quantized")
    qmin, qmax = quant_range(getattr(quant, "dtype", None))
    zero_point = float(np.asarray(getattr(quant, "zero_point", 0)).reshape(-1)[0])
    low, high = (qmin - zero_point) * scale, (qmax - zero_point) * scale
    if array.size == 0:
        raise ConfigError("clipping_rate of an empty output is undefined")
    return float(np.mean((array < low - scale) | (array > high + scale)))


def is_constant_output(outputs, *, atol: float = 0.0) -> bool:
    """True when every sample produced the same output (a broken or collapsed model), within ``atol``.

    Needs at least two samples; one sample is never called constant.

    Example:
        >>> is_constant_output([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])
        True
    """
    array = _array(outputs, "outputs").astype(np.float64)
    if array.ndim == 0 or len(array) < 2:
        return False
    flat = array.reshape(len(array), -1)
    return bool(np.all(flat.max(axis=0) - flat.min(axis=0) <= atol))


def output_scale(quant) -> float | None:
    """The per-tensor scale of a ``TensorQuant``-like object, or None when the tensor is not quantized.

    Example:
        >>> from types import SimpleNamespace
        >>> output_scale(SimpleNamespace(scale=0.00390625, zero_point=-128, dtype="int8"))
        0.00390625
    """
    scale = getattr(quant, "scale", None)
    if scale is None:
        return None
    values = np.asarray(scale, dtype=np.float64).reshape(-1)
    # Per-channel output scales are rare; the largest step is the conservative unit.
    value = float(values.max()) if values.size else 0.0
    return value if value > 0 else None


def compare_outputs(reference, candidate, *, output_quant=None) -> dict:
    """Every parity metric of ``candidate`` against ``reference`` outputs of the same inputs, as a dict.

    Keys: ``samples, top1_agreement, rmse, mae, relative_l2, cosine, snr_db, max_abs_error,
    reference_constant, candidate_constant``; with ``output_quant`` (the quantized model's output
    ``TensorQuant``) also ``max_error_steps``, ``output_scale``, ``saturation`` (of the candidate) and
    ``clipped`` (share of reference outputs outside the candidate's representable range).

    Example:
        >>> compare_outputs([[0.2, 0.8]], [[0.25, 0.75]])["top1_agreement"]
        1.0
    """
    ref, cand = _pair(reference, candidate)
    figures = {
        "samples": int(len(ref)),
        "top1_agreement": top1_agreement(ref, cand),
        "rmse": rmse(ref, cand),
        "mae": mae(ref, cand),
        "relative_l2": relative_l2(ref, cand),
        "cosine": cosine_similarity(ref, cand),
        "snr_db": snr_db(ref, cand),
        "max_abs_error": float(np.max(np.abs(ref - cand))),
        "reference_constant": is_constant_output(ref),
        "candidate_constant": is_constant_output(cand),
    }
    scale = output_scale(output_quant)
    if scale is not None:
        figures["output_scale"] = scale
        figures["max_error_steps"] = max_error_steps(ref, cand, scale)
        figures["saturation"] = saturation_rate(cand, quant=output_quant)
        figures["clipped"] = clipping_rate(ref, output_quant)
    return figures
