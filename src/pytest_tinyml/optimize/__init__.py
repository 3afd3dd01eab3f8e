"""Training-time optimization recipes: QAT, pruning, clustering, distillation, and the combined pipeline.

Importing this package is cheap: each name loads its module (and Keras, tf_keras, tfmot) on first use.
Modules are named after the technique (``pruning``, ``quantization``, ``clustering``, ``distillation``,
``combined``) so that they never shadow the functions of the same name exported here.

- ``prune(model, dataset, *, target_sparsity=0.5, schedule="polynomial", epochs=2, structured=None,
  backend="tfmot")`` -> :class:`PruneResult` (stripped Keras 3 model, measured sparsity).
- ``qat(model, dataset, *, epochs=3, batch_size=32, preserve_sparsity=False)`` -> quantization-aware trained
  tf_keras model, to convert with ``convert(qat_model, "int8", representative=...)``.
- ``cluster(model, dataset, *, clusters=16, epochs=1)`` -> :class:`ClusterResult`.
- ``distill(teacher, student, dataset, *, temperature=4.0, alpha=0.1, epochs=10)`` -> the trained student;
  :class:`Distiller` and :func:`distillation_loss` for custom loops.
- ``pipeline(model, dataset, *, target_sparsity=0.5, ...)`` -> full-int8 ``TFLiteArtifact`` (prune -> strip ->
  pruning-preserving QAT -> int8).
- ``MagnitudePruning``: the backend-agnostic Keras 3 pruning callback.
- ``to_tf_keras`` / ``to_keras3``: the bridge tfmot needs. ``gzip_size``, ``measure_sparsity``.

What works where (measured on the zoo): the bridge carries every zoo entry (outputs equal within 1e-5 both
ways); tfmot pruning and clustering wrap every entry; tfmot's default 8-bit QAT scheme has no Conv1D or LSTM,
so ``qat`` raises ``OptimizationError`` for ``audio_conv1d``, ``gesture_cnn`` and ``gesture_lstm`` (use
post-training int8 for those). tfmot runs in this process next to Keras 3 (see ``_legacy``); the native
pruning callback and ``Distiller`` are plain Keras 3 and are tested on the TensorFlow and JAX backends.

Example:
    >>> from pytest_tinyml import optimize
    >>> optimize.gzip_size(bytes(100)) < 100
    True
"""

from __future__ import annotations

import importlib

_LAZY = {
    "prune": "pytest_tinyml.optimize.pruning",
    "PruneResult": "pytest_tinyml.optimize.pruning",
    "qat": "pytest_tinyml.optimize.quantization",
    "cluster": "pytest_tinyml.optimize.clustering",
    "ClusterResult": "pytest_tinyml.optimize.clustering",
    "distill": "pytest_tinyml.optimize.distillation",
    "Distiller": "pytest_tinyml.optimize.distillation",
    "distillation_loss": "pytest_tinyml.optimize.distillation",
    "pipeline": "pytest_tinyml.optimize.combined",
    "MagnitudePruning": "pytest_tinyml.optimize.native_prune",
    "to_tf_keras": "pytest_tinyml.optimize.bridge",
    "to_keras3": "pytest_tinyml.optimize.bridge",
    "SUPPORTED_LAYERS": "pytest_tinyml.optimize.bridge",
    "gzip_size": "pytest_tinyml.optimize.sparsity",
    "measure_sparsity": "pytest_tinyml.optimize.sparsity",
    "tflite_weight_sparsity": "pytest_tinyml.optimize.sparsity",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_tinyml.optimize' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
