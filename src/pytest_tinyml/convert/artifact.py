"""``TFLiteArtifact``: a TFLite flatbuffer with where it came from, and ``TensorQuant`` for its I/O tensors.

The I/O quantization is read from the flatbuffer with the pure-Python schema that ``ai_edge_litert`` ships
(``schema_py_generated``): parsing never runs native code, so unknown or broken bytes raise
``ModelLoadError`` instead of crashing the process. Checking that a runtime accepts the model is the job of
``pytest_tinyml.runtime`` (crash-isolated loading).

Example:
    >>> art = TFLiteArtifact.from_path("mlp_int8.tflite")      # doctest: +SKIP
    >>> art.inputs[0].dtype, art.kb
    ('int8', 14.2)
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pytest_tinyml.errors import ModelLoadError

FILE_IDENTIFIER = b"TFL3"
# Smallest well-formed model: root offset, identifier, a table. Anything shorter is not a model.
_MIN_SIZE = 16
# Guards against garbage vectors whose length field is huge (a loop over it would never end).
_MAX_IO = 4096
_MAX_RANK = 64


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


@dataclass(frozen=True, eq=False)
class TFLiteArtifact:
    """A converted model: flatbuffer bytes plus recipe, parameters, source hash, versions and I/O quantization.

    Two artifacts are equal when their bytes are (same ``sha256``), whatever their names.

    Example:
        >>> art = pytest_tinyml.convert(model, "int8", representative=x_train)   # doctest: +SKIP
        >>> art.save("build/mlp_int8.tflite"); art.recipe, art.inputs[0].dtype, round(art.kb, 1)
        ('int8', 'int8', 14.2)
    """

    content: bytes = field(repr=False)
    name: str = "model"
    recipe: str = "unknown"
    params: dict = field(default_factory=dict)
    source_hash: str = ""
    versions: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.content, bytes):
            object.__setattr__(self, "content", bytes(self.content))
        digest = hashlib.sha256(self.content).hexdigest()
        if self.sha256 and self.sha256 != digest:
            raise ModelLoadError(
                f"TFLite model {self.name!r}: sha256 of the bytes is {digest[:12]}..., the metadata says "
                f"{self.sha256[:12]}...: the file was changed or truncated; convert the model again"
            )
        object.__setattr__(self, "sha256", digest)

    # --- identity -------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TFLiteArtifact):
            return NotImplemented
        return self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        io = ", ".join(f"{t.dtype}{list(t.shape)}" for t in self.inputs)
        return (
            f"TFLiteArtifact(name={self.name!r}, recipe={self.recipe!r}, size={self.size}, "
            f"inputs=[{io}], sha256={self.sha256[:12]}...)"
        )

    # --- figures --------------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Flatbuffer size in bytes (what goes to flash)."""
        return len(self.content)

    @property
    def kb(self) -> float:
        """Flatbuffer size in KiB."""
        return len(self.content) / 1024.0

    def metadata(self) -> dict:
        """Everything but the bytes, as a JSON-able dict (what the cache and the reports store).

        Example:
            >>> art.metadata()["recipe"]          # doctest: +SKIP
            'int8'
        """
        return {
            "name": self.name,
            "recipe": self.recipe,
            "params": dict(self.params),
            "sha256": self.sha256,
            "size": self.size,
            "source_hash": self.source_hash,
            "versions": dict(self.versions),
            "inputs": [_quant_to_json(t) for t in self.inputs],
            "outputs": [_quant_to_json(t) for t in self.outputs],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the flatbuffer to ``path`` (parents created, written atomically); returns the path.

        Example:
            >>> art.save(tmp_path / "mlp.tflite")       # doctest: +SKIP
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.content)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    # --- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_bytes(
        cls,
        content: bytes,
        *,
        name: str = "model",
        recipe: str = "unknown",
        params: dict | None = None,
        source_hash: str = "",
        versions: dict | None = None,
        sha256: str = "",
    ) -> TFLiteArtifact:
        """An artifact from flatbuffer bytes; I/O quantization is read from the bytes.

        Raises ``ModelLoadError`` when the bytes are not a TFLite flatbuffer (too short, no ``TFL3``
        identifier, unreadable tables) or do not match ``sha256`` when one is given.

        Example:
            >>> TFLiteArtifact.from_bytes(open("m.tflite", "rb").read(), name="m").outputs   # doctest: +SKIP
        """
        content = bytes(content)
        inputs, outputs = read_io(content, name=name)
        return cls(
            content=content,
            name=name,
            recipe=recipe,
            params=dict(params or {}),
            source_hash=source_hash,
            versions=dict(versions or {}),
            inputs=inputs,
            outputs=outputs,
            sha256=sha256,
        )

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, name: str | None = None, recipe: str = "unknown"):
        """An artifact from a ``.tflite`` file (name defaults to the file stem).

        Example:
            >>> TFLiteArtifact.from_path("build/mlp_int8.tflite").inputs[0].scale   # doctest: +SKIP
        """
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(
                f"cannot read TFLite model {str(path)!r}: {exc.strerror or exc}; check the path"
            ) from exc
        return cls.from_bytes(content, name=name or path.stem, recipe=recipe)

    @classmethod
    def from_metadata(cls, content: bytes, meta: dict) -> TFLiteArtifact:
        """Rebuild an artifact from its bytes and its ``metadata()`` (the sha256 in it is checked)."""
        return cls.from_bytes(
            content,
            name=meta.get("name", "model"),
            recipe=meta.get("recipe", "unknown"),
            params=meta.get("params") or {},
            source_hash=meta.get("source_hash", ""),
            versions=meta.get("versions") or {},
            sha256=meta.get("sha256", ""),
        )


def _quant_to_json(t: TensorQuant) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}


def current_versions(**extra: str) -> dict:
    """Library versions recorded in artifacts and cache keys, read without importing the libraries."""
    from importlib import metadata

    import pytest_tinyml

    versions = {}
    for dist in ("tensorflow", "keras", "ai-edge-litert"):
        try:
            versions[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist.replace("-", "_")] = None
    versions["python"] = ".".join(map(str, sys.version_info[:3]))
    versions["pytest_tinyml"] = pytest_tinyml.__version__
    versions.update(extra)
    return versions


def _dtype_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {
        value: key.lower()
        for key, value in vars(schema.TensorType).items()
        if not key.startswith("_") and isinstance(value, int)
    }


def _check_buffers(model, size: int) -> None:
    """Every weight buffer must lie inside the bytes: a truncated file loses its tail, where they live."""
    n = model.BuffersLength()
    if n > 10_000_000:
        raise ValueError(f"implausible buffer count {n}")
    for i in range(n):
        buffer = model.Buffers(i)
        if buffer.DataLength() > 0:
            buffer.DataAsNumpy()  # a view; numpy refuses one that runs past the end
        offset, length = int(buffer.Offset()), int(buffer.Size())
        if offset > 1 and offset + length > size:  # weights stored after the flatbuffer (large models)
            raise ValueError(f"buffer {i} ends at byte {offset + length}, past the end ({size})")


def read_io(content: bytes, *, name: str = "model") -> tuple[list[TensorQuant], list[TensorQuant]]:
    """The inputs and outputs of the first subgraph of a flatbuffer, parsed without native code.

    Example:
        >>> inputs, outputs = read_io(open("m.tflite", "rb").read())     # doctest: +SKIP
    """
    if len(content) < _MIN_SIZE:
        raise ModelLoadError(
            f"TFLite model {name!r} is {len(content)} bytes: too short to be a flatbuffer; "
            "the file is empty or truncated, convert or copy it again"
        )
    if content[4:8] != FILE_IDENTIFIER:
        raise ModelLoadError(
            f"TFLite model {name!r} has no 'TFL3' identifier at offset 4 (found {content[4:8]!r}): "
            "it is not a TFLite flatbuffer (a .keras / .h5 / SavedModel file? convert it with "
            "pytest_tinyml.convert first)"
        )
    from ai_edge_litert import schema_py_generated as schema

    dtypes = _dtype_names()
    try:
        model = schema.Model.GetRootAs(content, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        graph = model.Subgraphs(0)
        n_tensors = graph.TensorsLength()

        def tensor(index: int) -> TensorQuant:
            if not 0 <= index < n_tensors:
                raise ValueError(f"I/O tensor index {index} out of range ({n_tensors} tensors)")
            t = graph.Tensors(index)
            rank = t.ShapeLength()
            if rank > _MAX_RANK:
                raise ValueError(f"tensor rank {rank}")
            shape = tuple(int(t.Shape(i)) for i in range(rank))
            q = t.Quantization()
            scale, zero_point = 0.0, 0
            if q is not None and q.ScaleLength() > 0:
                scale = float(q.Scale(0))
                zero_point = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
            raw_name = t.Name()
            return TensorQuant(
                name=raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{index}",
                shape=shape,
                dtype=dtypes.get(t.Type(), f"type{t.Type()}"),
                scale=scale,
                zero_point=zero_point,
            )

        _check_buffers(model, len(content))
        counts = (graph.InputsLength(), graph.OutputsLength())
        if any(c > _MAX_IO for c in counts):
            raise ValueError(f"implausible I/O counts {counts}")
        inputs = [tensor(int(graph.Inputs(i))) for i in range(counts[0])]
        outputs = [tensor(int(graph.Outputs(i))) for i in range(counts[1])]
    except ModelLoadError:
        raise
    except Exception as exc:  # the schema reader raises IndexError / struct.error / ValueError on garbage
        raise ModelLoadError(
            f"TFLite model {name!r} has the 'TFL3' identifier but its tables cannot be read "
            f"({type(exc).__name__}: {exc}): the flatbuffer is corrupt or truncated; convert it again"
        ) from exc
    return inputs, outputs
