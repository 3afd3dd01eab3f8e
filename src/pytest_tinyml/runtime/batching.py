"""Shaping inputs and outputs for the host runners: one array or a list per input, a sample axis, stacking.

Quantization is not here: every tensor's real <-> integer mapping is :class:`pytest_tinyml.tflite.quant.TensorQuant`.
"""

from __future__ import annotations

import numpy as np


def as_input_list(x, count: int, model_name: str) -> list:
    """``x`` for a model with ``count`` inputs: one array, or a list/tuple of ``count`` arrays."""
    from pytest_tinyml.errors import ConfigError

    if count == 1:
        if isinstance(x, (list, tuple)) and len(x) == 1 and np.ndim(x[0]) >= 1:
            return [np.asarray(x[0])]
        return [np.asarray(x)]
    if not isinstance(x, (list, tuple)) or len(x) != count:
        raise ConfigError(f"model {model_name!r} has {count} inputs: pass a list of {count} arrays")
    return [np.asarray(v) for v in x]


def refuse_fixed_batch(spec, model_name: str, who: str) -> None:
    """``ConfigError`` for an input (a ``TensorQuant``) with a fixed batch > 1: ``who`` (``"Board.predict runs"``)
    feeds one sample per invoke, which such a graph refuses."""
    from pytest_tinyml.errors import ConfigError

    if len(spec.shape) > 1 and int(spec.shape[0]) > 1:
        raise ConfigError(f"input {spec.name!r} of model {model_name!r} has a fixed batch of {spec.shape[0]} (input "
                          f"{tuple(spec.shape)}): {who} one sample per invoke; convert it with batch 1 or None "
                          "(keras.Input(shape) without batch_size=, or batch_size=1)")


def fit_batch(x: np.ndarray, spec, model_name: str) -> np.ndarray:
    """Give ``x`` a leading sample axis matching ``spec`` (a ``TensorQuant``; accepts one unbatched sample).

    A model with a fixed batch > 1 is a ``ConfigError``: the runners feed one sample (or a resized batch) per
    invoke, which such a graph refuses, as ``Board.predict`` refuses it."""
    from pytest_tinyml.errors import ConfigError

    refuse_fixed_batch(spec, model_name, "the host runtimes run")
    sample_shape = tuple(spec.shape[1:])
    if x.shape[1:] == sample_shape:
        return x
    if x.shape == sample_shape:
        return x[None, ...]
    if x.ndim >= 1 and x.dtype.kind in "biuf":
        # Never a silent reshape (NCHW data in an NHWC model would be scrambled): the one check says what to do.
        from pytest_tinyml.validation import check_inputs

        check_inputs(x, sample_shape=sample_shape, role=f"input {spec.name!r} of model {model_name!r}")
    raise ConfigError(
        f"input {spec.name!r} of model {model_name!r} takes samples of shape {sample_shape}, got an array of "
        f"shape {x.shape}; pass an array of shape (n, {', '.join(map(str, sample_shape))})"
    )


def random_like(shape, dtype) -> np.ndarray:
    """Seeded random values over the range of ``dtype`` (integers) or in [-1, 1] (floats)."""
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=tuple(shape), endpoint=True).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 1, size=tuple(shape), endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, tuple(shape)).astype(dtype)


def stack_samples(pieces: list) -> np.ndarray:
    """Join per-sample outputs so that the first axis is the sample: concatenate batch-1 outputs, stack
    outputs that have no batch axis of 1 (a squeezed or odd-shaped output).
    """
    if all(p.ndim >= 1 and p.shape[0] == 1 for p in pieces):
        return np.concatenate(pieces, axis=0)
    return np.stack(pieces, axis=0)
