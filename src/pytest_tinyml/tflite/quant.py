"""``TensorQuant``: one TFLite tensor's name, shape, dtype and quantization, and the conversion of its values.

The one place that knows how a TFLite tensor maps real values to integers. Host runtimes, the board upload
path and the metrics all ask it, so the board and the host feed a model the same integers for the same data.

TFLite's affine scheme is ``real = scale * (q - zero_point)``. :meth:`TensorQuant.quantize` does what the
``QUANTIZE`` kernel (``reference_ops::AffineQuantize``) does: divide in float32, round half away from zero
(``std::round``), add the zero point, clamp to the dtype's range. :meth:`TensorQuant.dequantize` does what
``DEQUANTIZE`` does: ``scale * (q - zero_point)`` in double, then float32. Per-channel tensors (one scale and
zero point per slice along ``quantized_dimension``) are supported.

Example:
    >>> q = TensorQuant("input", (1, 3), "int8", 0.5, 0)
    >>> q.quantize([0.25, 0.75, -0.25]).tolist()   # exactly between two levels: away from zero
    [1, 2, -1]
"""

from __future__ import annotations

from typing import NamedTuple


def round_half_away_from_zero(values):
    """Round like C's ``std::round``: to the nearest integer, halves away from zero (float result).

    ``np.round`` rounds halves to even (0.5 -> 0, 2.5 -> 2); TFLite's kernels do not. ``x - trunc(x)`` is exact
    in binary floating point, so the comparison with 0.5 is too (``floor(|x| + 0.5)`` is not: it turns
    0.49999997 into 1 in float32).

    Example:
        >>> round_half_away_from_zero([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997]).tolist()
        [1.0, 2.0, 3.0, -1.0, -3.0, 0.0]
    """
    import numpy as np

    values = np.asarray(values)
    whole = np.trunc(values)
    with np.errstate(invalid="ignore"):  # inf - inf: the step is then 0 and inf stays inf (clamped later)
        step = np.where(np.abs(values - whole) >= 0.5, np.sign(values), 0).astype(values.dtype)
    return whole + step


class TensorQuant(NamedTuple):
    """One input or output tensor: its name, shape, dtype (``"int8"``, ``"float32"``, ...) and quantization.

    ``scale`` / ``zero_point`` are the per-tensor parameters (0.0 and 0 for a float tensor). A per-channel
    tensor also has ``scales`` / ``zero_points`` (one per slice along ``quantized_dimension``); they are
    empty for a per-tensor one, and ``scale`` / ``zero_point`` are then the first channel's.

    Example:
        >>> q = TensorQuant("input", (1, 64), "int8", 0.0039, -128)
        >>> q.quantize([0.0, 1.0]).tolist(), q.quantized
        ([-128, 127], True)
    """

    name: str
    shape: tuple
    dtype: str
    scale: float = 0.0
    zero_point: int = 0
    scales: tuple = ()
    zero_points: tuple = ()
    quantized_dimension: int = 0

    @classmethod
    def from_params(cls, name: str, shape, dtype, scales, zero_points, quantized_dimension: int = 0) -> TensorQuant:
        """A tensor from lists of scales and zero points as the schema and the interpreters give them.

        Example:
            >>> TensorQuant.from_params("w", (2, 3), "int8", [0.5, 0.25], [0, 0]).per_channel
            True
        """
        import numpy as np

        scales = tuple(float(s) for s in np.ravel(scales))
        zero_points = tuple(int(z) for z in np.ravel(zero_points))
        scale = scales[0] if scales else 0.0
        zero_point = zero_points[0] if zero_points else 0
        per_channel = len(scales) > 1
        return cls(
            name=str(name),
            shape=tuple(int(d) for d in shape),
            dtype=np.dtype(dtype).name,
            scale=scale,
            zero_point=zero_point,
            scales=scales if per_channel else (),
            zero_points=(zero_points or (0,) * len(scales)) if per_channel else (),
            quantized_dimension=int(quantized_dimension) if per_channel else 0,
        )

    @classmethod
    def from_details(cls, details: dict, *, name: str | None = None) -> TensorQuant:
        """A tensor from a LiteRT / TFLite Micro interpreter details dict (``dtype``, ``shape``,
        ``quantization_parameters``).

        Example:
            >>> import numpy as np
            >>> d = {"name": "x", "shape": [1, 2], "dtype": np.int8,
            ...      "quantization_parameters": {"scales": [0.5], "zero_points": [-1], "quantized_dimension": 0}}
            >>> TensorQuant.from_details(d)
            TensorQuant(name='x', shape=(1, 2), dtype='int8', scale=0.5, zero_point=-1, scales=(), zero_points=(), quantized_dimension=0)
        """
        params = details.get("quantization_parameters") or {}
        return cls.from_params(
            name if name is not None else details.get("name", ""),
            details["shape"],
            details["dtype"],
            params.get("scales", []),
            params.get("zero_points", []),
            params.get("quantized_dimension", 0),
        )

    @property
    def quantized(self) -> bool:
        """True for an integer tensor with positive scales (int8 / uint8 / int16 I/O)."""
        if not self.dtype.startswith(("int", "uint")):
            return False
        return all(s > 0 for s in self.scales) if self.scales else self.scale > 0.0

    @property
    def per_channel(self) -> bool:
        """True when the tensor has one scale per slice along ``quantized_dimension``."""
        return len(self.scales) > 1

    def _params(self, ndim: int):
        import numpy as np

        if not self.per_channel:
            return np.float32(self.scale), np.int64(self.zero_point)
        if not 0 <= self.quantized_dimension < ndim:
            from pytest_tinyml.errors import ConfigError

            raise ConfigError(
                f"tensor {self.name!r} is quantized per channel along axis {self.quantized_dimension}, but the "
                f"values have {ndim} axes; pass an array with the tensor's shape {tuple(self.shape)}"
            )
        shape = [1] * ndim
        shape[self.quantized_dimension] = len(self.scales)
        scales = np.asarray(self.scales, dtype=np.float32).reshape(shape)
        return scales, np.asarray(self.zero_points, dtype=np.int64).reshape(shape)

    def quantize(self, x):
        """Real values -> this tensor's integers, as TFLite's ``QUANTIZE`` kernel computes them.

        Float32 division by the scale, rounding half away from zero, plus the zero point, clamped to the
        dtype's range. An array already of this tensor's integer dtype is taken as raw values and passes
        unchanged; a float tensor just gets its dtype.

        Example:
            >>> TensorQuant("x", (1, 4), "int8", 0.5, 0).quantize([1.0, 0.25, -0.75, 100.0]).tolist()
            [2, 1, -2, 127]
        """
        import numpy as np

        x = np.asarray(x)
        dtype = np.dtype(self.dtype)
        if not self.quantized or x.dtype == dtype:
            return x.astype(dtype, copy=False)
        scale, zero_point = self._params(x.ndim)
        steps = round_half_away_from_zero(x.astype(np.float32) / scale)
        info = np.iinfo(dtype)
        # Clamp before the cast (in float64, exact for these integers) so huge values saturate, not wrap.
        return np.clip(steps.astype(np.float64) + zero_point, info.min, info.max).astype(dtype)

    def dequantize(self, q):
        """This tensor's integers -> real values as float32 (``DEQUANTIZE``); float tensors pass as float32.

        Example:
            >>> TensorQuant("y", (1, 2), "int8", 0.5, -1).dequantize([1, 3]).tolist()
            [1.0, 2.0]
        """
        import numpy as np

        q = np.asarray(q)
        if not self.quantized:
            return q.astype(np.float32)
        scale, zero_point = self._params(q.ndim)
        return (np.asarray(scale, dtype=np.float64) * (q.astype(np.int64) - zero_point)).astype(np.float32)
