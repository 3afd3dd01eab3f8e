"""Hyperparameter and shape checks shared by the zoo builders.

Every check raises :class:`~pytest_tinyml.errors.ZooError` naming the model, the argument and what is
accepted, so a typo in a test fails with a sentence instead of a Keras stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_tinyml.errors import ZooError


def positive_int(model: str, arg: str, value: object) -> int:
    """``value`` as an int >= 1, else ZooError.

    Example:
        >>> positive_int("mlp", "units", 8)
        8
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(f"zoo model {model!r}: {arg} must be a positive integer, got {value!r}")
    return value


def int_tuple(model: str, arg: str, value: object, *, min_len: int = 1) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of positive ints, else ZooError.

    Example:
        >>> int_tuple("mlp", "hidden", [128, 64])
        (128, 64)
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) < min_len:
        raise ZooError(
            f"zoo model {model!r}: {arg} must be a sequence of at least {min_len} positive integers, "
            f"got {value!r}"
        )
    return tuple(positive_int(model, f"{arg}[{i}]", v) for i, v in enumerate(value))


def rate(model: str, arg: str, value: object) -> float:
    """``value`` as a float in [0, 1), else ZooError (dropout rates).

    Example:
        >>> rate("mlp", "dropout", 0.2)
        0.2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ZooError(f"zoo model {model!r}: {arg} must be a number in [0, 1), got {value!r}")
    return float(value)


def non_negative(model: str, arg: str, value: object) -> float:
    """``value`` as a float >= 0, else ZooError (weight decay).

    Example:
        >>> non_negative("kws_dscnn", "weight_decay", 1e-4)
        0.0001
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ZooError(f"zoo model {model!r}: {arg} must be a number >= 0, got {value!r}")
    return float(value)


def shape(model: str, value: object, rank: int, *, minimum: Sequence[int] | None = None) -> tuple[int, ...]:
    """``value`` as an input shape of ``rank`` positive ints (no batch axis), else ZooError.

    ``minimum`` gives the smallest size per axis the architecture can take (pooling and strides shrink it).

    Example:
        >>> shape("mlp", (64,), 1)
        (64,)
    """
    if isinstance(value, int) and rank == 1:
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != rank:
        raise ZooError(
            f"zoo model {model!r}: input_shape must have {rank} dimension(s) without the batch axis, "
            f"got {value!r}"
        )
    dims = tuple(positive_int(model, f"input_shape[{i}]", v) for i, v in enumerate(value))
    if minimum is not None:
        for i, (got, low) in enumerate(zip(dims, minimum, strict=True)):
            if got < low:
                raise ZooError(
                    f"zoo model {model!r}: input_shape {dims} is too small: axis {i} must be >= {low} "
                    "because the architecture's strides and pooling shrink it below one element; "
                    "resize the input or pick a smaller model"
                )
    return dims


def output_activation(model: str, value: object) -> str | None:
    """Validate a classifier's output activation: "softmax" (probabilities) or None/"linear" (logits).

    Example:
        >>> output_activation("student", None) is None
        True
    """
    if value in (None, "linear"):
        return None
    if value in ("softmax", "sigmoid"):
        return str(value)
    raise ZooError(
        f"zoo model {model!r}: output_activation must be 'softmax', 'sigmoid' or None (logits), got {value!r}"
    )
