"""Run a recipe through ``TinyMLCache.memoize`` when a cache is given, directly otherwise.

Keys cover the source model's content (architecture and weights), the dataset fingerprint, every recipe
argument, the Keras backend and the library versions, so a changed input never returns a stale result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run(cache, kind: str, parts: dict, produce: Callable[[], Any], save, load) -> Any:
    """``cache.memoize(kind, parts + context, produce, save=, load=)``, or ``produce()`` without a cache."""
    if cache is None:
        return produce()
    import keras

    from pytest_tinyml.cache import library_versions

    key = {**parts, "backend": keras.backend.backend(), "versions": library_versions()}
    return cache.memoize(f"optimize-{kind}", key, produce, save=save, load=load)


def model_key(model) -> str:
    from pytest_tinyml.identity import source_key

    return source_key(model)


def dataset_key(dataset):
    fingerprint = getattr(dataset, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    # Arrays are hashed by TinyMLCache.canonical.
    return {"x_train": dataset.x_train, "y_train": getattr(dataset, "y_train", None)}


def write_json(directory: Path, name: str, value: dict) -> None:
    (directory / name).write_text(json.dumps(value, indent=1, sort_keys=True))


def read_json(directory: Path, name: str) -> dict:
    return json.loads((directory / name).read_text())


def save_keras(model, directory: Path) -> None:
    """A Keras 3 model as ``model.keras``; a (stripped) tf_keras model as ``tf_keras_model.keras``."""
    if type(model).__module__.startswith("tf_keras"):
        model.save(str(directory / "tf_keras_model.keras"))
    else:
        model.save(str(directory / "model.keras"))


def load_keras(directory: Path):
    if (directory / "tf_keras_model.keras").exists():
        from pytest_tinyml.optimize._legacy import tf_keras

        return tf_keras().models.load_model(str(directory / "tf_keras_model.keras"), compile=False)
    import keras

    return keras.saving.load_model(str(directory / "model.keras"), compile=False)


def save_artifact(artifact, directory: Path) -> None:
    (directory / "model.tflite").write_bytes(artifact.content)
    write_json(directory, "artifact.json", artifact.metadata())


def load_artifact(directory: Path):
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    return TFLiteArtifact.from_metadata(
        (directory / "model.tflite").read_bytes(), read_json(directory, "artifact.json")
    )
