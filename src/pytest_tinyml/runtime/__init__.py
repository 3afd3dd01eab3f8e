"""Host runtimes: LiteRT (batched) and TFLite Micro (real micro kernels, arena), with crash isolation.

* :func:`load` turns anything that names a model (a ``TFLiteArtifact``, flatbuffer ``bytes``, a path to a
  ``.tflite`` file, a Keras model) into a checked ``TFLiteArtifact``. Files are read in Python: the C++
  loaders only ever see bytes that passed :func:`pytest_tinyml.tflite.checks.check` (once per artifact: reading
  ``TFLiteArtifact.model`` is the check).
* :func:`predict` returns dequantized float outputs from either engine.
* :class:`~pytest_tinyml.runtime.litert.LiteRTRunner`, :class:`~pytest_tinyml.runtime.tflm.TFLMRunner` and
  :func:`~pytest_tinyml.runtime.tflm.arena` are the building blocks.
* Every model is loaded once per engine in a child process first (see :mod:`pytest_tinyml.runtime.isolation`
  for the policy).
* ``runtime.litert`` and ``runtime.tflm`` are reachable as attributes without importing them first.

Example:
    >>> from pytest_tinyml import runtime
    >>> y = runtime.predict("build/mlp_int8.tflite", x_test)            # doctest: +SKIP
    >>> y_micro = runtime.predict(artifact, x_test, engine="tflm")     # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.runtime import isolation
from pytest_tinyml.runtime.loader import load

ENGINES = isolation.ENGINES
_RUNNER_CACHE_SIZE = 8
_runners: OrderedDict = OrderedDict()

__all__ = ["ENGINES", "arena", "as_artifact", "litert", "load", "predict", "predict_raw", "runner", "tflm"]
_SUBMODULES = ("litert", "tflm", "microops", "batching")


def __getattr__(name: str):
    # tinyml.runtime.litert.LiteRTRunner must work without `import pytest_tinyml.runtime.litert` first.
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


as_artifact = load


def runner(model_like, *, engine: str = "litert"):
    """A (cached) runner for ``model_like`` on ``engine`` (``"litert"`` or ``"tflm"``).

    Example:
        >>> runner(artifact, engine="tflm").predict_raw(x[:1])    # doctest: +SKIP
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    artifact = load(model_like)
    key = (artifact.sha256, engine)
    if key in _runners:
        _runners.move_to_end(key)
        return _runners[key]
    if engine == "litert":
        from pytest_tinyml.runtime.litert import LiteRTRunner as Runner
    else:
        from pytest_tinyml.runtime.tflm import TFLMRunner as Runner
    instance = Runner(artifact)
    _runners[key] = instance
    while len(_runners) > _RUNNER_CACHE_SIZE:
        _runners.popitem(last=False)
    return instance


def predict(model_like, x, *, engine: str = "litert", isolated: bool = False):
    """Dequantized float32 outputs of ``model_like`` for float inputs ``x`` (first axis = sample).

    ``isolated=True`` runs the whole prediction in a child process (for models you do not trust at all).

    Example:
        >>> predict(artifact, x_test).argmax(axis=1)[:3]             # doctest: +SKIP
        array([2, 8, 1])
    """
    if isolated:
        return _predict_isolated(model_like, x, engine=engine, raw=False)
    return runner(model_like, engine=engine).predict(x)


def predict_raw(model_like, x, *, engine: str = "litert", isolated: bool = False):
    """Raw outputs (e.g. int8) of ``model_like`` for float inputs ``x``.

    Example:
        >>> predict_raw(artifact, x_test[:2]).dtype              # doctest: +SKIP
        dtype('int8')
    """
    if isolated:
        return _predict_isolated(model_like, x, engine=engine, raw=True)
    return runner(model_like, engine=engine).predict_raw(x)


def _predict_isolated(model_like, x, *, engine: str, raw: bool):
    import numpy as np

    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    artifact = load(model_like)
    x = [np.asarray(v) for v in x] if isinstance(x, (list, tuple)) else np.asarray(x)
    return isolation.run_task(
        "predict",
        {"content": artifact.content, "name": artifact.name, "engine": engine, "x": x, "raw": raw},
        model_name=artifact.name,
        engine=engine,
        what="running",
    )


def arena(model_like, **kwargs):
    """The TFLite Micro arena (host figure); see :func:`pytest_tinyml.runtime.tflm.arena`.

    Example:
        >>> arena(artifact).arena_bytes                         # doctest: +SKIP
        2448
    """
    from pytest_tinyml.runtime.tflm import arena as measure

    return measure(model_like, **kwargs)
