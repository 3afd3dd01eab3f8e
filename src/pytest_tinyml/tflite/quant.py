"""``TensorQuant``: one TFLite tensor's name, shape, dtype and quantization, and the conversion of values.

Example:
    >>> q = TensorQuant("input", (1, 64), "int8", 0.0039, -128)
    >>> q.quantize([0.0, 1.0]).tolist()
    [-128, 127]
"""

from __future__ import annotations

from typing import NamedTuple


class TensorQuant(NamedTuple):
    """One input or output tensor: its name, shape, dtype and per-tensor quantization.

    ``scale`` is 0.0 and ``zero_point`` 0 when the tensor is not quantized (float I/O).

    Example:
        >>> q = TensorQuant("input", (1, 64), "int8", 0.0039, -128)
        >>> q.quantize([0.0, 1.0]).tolist()
        [-128, 127]
    """

    name: str
    shape: tuple
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """True when the tensor is an integer tensor with a scale (int8 / uint8 / int16 I/O)."""
        return self.scale > 0.0

    def quantize(self, x):
        """Real values -> this tensor's integer dtype (round, add zero point, saturate). Float tensors pass through.

        Example:
            >>> TensorQuant("x", (1, 2), "int8", 0.5, 0).quantize([1.0, 100.0]).tolist()
            [2, 127]
        """
        import numpy as np

        x = np.asarray(x, dtype=np.float32)
        if not self.quantized:
            return x.astype(self.dtype) if self.dtype.startswith("float") else x
        info = np.iinfo(self.dtype)
        q = np.round(x / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q):
        """This tensor's integers -> real values as float32. Float tensors pass through as float32.

        Example:
            >>> TensorQuant("y", (1, 2), "int8", 0.5, -1).dequantize([1, 3]).tolist()
            [1.0, 2.0]
        """
        import numpy as np

        q = np.asarray(q)
        if not self.quantized:
            return q.astype(np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)
