"""``TFLiteArtifact``: a TFLite flatbuffer with where it came from and its I/O tensors (``TensorQuant``).

The I/O tensors are read by :mod:`pytest_tinyml.tflite.schema` in pure Python: parsing never runs native
code, so unknown or broken bytes raise ``ModelLoadError`` instead of crashing the process. Checking that a runtime accepts the model is the job of
``pytest_tinyml.runtime`` (crash-isolated loading).

Example:
    >>> art = TFLiteArtifact.from_path("mlp_int8.tflite")      # doctest: +SKIP
    >>> art.inputs[0].dtype, art.kb                             # doctest: +SKIP
    ('int8', 14.2)
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pytest_tinyml.errors import ModelLoadError
from pytest_tinyml.tflite.quant import TensorQuant


@dataclass(frozen=True, eq=False)
class TFLiteArtifact:
    """A converted model: flatbuffer bytes plus recipe, parameters, source hash, versions and I/O quantization.

    Two artifacts are equal when their bytes are (same ``sha256``), whatever their names.

    Example:
        >>> art = pytest_tinyml.convert(model, "int8", representative=x_train)   # doctest: +SKIP
        >>> art.save("build/mlp_int8.tflite"); art.recipe, art.inputs[0].dtype, round(art.kb, 1)  # doctest: +SKIP
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

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_model"}  # the table view is rebuilt on demand

    @property
    def model(self):
        """The flatbuffer's root ``Model`` table (:func:`pytest_tinyml.tflite.schema.read_model`), read once.

        Reading it is where the ``TFL3`` header is checked: once per artifact, however many modules look.

        Example:
            >>> art.model.SubgraphsLength()          # doctest: +SKIP
            1
        """
        model = self.__dict__.get("_model")
        if model is None:
            from pytest_tinyml.tflite.schema import read_model

            model = read_model(self.content, name=self.name)
            object.__setattr__(self, "_model", model)
        return model

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
        from pytest_tinyml._files import write_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, self.content)

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
        label: str | None = None,
    ) -> TFLiteArtifact:
        """An artifact from flatbuffer bytes; I/O quantization is read from the bytes.

        Raises ``ModelLoadError`` when the bytes are not a TFLite flatbuffer (too short, no ``TFL3``
        identifier, unreadable tables) or do not match ``sha256`` when one is given; ``label`` (e.g. the file
        path) names the bytes in that error instead of ``name``.

        Example:
            >>> TFLiteArtifact.from_bytes(open("m.tflite", "rb").read(), name="m").outputs   # doctest: +SKIP
        """
        content = bytes(content)
        from pytest_tinyml.tflite.schema import read_io, read_model

        model = read_model(content, name=label or name)
        inputs, outputs = read_io(content, name=label or name, model=model)
        artifact = cls(
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
        object.__setattr__(artifact, "_model", model)
        return artifact

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
                f"cannot read TFLite model file {str(path)!r}: {exc.strerror or exc}; check the path "
                "(relative paths are from the current directory)"
            ) from None
        return cls.from_bytes(content, name=name or path.stem, recipe=recipe, label=str(path))

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
    data = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
    if t.per_channel:
        data.update(scales=list(t.scales), zero_points=list(t.zero_points), quantized_dimension=t.quantized_dimension)
    return data


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
