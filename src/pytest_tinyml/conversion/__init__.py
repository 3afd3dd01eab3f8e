"""Post-training conversion of Keras models to TFLite, in a child process that may crash without harm.

Example:
    >>> from pytest_tinyml import convert
    >>> art = convert(model, "int8", representative=x_train)      # doctest: +SKIP
    >>> art.inputs[0].dtype, art.size
    ('int8', 14592)

Recipes (``RECIPES``): ``float32``, ``dynamic_range``, ``float16``, ``int8`` (full integer) and ``int16x8``.
What runs where: every recipe loads in LiteRT. TFLite Micro runs ``float32``, ``int8`` and ``int16x8``
(for the ops it has 16x8 kernels for); it has no hybrid kernels for ``dynamic_range`` and no float16
weights for ``float16``: those two are for LiteRT (phones, Linux boards).

Conversions go to one long-lived worker process per Python process (TensorFlow is imported there once);
a crash or a hang ends only that worker, and the next conversion starts a new one. Set
``PYTEST_TINYML_CONVERT_REUSE=0`` for a fresh process per conversion.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from pytest_tinyml.errors import CalibrationWarning, ConfigError, ConversionError
from pytest_tinyml.tflite.artifact import TFLiteArtifact, current_versions

__all__ = ["convert", "RECIPES", "TFLiteArtifact", "prepare_representative"]

RECIPES: dict[str, str] = {
    "float32": "no quantization; float32 weights and activations (TFLite Micro and LiteRT)",
    "dynamic_range": "int8 weights, float activations computed by hybrid kernels (LiteRT only: TFLM has none)",
    "float16": "float16 weights dequantized at load (LiteRT only: TFLM has no float16 weights)",
    "int8": "full integer: int8 weights and activations, int8 I/O by default (needs representative=)",
    "int16x8": "int16 activations, int8 weights, int16 I/O by default (needs representative=)",
}
FULL_INTEGER = {"int8", "int16x8"}
# Bumped when the same inputs convert to a different graph (2: TFLite Micro recipes traced at batch 1); part of
# tinyml_cache.convert's key, so entries made by an older policy are not reused.
CONVERSION_POLICY = 2
TARGETS = ("tflm", "litert")
MIN_CALIBRATION_SAMPLES = 100
DEFAULT_MAX_CALIBRATION_SAMPLES = 500
# Converter parameters accepted as **params, with their defaults.
PARAMS = {"max_calibration_samples": DEFAULT_MAX_CALIBRATION_SAMPLES, "select_tf_ops": False, "per_channel": True}


def _io_dtype(recipe: str, target: str, io_dtype: str | None, label: str) -> str:
    if recipe not in FULL_INTEGER:
        if io_dtype not in (None, "float32"):
            raise ConfigError(
                f"{label}: io_dtype={io_dtype!r} needs a full-integer recipe; recipe {recipe!r} has float32 I/O "
                "(use recipe='int8' for int8 I/O)"
            )
        return "float32"
    allowed = {"int8": ("int8", "uint8", "float32"), "int16x8": ("int16", "float32")}[recipe]
    io_dtype = io_dtype or {"int8": "int8", "int16x8": "int16"}[recipe]
    if io_dtype not in allowed:
        raise ConfigError(f"{label}: io_dtype={io_dtype!r} is not one of {allowed} for recipe {recipe!r}")
    if io_dtype == "uint8" and target == "tflm":
        raise ConversionError(
            f"{label}: uint8 I/O is refused for target='tflm': TensorFlow Lite Micro dropped uint8 "
            "quantization (its kernels are int8 only). Use io_dtype='int8' (the default; shift uint8 "
            "data by -128), or target='litert' if the model only runs on LiteRT."
        )
    return io_dtype


def prepare_representative(representative: Any, *, max_samples: int = DEFAULT_MAX_CALIBRATION_SAMPLES,
                           sample_shape=None):
    """A float32 array of calibration samples (batch axis first) from any form users pass.

    See :func:`pytest_tinyml.validation.representative_samples`: an array, a list of samples, a list of
    ``[sample]`` lists, a generator (or a callable returning one), a ``tf.data.Dataset`` or a ``Dataset`` give
    the same array; NaN/Inf or a sample of the wrong shape is a ``ConfigError`` naming the first bad sample.
    ``sample_shape``: the model's input shape without the batch axis, when known.

    Example:
        >>> prepare_representative(np.zeros((1000, 64)), max_samples=200).shape     # doctest: +SKIP
        (200, 64)
    """
    from pytest_tinyml.validation import representative_samples

    return representative_samples(representative, sample_shape=sample_shape, max_samples=max_samples)


def representative_hash(array) -> str | None:
    """sha256 of a prepared representative array (shape, dtype and bytes); None for None."""
    import hashlib

    if array is None:
        return None
    digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def optimization_steps(model: Any) -> dict:
    """What ``pytest_tinyml.optimize`` recorded on a model it returned (``{"pruning": {...}}``), as plain data.

    Example:
        >>> optimization_steps(object())
        {}
    """
    import json

    tag = getattr(model, "tinyml_optimization", None) if not isinstance(model, (str, os.PathLike)) else None
    if not tag:
        return {}
    # Keras wraps attribute dicts in tracking types: a JSON round trip makes them plain again.
    return json.loads(json.dumps({str(k): dict(v) for k, v in dict(tag).items()}, default=str))


def _sample_shape(model):
    """The input sample shape of an in-memory Keras model (None for a path: the worker checks it there)."""
    if isinstance(model, (str, os.PathLike)):
        return None
    from pytest_tinyml.validation import sample_shape_of

    return sample_shape_of(model)


def check_params(params: dict, label: str) -> dict:
    """The converter parameters with defaults filled in; ``ConfigError`` for an unknown one."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ConfigError(f"{label}: unknown converter parameter(s) {unknown}; known: {sorted(PARAMS)}")
    return {**PARAMS, **params}


def convert(
    model: Any,
    recipe: str = "float32",
    *,
    representative: Any = None,
    target: str = "tflm",
    io_dtype: str | None = None,
    name: str | None = None,
    timeout: float = 300.0,
    trust: bool | None = None,
    **params: Any,
) -> TFLiteArtifact:
    """Convert a model to TFLite with a post-training recipe, in a child process; returns a ``TFLiteArtifact``.

    ``model``: a Keras 3 model (any backend: it is saved as ``.keras`` and converted on the TensorFlow
    backend), a tf_keras model (QAT / pruned / clustered by tfmot), a ``.keras`` / ``.h5`` path or a
    SavedModel directory. ``recipe``: one of ``RECIPES``. Full-integer recipes need ``representative``
    (array with the batch axis first, a ``Dataset`` - its ``x_train`` - or a generator), except for a
    quantization-aware-trained model. ``target``: ``"tflm"`` (int8-only op set, no uint8 I/O) or
    ``"litert"``. ``params``: ``max_calibration_samples`` (500), ``select_tf_ops`` (False; LiteRT only),
    ``per_channel`` (True). ``trust``: a legacy ``.h5`` file whose ``Lambda`` layers hold Python bytecode
    (which loading it runs) is refused with ``UntrustedModelError`` unless ``trust=True`` (default: the
    session's ``--tinyml-trust-legacy``, off). The result is checked against the recipe in the worker (an
    ``int8`` graph with a float kernel is a ``ConversionError`` saying what was found).

    A crash, a hang past ``timeout`` seconds or a converter exception raises ``ConversionError`` naming
    the model, the recipe, the signal / timeout / exception, the converter's last stderr lines and a fix.

    Example:
        >>> art = convert(model, "int8", representative=ds.x_train, name="mlp")   # doctest: +SKIP
        >>> art.inputs[0]
        TensorQuant(name='serving_default_keras_tensor:0', shape=(1, 64), dtype='int8', scale=0.0627, zero_point=-128)
    """
    from pytest_tinyml import identity
    from pytest_tinyml.conversion._runner import run_child

    display = name or (getattr(model, "name", None) if not isinstance(model, (str, os.PathLike)) else None)
    display = display or (Path(model).stem if isinstance(model, (str, os.PathLike)) else "model")
    label = f"model {display!r}, recipe {recipe!r}"
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r} for model {display!r}: choose one of {sorted(RECIPES)}")
    if target not in TARGETS:
        raise ConfigError(f"{label}: unknown target {target!r}: choose one of {TARGETS}")
    params = check_params(params, label)
    if params["select_tf_ops"] and target != "litert":
        raise ConfigError(f"{label}: select_tf_ops=True needs target='litert' (TFLite Micro has no TF ops)")
    io = _io_dtype(recipe, target, io_dtype, label)
    identity.check_trust(model, trust)
    qat = identity.model_family(model) == "tf_keras" and identity.is_qat(model)
    samples = None
    if recipe in FULL_INTEGER:
        samples = prepare_representative(representative, max_samples=int(params["max_calibration_samples"]),
                                         sample_shape=_sample_shape(model))
        if samples is None and not qat and not isinstance(model, (str, os.PathLike)):
            raise ConversionError(
                f"{label}: full-integer quantization needs a representative dataset to calibrate activation "
                "ranges. Fix: convert(model, recipe, representative=x_train) with a few hundred training "
                "samples (batch axis first), a pytest_tinyml Dataset, or a generator yielding [x[i:i+1]]."
            )
        if samples is not None and samples.shape[0] < MIN_CALIBRATION_SAMPLES:
            warnings.warn(
                f"{label}: calibrating on {samples.shape[0]} representative samples; under "
                f"{MIN_CALIBRATION_SAMPLES} the activation ranges may be off. Pass more samples.",
                CalibrationWarning,
                stacklevel=2,
            )

    workdir = Path(tempfile.mkdtemp(prefix="tinyml-convert-"))
    try:
        source = identity.prepare(model, workdir, name)
        job = {
            "kind": source.kind,
            "path": source.path,
            "source_hash": source.source_hash,
            "qat": source.qat,
            "layer_classes": list(source.layer_classes),
            "name": source.name,
            "recipe": recipe,
            "target": target,
            "io_dtype": io,
            "params": params,
            "representative": None,
            # A Keras model holding Python lambdas is reloaded by the worker only when the caller trusts it.
            "trust": bool(trust if trust is not None else identity.trust_legacy_default()),
        }
        if samples is not None:
            import numpy as np

            job["representative"] = str(workdir / "representative.npy")
            np.save(job["representative"], samples)
        result = run_child(workdir, job, timeout=timeout, label=f"model {source.name!r}, recipe {recipe!r}")
        content = (workdir / "model.tflite").read_bytes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    recorded = {"target": target, "io_dtype": io, **params, "calibration_samples": result["calibration_samples"]}
    if result.get("qat"):
        recorded["qat"] = True
    if result.get("fixed_batch"):
        # Traced at batch 1 with static shapes: a recurrent loop lowers to builtins only there, and TFLite Micro
        # recipes get the graph the device runs (host evaluation still batches: see runtime.litert).
        recorded["fixed_batch"] = 1
        recorded["fixed_batch_reason"] = result["fixed_batch"]
    steps = optimization_steps(model)
    if steps:  # pruned / clustered by pytest_tinyml.optimize: reports name the recipe and show what it buys
        from pytest_tinyml.optimize.sparsity import gzip_size

        recorded.update(steps)
        recorded["gzip_size"] = gzip_size(content)
    return TFLiteArtifact.from_bytes(
        content,
        name=source.name,
        recipe=recipe,
        params=recorded,
        source_hash=result["source_hash"],
        versions=current_versions(**result["versions"]),
    )

