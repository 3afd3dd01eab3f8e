"""Reference architectures: the tutorial's models and the MLPerf Tiny reference models.

``names()`` lists them, ``spec(name)`` describes one without importing Keras, ``build(name)`` returns a fresh,
untrained, uncompiled Keras 3 model.

Example:
    >>> from pytest_tinyml import zoo
    >>> zoo.spec("ic_resnet8").family
    'mlperf_tiny'
    >>> model = zoo.build("mlp", input_shape=(64,), num_classes=10)   # digits
    >>> model.name
    'mlp'
"""

from __future__ import annotations

from typing import Any

from pytest_tinyml.errors import ZooError
from pytest_tinyml.zoo import mlperf, tutorial
from pytest_tinyml.zoo._spec import Entry, ZooSpec

__all__ = ["ZooSpec", "build", "names", "spec"]

_REGISTRY: dict[str, Entry] = {entry.spec.name: entry for entry in tutorial.ENTRIES + mlperf.ENTRIES}


def names(family: str | None = None) -> list[str]:
    """Names of the zoo's architectures, in registry order; ``family`` filters ("tutorial", "mlperf_tiny").

    Example:
        >>> names("mlperf_tiny")
        ['kws_dscnn', 'vww_mobilenet_v1', 'ic_resnet8', 'ad_autoencoder']
    """
    if family is not None and family not in ("tutorial", "mlperf_tiny"):
        raise ZooError(f"unknown zoo family {family!r}; known: 'tutorial', 'mlperf_tiny'")
    return [n for n, e in _REGISTRY.items() if family is None or e.spec.family == family]


def _entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ZooError(
            f"unknown zoo model {name!r}; known models: {', '.join(_REGISTRY)}. "
            "Build your own Keras model for anything else."
        ) from None


def spec(name: str) -> ZooSpec:
    """The :class:`ZooSpec` of ``name`` (task, default shapes, dataset, citation, int8 budgets).

    Example:
        >>> spec("ad_autoencoder").num_classes is None
        True
    """
    return _entry(name).spec


def build(
    name: str,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    *,
    seed: int | None = 0,
    **hyperparams: Any,
):
    """Build the untrained, uncompiled Keras 3 model ``name``.

    ``input_shape`` (without the batch axis) and ``num_classes`` default to the spec's. ``hyperparams`` are
    the builder's keyword arguments (``spec(name).hyperparams`` lists them with their defaults). ``seed``
    (default 0) seeds Keras's global random state first (``keras.utils.set_random_seed``): the initial weights
    are the same every session, so ``tinyml_cache.fit`` finds the trained model instead of training it again.
    ``seed=None`` leaves the random state alone. Models with BatchNorm take ``bn_momentum`` (Keras's 0.99 by
    default, as the references);
    0.9 lets the moving statistics catch up in the few epochs of a CI training run.

    Example:
        >>> build("kws_dscnn").count_params()
        24908
    """
    entry = _entry(name)
    s = entry.spec
    unknown = sorted(set(hyperparams) - set(s.hyperparams))
    if unknown:
        accepted = ", ".join(f"{k}={v!r}" for k, v in s.hyperparams.items()) or "none"
        raise ZooError(f"zoo model {name!r} has no hyperparameter {', '.join(unknown)}; accepted: {accepted}")
    if s.num_classes is None:
        if num_classes is not None:
            raise ZooError(f"zoo model {name!r} is an autoencoder ({s.task}): it takes no num_classes")
    else:
        num_classes = s.num_classes if num_classes is None else num_classes
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ZooError(f"zoo model {name!r}: num_classes must be an integer >= 2, got {num_classes!r}")
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    shape = s.input_shape if input_shape is None else input_shape
    return entry.builder(name, shape, num_classes, **hyperparams)
