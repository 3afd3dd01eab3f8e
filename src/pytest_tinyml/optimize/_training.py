"""What every recipe needs to fine-tune a model: the arrays, the loss that fits its head, a seed, a schedule.

Works with a :class:`pytest_tinyml.datasets.Dataset` or any object with ``x_train, y_train, x_test, y_test``
(and optionally ``task``), and with Keras 3 or tf_keras models (``lib`` is the ``keras`` or ``tf_keras`` module).
"""

from __future__ import annotations

import math

from pytest_tinyml.errors import ConfigError

# Tasks whose target is the input itself (autoencoders, anomaly detection by reconstruction).
_RECONSTRUCTION_TASKS = {"autoencoder", "anomaly", "anomaly_detection", "reconstruction"}


def arrays(dataset, recipe: str):
    """``(x_train, y_train)`` ready for ``fit``: targets are the inputs for reconstruction tasks."""
    import numpy as np

    try:
        x, y = dataset.x_train, dataset.y_train
    except AttributeError:
        raise ConfigError(
            f"{recipe}: the dataset must have x_train and y_train (a pytest_tinyml Dataset, or "
            f"datasets.from_arrays(x, y)); got {type(dataset).__name__}."
        ) from None
    x = np.asarray(x, dtype="float32")
    if is_reconstruction(dataset) or y is None:
        return x, x
    return x, np.asarray(y)


def is_reconstruction(dataset) -> bool:
    return str(getattr(dataset, "task", "classification")).lower() in _RECONSTRUCTION_TASKS


def ends_in_softmax(model) -> bool:
    """True if the model's last layer applies a softmax (Keras 3 or tf_keras)."""
    last = model.layers[-1]
    last = getattr(last, "layer", last)  # tfmot wrappers (pruning, clustering, quantization) hold the layer
    if type(last).__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def compile_for(model, dataset, lib, *, reference=None, learning_rate: float = 1e-3) -> None:
    """Compile ``model`` with Adam and the loss its head and task call for.

    ``reference`` is the unwrapped model whose head decides ``from_logits`` (tfmot's QAT wrappers replace the
    activation object, so the wrapped model no longer shows its softmax).
    """
    task = str(getattr(dataset, "task", "classification")).lower()
    if is_reconstruction(dataset) or task == "regression":
        loss, metrics = lib.losses.MeanSquaredError(), []
    else:
        softmax = ends_in_softmax(reference if reference is not None else model)
        y = getattr(dataset, "y_train", None)
        one_hot = getattr(y, "ndim", 1) > 1 and y.shape[-1] > 1
        losses = lib.losses.CategoricalCrossentropy if one_hot else lib.losses.SparseCategoricalCrossentropy
        loss = losses(from_logits=not softmax)
        metrics = ["accuracy"]
    model.compile(optimizer=lib.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=metrics)


def steps_per_epoch(dataset, batch_size: int) -> int:
    return max(1, math.ceil(len(dataset.x_train) / batch_size))


def seed_everything(seed: int) -> None:
    """Seed numpy, TensorFlow, Keras 3 and tf_keras so a recipe run is repeatable."""
    import keras

    keras.utils.set_random_seed(seed)  # seeds python, numpy and the backend (TensorFlow here)
