"""Anything that names a model -> one checked ``TFLiteArtifact``: the entry of every host runtime.

Bytes and files become artifacts (reading them checks the ``TFL3`` header, once); every artifact's tensors
are checked once per content hash before any C++ sees it. The runners and the package's :func:`load` use
this module, so it imports no runner.

Example:
    >>> artifact = load("build/mlp_int8.tflite")       # doctest: +SKIP
"""

from __future__ import annotations

import os

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.tflite import checks

_checked: set[str] = set()  # sha256 of models whose tensors passed checks.check_tensors


def _artifact_class():
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    return TFLiteArtifact


def _is_keras_model(obj) -> bool:
    return hasattr(obj, "layers") and callable(getattr(obj, "predict", None)) and hasattr(obj, "inputs")


def load(model_like, *, name: str | None = None):
    """A checked ``TFLiteArtifact`` from an artifact, flatbuffer bytes, a ``.tflite`` path or a Keras model.

    Bytes and files are checked (size, ``TFL3`` identifier, root table inside the buffer) before anything
    else, then every tensor (indices in range, constant data as large as its shape says: see
    :func:`~pytest_tinyml.tflite.checks.check_tensors`); a bad one raises
    :class:`~pytest_tinyml.errors.ModelLoadError` naming the file and the problem.
    A Keras model is converted with the ``float32`` recipe.

    Example:
        >>> artifact = load("build/mlp_int8.tflite")       # doctest: +SKIP
        >>> artifact.name, artifact.size                   # doctest: +SKIP
        ('mlp_int8', 4568)
    """
    artifact = _load(model_like, name)
    if artifact.sha256 not in _checked:
        checks.check_tensors(artifact.content, name=artifact.name, model=artifact.model)
        _checked.add(artifact.sha256)
    return artifact


def _load(model_like, name: str | None):
    artifact_class = _artifact_class()
    if isinstance(model_like, artifact_class):
        return model_like  # its header was checked when it was read (TFLiteArtifact.model)
    if isinstance(model_like, (bytes, bytearray, memoryview)):
        content = bytes(model_like)
        label = name
        if name is None:
            import hashlib

            label = f"bytes-{hashlib.sha256(content).hexdigest()[:12]}"
        return artifact_class.from_bytes(content, name=label, label=name or "<bytes>")
    if isinstance(model_like, (str, os.PathLike)):
        return artifact_class.from_path(model_like, name=name)
    if _is_keras_model(model_like):
        from pytest_tinyml.conversion import convert

        return convert(model_like, "float32")  # vetted like any model on first use: see the isolation policy
    raise ConfigError(
        f"cannot use a {type(model_like).__name__} as a model: pass a TFLiteArtifact, flatbuffer bytes, a path "
        "to a .tflite file, or a Keras model"
    )
