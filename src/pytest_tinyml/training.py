"""The one training policy: how pytest-tinyml compiles and feeds a Keras model it trains or fine-tunes.

Used by :meth:`pytest_tinyml.cache.TinyMLCache.fit` and by every ``optimize`` recipe (QAT, pruning,
clustering, distillation, the pipeline), so that a model trains the same way whichever path trains it.

The loss follows what the model outputs (its head) and what the dataset asks for (its task):

- ``reconstruction`` / ``anomaly`` / ``autoencoder`` tasks: x -> x with mean squared error;
  ``regression``: mean squared error on y;
- classification: cross-entropy (sparse for integer labels, categorical for one-hot ones). A head that ends in
  a softmax gets probabilities, any other head (``Dense(10)`` alone) gets ``from_logits=True``; a one-unit
  head trains with binary cross-entropy (``from_logits`` unless it ends in a sigmoid). A sigmoid over several
  classes is refused: cross-entropy over classes needs a softmax or logits.

:func:`policy` returns the choice as plain data; it is part of ``tinyml_cache.fit``'s cache key, so a change
of policy retrains.

Example:
    >>> policy(model, dataset)                  # doctest: +SKIP
    {'loss': 'sparse_categorical_crossentropy', 'from_logits': True, 'optimizer': 'adam', 'learning_rate': 0.001, ...}
"""

from __future__ import annotations

import math

from pytest_tinyml.errors import ConfigError

__all__ = ["arrays", "compile_for", "head_activation", "is_reconstruction", "policy", "seed_everything",
           "steps_per_epoch", "task_of"]

# Tasks whose target is the input itself (autoencoders, anomaly detection by reconstruction).
RECONSTRUCTION_TASKS = {"autoencoder", "anomaly", "anomaly_detection", "reconstruction"}
DEFAULT_LEARNING_RATE = 1e-3


def task_of(dataset) -> str:
    """The dataset's task, lower case (``classification`` when it does not say)."""
    return str(getattr(dataset, "task", None) or "classification").lower()


def is_reconstruction(dataset) -> bool:
    """True when the model learns x -> x (autoencoder, anomaly detection by reconstruction error)."""
    return task_of(dataset) in RECONSTRUCTION_TASKS


def arrays(dataset, recipe: str = "fit", *, model=None):
    """``(x_train, y_train)`` ready for ``fit``: targets are the inputs for reconstruction tasks.

    With ``model``, the data is validated against it first (:func:`pytest_tinyml.validation.check_inputs`
    and, for classification, :func:`pytest_tinyml.validation.check_labels`): NaN, a wrong layout or a label
    outside the model's classes is a ``ConfigError``, never a silent bad fit.

    Example:
        >>> x, y = arrays(datasets.load("digits"), "qat")       # doctest: +SKIP
    """
    import numpy as np

    from pytest_tinyml import validation

    try:
        x, y = dataset.x_train, dataset.y_train
    except AttributeError:
        raise ConfigError(
            f"{recipe}: the dataset must have x_train and y_train (a pytest_tinyml Dataset, or "
            f"datasets.from_arrays(x, y)); got {type(dataset).__name__}."
        ) from None
    if model is not None:
        x = validation.check_inputs(x, model, role=f"{recipe}: x_train")
    x = np.asarray(x, dtype="float32")
    if is_reconstruction(dataset) or y is None:
        return x, x
    y = np.asarray(y)
    if model is not None and task_of(dataset) == "classification":
        y = validation.check_labels(y, model, n=len(x), role=f"{recipe}: y_train")
    return x, y


def _last_layer(model):
    last = model.layers[-1]
    return getattr(last, "layer", last)  # tfmot wrappers (pruning, clustering, quantization) hold the layer


def head_activation(model) -> str | None:
    """``"softmax"``, ``"sigmoid"`` or ``None`` (logits / anything else) for the model's last layer.

    Example:
        >>> head_activation(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))   # doctest: +SKIP
    """
    last = _last_layer(model)
    kind = type(last).__name__
    if kind == "Softmax":
        return "softmax"
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None) or (activation if isinstance(activation, str) else "")
    return name if name in ("softmax", "sigmoid") else None


def ends_in_softmax(model) -> bool:
    """True if the model's last layer applies a softmax (Keras 3 or tf_keras)."""
    return head_activation(model) == "softmax"


def _units(model) -> int | None:
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else None
    if not shape:
        return None
    last = shape[-1]
    return int(last) if last is not None else None


def policy(model, dataset, *, reference=None, learning_rate: float = DEFAULT_LEARNING_RATE) -> dict:
    """The training choice for ``model`` on ``dataset`` as plain data (loss, from_logits, optimizer, ...).

    ``reference`` is the unwrapped model whose head decides ``from_logits`` (tfmot's QAT wrappers replace the
    activation object, so the wrapped model no longer shows its softmax).

    Example:
        >>> policy(keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)]), digits)["from_logits"]  # doctest: +SKIP
        True
    """
    task = task_of(dataset)
    base = {"optimizer": "adam", "learning_rate": float(learning_rate), "task": task}
    if is_reconstruction(dataset) or task == "regression":
        return {**base, "loss": "mean_squared_error", "from_logits": False,
                "metrics": ["mae"] if task == "regression" else []}
    head = head_activation(reference if reference is not None else model)
    units = _units(reference if reference is not None else model)
    y = getattr(dataset, "y_train", None)
    one_hot = getattr(y, "ndim", 1) > 1 and y.shape[-1] > 1
    if units == 1:
        return {**base, "loss": "binary_crossentropy", "from_logits": head != "sigmoid", "head": head or "logits",
                "metrics": ["accuracy"]}
    if head == "sigmoid":
        name = getattr(reference if reference is not None else model, "name", "model")
        raise ConfigError(
            f"model {name!r} ends in a sigmoid over {units} classes: cross-entropy over classes needs a softmax "
            "head (activation='softmax') or logits (no activation, trained with from_logits=True). Fix the head, "
            "or compile the model yourself before fit"
        )
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    return {**base, "loss": loss, "from_logits": head != "softmax", "head": head or "logits",
            "metrics": ["accuracy"]}


_LOSSES = {
    "mean_squared_error": "MeanSquaredError",
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}


def compile_for(model, dataset, lib=None, *, reference=None, learning_rate: float = DEFAULT_LEARNING_RATE) -> dict:
    """Compile ``model`` with Adam and the loss its head and task call for; returns the :func:`policy`.

    ``lib`` is the ``keras`` or ``tf_keras`` module (default: the model's own family).

    Example:
        >>> compile_for(model, datasets.load("digits"))["loss"]      # doctest: +SKIP
        'sparse_categorical_crossentropy'
    """
    chosen = policy(model, dataset, reference=reference, learning_rate=learning_rate)
    lib = lib if lib is not None else _library_of(model)
    loss_class = getattr(lib.losses, _LOSSES[chosen["loss"]])
    loss = loss_class() if chosen["loss"] == "mean_squared_error" else loss_class(from_logits=chosen["from_logits"])
    model.compile(optimizer=lib.optimizers.Adam(learning_rate=chosen["learning_rate"]), loss=loss,
                  metrics=list(chosen["metrics"]))
    return chosen


def _library_of(model):
    family = type(model).__module__.split(".")[0]
    if family == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def steps_per_epoch(dataset, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``dataset.x_train`` at ``batch_size``."""
    return max(1, math.ceil(len(dataset.x_train) / batch_size))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and the Keras backend so a training run is repeatable."""
    import keras

    keras.utils.set_random_seed(seed)
