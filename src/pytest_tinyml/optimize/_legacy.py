"""Load tf_keras and tensorflow-model-optimization next to Keras 3, in the same process.

tfmot 0.8.1 picks its Keras at import time: it sets ``TF_USE_LEGACY_KERAS=1`` in ``os.environ`` and then asks
``tf.keras`` which Keras it is. If ``tf.keras`` has not been touched yet, that routes ``tf.keras`` to tf_keras
for the whole process, and the variable leaks into every child process we start afterwards (the converter's
child would then see tf_keras where it expects Keras 3). So we resolve ``tf.keras`` to Keras 3 first, import
tfmot (which then imports tf_keras for itself), and put the environment back as it was.

Measured here (TF 2.21, Keras 3.15, tf_keras 2.21, tfmot 0.8.1): tfmot prunes, clusters and quantizes tf_keras
models in a process that already built and trained Keras 3 models, and Keras 3 keeps training afterwards;
the extra import costs about 0.5 s. No child process is needed for the recipes themselves.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_modules: dict[str, object] = {}


def tf_keras():
    """Return the ``tf_keras`` module (Keras 2), imported without touching ``tf.keras`` routing.

    Example:
        >>> tfk = tf_keras()
        >>> tfk.layers.Dense(2).units
        2
    """
    _load()
    return _modules["tf_keras"]


def tfmot():
    """Return ``tensorflow_model_optimization``, bound to tf_keras, leaving ``TF_USE_LEGACY_KERAS`` as it was.

    Example:
        >>> hasattr(tfmot().sparsity.keras, "prune_low_magnitude")
        True
    """
    _load()
    return _modules["tfmot"]


def _load() -> None:
    if _modules:
        return
    with _lock:
        if _modules:
            return
        before = os.environ.get("TF_USE_LEGACY_KERAS")
        try:
            import tensorflow as tf

            if before not in ("1", "true", "True"):
                # Resolve the lazy tf.keras now, while it still routes to Keras 3 (see the module docstring).
                getattr(tf.keras, "version", None)
            import tensorflow_model_optimization as tfmot_module
            import tf_keras as tf_keras_module
        finally:
            if before is None:
                os.environ.pop("TF_USE_LEGACY_KERAS", None)
            else:
                os.environ["TF_USE_LEGACY_KERAS"] = before
        _modules["tf_keras"] = tf_keras_module
        _modules["tfmot"] = tfmot_module
