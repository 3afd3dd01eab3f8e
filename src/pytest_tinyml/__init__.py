"""pytest-tinyml: test edge ML models like code, on the host and on real boards.

The public API is imported lazily, so ``import pytest_tinyml`` (and loading the pytest plugin) costs nothing:
TensorFlow, Keras and numpy load only when a name that needs them is first used.

Example:
    >>> import pytest_tinyml as tinyml
    >>> "mlp" in tinyml.zoo.names()
    True
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "zoo": ("pytest_tinyml.zoo", None),
    "datasets": ("pytest_tinyml.datasets", None),
    "optimize": ("pytest_tinyml.optimize", None),
    "metrics": ("pytest_tinyml.metrics", None),
    "analyze": ("pytest_tinyml.analyze", None),
    "runtime": ("pytest_tinyml.runtime", None),
    "strategies": ("pytest_tinyml.strategies", None),
    "errors": ("pytest_tinyml.errors", None),
    "history": ("pytest_tinyml.history", None),
    "convert": ("pytest_tinyml.conversion", "convert"),
    "TFLiteArtifact": ("pytest_tinyml.tflite.artifact", "TFLiteArtifact"),
    "Dataset": ("pytest_tinyml.datasets", "Dataset"),
    "TinyMLCache": ("pytest_tinyml.cache", "TinyMLCache"),
    "LatencyStats": ("pytest_tinyml.latency", "LatencyStats"),
    "assert_accuracy_drop": ("pytest_tinyml.assertions", "assert_accuracy_drop"),
    "assert_budget": ("pytest_tinyml.assertions", "assert_budget"),
    "assert_parity": ("pytest_tinyml.assertions", "assert_parity"),
    "assert_tflm_compatible": ("pytest_tinyml.assertions", "assert_tflm_compatible"),
    "outputs": ("pytest_tinyml.assertions", "outputs"),
    "assert_esp_nn_fast_path": ("pytest_tinyml.espnn", "assert_esp_nn_fast_path"),
    "diagnose": ("pytest_tinyml.diagnosis", "diagnose"),
    "estimate": ("pytest_tinyml.estimation", "estimate"),
    "Estimate": ("pytest_tinyml.estimation", "Estimate"),
    "esp_nn_paths": ("pytest_tinyml.espnn", "esp_nn_paths"),
    "record": ("pytest_tinyml.report", "record"),
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_tinyml' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return __all__
