"""What the assertions accept as "a model", and how they get its outputs.

A model is a Keras model, a ``TFLiteArtifact``, flatbuffer ``bytes`` or a path to a ``.tflite`` file; a
parity candidate may also be a board result (anything with ``.outputs`` and ``.output_quant``, like
``BoardResult``), whose outputs are those of the inputs the board was given. Heavy modules (the runtimes,
the converter) are imported only when a model of that kind is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_tinyml.errors import ConfigError

ACCEPTED = "a Keras model, a TFLiteArtifact, flatbuffer bytes or a path to a .tflite file"
ACCEPTED_WITH_DEVICE = ACCEPTED + ", or a board result (tinyml_board.benchmark(...))"


@dataclass
class Model:
    """A resolved model: its kind (``keras``, ``tflite`` or ``device``), the object and how to name it."""

    kind: str
    obj: Any
    name: str
    recipe: str
    artifact: Any = None  # TFLiteArtifact for kind "tflite"
    reference_runner: Any = None  # LiteRT without XNNPACK, made on first use

    @property
    def output_quant(self):
        """The first output's quantization when the output is an integer tensor with a scale, else None."""
        if self.kind == "device":
            quant = getattr(self.obj, "output_quant", None)
        elif self.kind == "tflite":
            outputs = getattr(self.artifact, "outputs", None) or [None]
            quant = outputs[0]
        else:
            return None
        if quant is None or not _is_integer(getattr(quant, "dtype", None)):
            return None
        scale = np.asarray(getattr(quant, "scale", 0.0), dtype=np.float64).reshape(-1)
        return quant if scale.size and float(scale.max()) > 0 else None

    @property
    def where(self) -> str:
        if self.kind == "device":
            info = getattr(self.obj, "info", None) or {}
            return str(info.get("where", "device"))
        return "host"

    def describe(self) -> str:
        """e.g. ``int8 TFLite 'mlp' (sha256 1a2b3c4d)`` or ``Keras model 'mlp' (float)``."""
        if self.kind == "keras":
            return f"Keras model {self.name!r} (float)"
        if self.kind == "device":
            info = getattr(self.obj, "info", None) or {}
            chip = info.get("chip", "board")
            sha = getattr(self.obj, "model_sha256", None)
            identity = getattr(self.obj, "identity", None)
            firmware = f", firmware {identity.firmware_hash}" if getattr(identity, "firmware_hash", None) else ""
            return f"{chip} ({self.where}) result{firmware}" + (f", model sha256 {sha[:8]}" if sha else "")
        sha = getattr(self.artifact, "sha256", "") or ""
        recipe = "" if self.recipe in ("unknown", "tflite") else self.recipe + " "  # a file of unknown origin
        return f"{recipe}TFLite {self.name!r}" + (f" (sha256 {sha[:8]})" if sha else "")


def _is_integer(dtype) -> bool:
    if dtype is None:
        return False
    try:
        return np.dtype(dtype).kind in "iu"
    except TypeError:
        return False


def _is_keras(value) -> bool:
    # Duck-typed so that neither keras nor tf_keras is imported to recognise one of their models.
    return callable(value) and hasattr(value, "layers") and hasattr(value, "predict")


def is_board(value) -> bool:
    """An open board (the ``tinyml_board`` fixture, ``Board``): something that can run a model, not a result."""
    return callable(getattr(value, "predict", None)) and hasattr(value, "benchmark") and hasattr(value, "client")


def _is_device_result(value) -> bool:
    return hasattr(value, "outputs") and hasattr(value, "output_quant") and not hasattr(value, "content")


def _is_artifact(value) -> bool:
    return hasattr(value, "content") and hasattr(value, "sha256") and hasattr(value, "outputs")


def _recipe_of(artifact) -> str:
    """``qat int8``, ``pruned 0.80 int8``, ... : the recipe with the training-time steps its params record."""
    from pytest_tinyml.report import recipe_label

    return recipe_label(str(getattr(artifact, "recipe", None) or "tflite"), getattr(artifact, "params", None))


def resolve(value, role: str, *, device_ok: bool = False) -> Model:
    """Recognise ``value`` as a model; a ConfigError names what was given and what is accepted.

    Example:
        >>> resolve(b"not a model", "model")  # doctest: +SKIP
    """
    if _is_device_result(value):
        if not device_ok:
            raise ConfigError(
                f"{role} is a board result; only the candidate of assert_parity or assert_accuracy_drop may be one. "
                f"Give {ACCEPTED} here"
            )
        info = getattr(value, "info", None) or {}
        return Model("device", value, name=str(info.get("chip", "board")), recipe=str(info.get("recipe", "device")))
    if _is_keras(value):
        return Model("keras", value, name=str(getattr(value, "name", "keras_model")), recipe="float")
    if _is_artifact(value):
        return Model("tflite", value, name=str(getattr(value, "name", "model")), recipe=_recipe_of(value),
                     artifact=value)
    if isinstance(value, (bytes, bytearray, memoryview, str, os.PathLike)):
        if isinstance(value, (str, os.PathLike)) and not os.path.isfile(value):
            raise ConfigError(f"{role}: no such model file {os.fspath(value)!r}; give {ACCEPTED}")
        from pytest_tinyml import runtime

        artifact = runtime.load(value)
        return Model("tflite", artifact, name=str(getattr(artifact, "name", "model")), recipe=_recipe_of(artifact),
                     artifact=artifact)
    accepted = ACCEPTED_WITH_DEVICE if device_ok else ACCEPTED
    raise ConfigError(f"{role} is a {type(value).__module__}.{type(value).__qualname__}; expected {accepted}")


def as_inputs(x, role: str = "x", model=None, *, reshape: bool = False) -> np.ndarray:
    """Inputs as a float32 array with a sample axis, validated by :func:`pytest_tinyml.validation.check_inputs`."""
    from pytest_tinyml.validation import check_inputs

    return check_inputs(x, model, role=role, reshape=reshape)


def single_output(value, role: str) -> np.ndarray:
    """One output array from what a model returned (an array, or a list/dict with one output)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ConfigError(f"{role} has {len(value)} outputs; the assertions compare single-output models")
        value = value[0]
    return np.asarray(value, dtype=np.float64)


def artifact_of(model: Model):
    """The TFLite artifact of a model; a Keras model is converted with the float32 recipe (no quantization)."""
    if model.kind == "tflite":
        return model.artifact
    if model.kind == "keras":
        from pytest_tinyml.conversion import convert

        model.artifact = model.artifact or convert(model.obj, "float32")
        return model.artifact
    raise ConfigError(f"{model.describe()} is a board result, not a model; give {ACCEPTED}")


def _litert(model: Model, reference_kernels: bool):
    from pytest_tinyml import runtime

    if not reference_kernels:
        return runtime.runner(model.artifact, engine="litert")
    # No XNNPACK: its int8 kernels (e.g. MEAN) round differently from TFLite Micro's by a few LSB.
    if model.reference_runner is None:
        from pytest_tinyml.runtime.litert import LiteRTRunner

        model.reference_runner = LiteRTRunner(model.artifact, reference_kernels=True)
    return model.reference_runner


def outputs_of(model: Model, x: np.ndarray, role: str, *, reference_kernels: bool = False) -> np.ndarray:
    """Float outputs of ``model`` on ``x`` (first axis = sample). Quantized outputs come dequantized.

    ``reference_kernels=True`` runs a TFLite model on LiteRT's builtin kernels, the ones TFLite Micro
    matches bit for bit (for comparisons with a board).
    """
    if model.kind == "keras":
        outputs = keras_outputs(model.obj, x, role)
    elif model.kind == "tflite":
        outputs = single_output(_litert(model, reference_kernels).predict(x), role)
    else:
        outputs = single_output(model.obj.outputs, role)
    if len(outputs) != len(x):
        hint = (" (a board result holds the outputs of the inputs given to tinyml_board.benchmark: "
                "pass those same inputs as x)") if model.kind == "device" else ""
        raise ConfigError(f"{role} has outputs for {len(outputs)} samples but x has {len(x)}{hint}")
    return outputs


# Layer classes whose output is a function of the architecture JSON and the weights alone. A custom layer or a
# Lambda runs Python code the content hash does not see (editing it would not change the key), so a model
# holding one is always predicted afresh.
_PURE_MODULES = ("keras.", "tf_keras.", "tensorflow_model_optimization.")
_IMPURE_CLASSES = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
PREDICTION_FACT = "keras-outputs"


def _hash_of_pure_model(obj) -> str | None:
    """The content hash of a Keras model whose outputs depend on its architecture and weights only, else None."""
    from pytest_tinyml import identity

    if identity.model_family(obj) is None:
        return None
    classes = [type(obj), *(type(layer) for layer in identity.all_layers(obj))]
    if any(not (k.__module__ or "").startswith(_PURE_MODULES) or k.__name__ in _IMPURE_CLASSES for k in classes):
        return None
    try:
        return identity.model_hash(obj)
    except Exception:  # a model that cannot describe itself is predicted, not remembered
        return None


def _prediction_parts(model_hash: str, obj, x: np.ndarray) -> dict:
    import hashlib

    from pytest_tinyml import memo

    x = np.ascontiguousarray(x)
    inputs = hashlib.sha256(f"{x.shape}{x.dtype.str}".encode() + x.tobytes()).hexdigest()
    return {"model": model_hash, "inputs": inputs, "module": type(obj).__module__,
            "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
            "versions": memo.versions("keras", "tf_keras", "tensorflow", "tensorflow-model-optimization",
                                      "jax", "torch", "numpy")}


def keras_outputs(obj, x: np.ndarray, role: str) -> np.ndarray:
    """``obj.predict(x)`` as one float64 array, remembered per (model content hash, input bytes, versions).

    A prediction is a pure function of the architecture, the weights, the inputs and the libraries' versions,
    so the kept array (float64 bytes, checksummed by :mod:`pytest_tinyml.memo`) is bit-identical to
    predicting again; a changed weight, input or version is another key. Models with custom layers or
    Lambdas (code the hash does not see) are always predicted.

    Example:
        >>> keras_outputs(model, x_test, "reference").shape        # doctest: +SKIP
        (200, 10)
    """
    import base64

    from pytest_tinyml import memo

    def predict() -> np.ndarray:
        run = getattr(obj, "predict", None)
        return single_output(run(x, verbose=0) if run is not None else obj(x), role)

    digest = _hash_of_pure_model(obj)
    if digest is None:
        return predict()
    parts = _prediction_parts(digest, obj, x)
    found, kept = memo.lookup(PREDICTION_FACT, parts)
    if found:
        try:
            array = np.frombuffer(base64.b64decode(kept["data"]), dtype="<f8")
            return array.reshape(kept["shape"]).copy()
        except (KeyError, TypeError, ValueError):
            pass  # not what this function writes: predict again and overwrite it
    outputs = predict()
    little = np.ascontiguousarray(outputs, dtype="<f8")
    memo.store(PREDICTION_FACT, parts, {"shape": list(little.shape),
                                        "data": base64.b64encode(little.tobytes()).decode("ascii")})
    return outputs


def raw_outputs_of(model: Model, x: np.ndarray, *, reference_kernels: bool = False):
    """Integer outputs before dequantization, or None when the model has none to give."""
    if model.kind == "device":
        raw = getattr(model.obj, "raw_outputs", None)
        return None if raw is None else np.asarray(raw)
    if model.kind == "tflite" and model.output_quant is not None:
        raw = _litert(model, reference_kernels).predict_raw(x)
        return single_output(raw, "raw outputs").astype(np.int64)
    return None
