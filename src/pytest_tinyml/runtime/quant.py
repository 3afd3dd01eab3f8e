"""Quantize inputs and dequantize outputs with each tensor's own scale and zero point.

Both runtimes describe a tensor with a details dict (``dtype``, ``shape``, ``quantization_parameters``);
:class:`TensorSpec` is the common view, and :meth:`TensorSpec.quantize` / :meth:`TensorSpec.dequantize`
follow TFLite's affine scheme ``real = scale * (q - zero_point)``, rounding half away from zero like the
``QUANTIZE`` kernel does.

Example:
    >>> import numpy as np
    >>> spec = TensorSpec("x", (1, 2), np.dtype(np.int8), np.array([0.5]), np.array([-1]), 0)
    >>> spec.quantize(np.array([[1.0, -0.25]])).tolist()
    [[1, -2]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and quantization of one model input or output."""

    name: str
    shape: tuple
    dtype: np.dtype
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int

    @classmethod
    def from_details(cls, details: dict) -> TensorSpec:
        params = details.get("quantization_parameters") or {}
        return cls(
            name=str(details.get("name", "")),
            shape=tuple(int(d) for d in details["shape"]),
            dtype=np.dtype(details["dtype"]),
            scales=np.asarray(params.get("scales", []), dtype=np.float64),
            zero_points=np.asarray(params.get("zero_points", []), dtype=np.int64),
            quantized_dimension=int(params.get("quantized_dimension", 0)),
        )

    @property
    def quantized(self) -> bool:
        """True for an integer tensor with a non-zero scale (e.g. int8 with scale 0.0039)."""
        return self.dtype.kind in "iu" and self.scales.size > 0 and bool(np.all(self.scales != 0))

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if self.scales.size else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points.size else 0

    def _broadcast(self, values: np.ndarray, ndim: int) -> np.ndarray:
        if values.size <= 1:
            return values.reshape(())
        shape = [1] * ndim
        shape[self.quantized_dimension] = values.size
        return values.reshape(shape)

    def quantize(self, x) -> np.ndarray:
        """Float values -> this tensor's dtype. An array already of this integer dtype passes unchanged."""
        x = np.asarray(x)
        if x.dtype == self.dtype or not self.quantized:
            return x.astype(self.dtype, copy=False)
        scale = self._broadcast(self.scales, x.ndim)
        zero = self._broadcast(self.zero_points, x.ndim)
        scaled = x.astype(np.float64) / scale
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # half away from zero, like TFLite
        info = np.iinfo(self.dtype)
        return np.clip(rounded + zero, info.min, info.max).astype(self.dtype)

    def dequantize(self, q) -> np.ndarray:
        """Raw tensor values -> float32 real values (float tensors are returned as float32)."""
        q = np.asarray(q)
        if not self.quantized:
            return q.astype(np.float32)
        scale = self._broadcast(self.scales, q.ndim)
        zero = self._broadcast(self.zero_points, q.ndim)
        return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


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


def fit_batch(x: np.ndarray, spec: TensorSpec, model_name: str) -> np.ndarray:
    """Give ``x`` a leading sample axis matching ``spec`` (accepts one unbatched sample)."""
    from pytest_tinyml.errors import ConfigError

    sample_shape = tuple(spec.shape[1:])
    if x.shape[1:] == sample_shape:
        return x
    if x.shape == sample_shape:
        return x[None, ...]
    if x.ndim >= 1 and int(np.prod(x.shape[1:], dtype=np.int64)) == int(np.prod(sample_shape, dtype=np.int64)):
        return x.reshape((x.shape[0],) + sample_shape)  # e.g. flat (n, 64) into an (n, 8, 8, 1) model
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
