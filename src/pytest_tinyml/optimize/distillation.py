"""Knowledge distillation done right (Hinton et al. 2015), backend-agnostic with ``keras.ops``.

    loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))

Both networks are compared on LOGITS softened by the temperature T. A teacher or student that ends in a softmax
is read before its softmax (for a ``Dense(..., activation="softmax")`` head the logits are recomputed from the
layer's own kernel and bias). The T^2 factor keeps the soft term's gradients on the scale of the hard term's.
The teacher runs inside the train step (``training=False``, no gradient), never through ``predict``.

Example:
    >>> from pytest_tinyml import optimize
    >>> student = optimize.distill(teacher, student, dataset, temperature=4.0, alpha=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import keras

from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError
from pytest_tinyml.optimize import _cached


def distillation_loss(
    y_true, student_logits, teacher_logits, *, temperature: float = 4.0, alpha: float = 0.1
):
    """Mean over the batch of ``alpha * hard + (1 - alpha) * T^2 * KL(teacher_T || student_T)``.

    ``y_true`` holds integer class labels (or one-hot rows). Works on any Keras backend.

    Example:
        >>> import numpy as np
        >>> loss = distillation_loss(np.array([0]), np.array([[2.0, 0.0]]), np.array([[2.0, 0.0]]), alpha=0.0)
        >>> float(loss)  # identical logits: no KL divergence
        0.0
    """
    ops = keras.ops
    student_logits = ops.convert_to_tensor(student_logits, dtype="float32")
    teacher_logits = ops.convert_to_tensor(teacher_logits, dtype="float32")
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(student_logits.shape) and y_true.shape[-1] == student_logits.shape[-1]:
        hard = keras.losses.categorical_crossentropy(y_true, student_logits, from_logits=True)
    else:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
    log_teacher = ops.log_softmax(teacher_logits / temperature, axis=-1)
    log_student = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)
    return ops.mean(alpha * hard + (1.0 - alpha) * (temperature**2) * kl)


def logits_of(model):
    """A callable ``(x, training) -> logits`` for a classifier, whether or not it ends in a softmax.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        >>> z = logits_of(m)(np.ones((1, 3), "float32"), training=False)
        >>> np.allclose(keras.ops.softmax(z), m(np.ones((1, 3), "float32")))
        True
    """
    if not training.ends_in_softmax(model):
        return lambda x, training=False: model(x, training=training)
    last = model.layers[-1]
    try:
        body = keras.Model(model.inputs, last.input)
    except (AttributeError, ValueError) as exc:  # subclassed model: no graph to cut
        raise ConfigError(
            f"Model {model.name!r} ends in a softmax but is not a functional/Sequential model, so its logits "
            "cannot be read. Build it without the final softmax (output logits) and pass that."
        ) from exc
    if type(last).__name__ == "Softmax" or type(last).__name__ == "Activation":
        return lambda x, training=False: body(x, training=training)
    if type(last).__name__ == "Dense":

        def dense_logits(x, training=False):
            z = keras.ops.matmul(body(x, training=training), last.kernel)
            return keras.ops.add(z, last.bias) if last.use_bias else z

        return dense_logits

    # Any other layer with a softmax activation: log-probabilities are the logits up to a per-row constant,
    # which softmax ignores; the clip only bites on probabilities float32 rounds to 0.
    return lambda x, training=False: keras.ops.log(keras.ops.clip(model(x, training=training), 1e-7, 1.0))


class Distiller(keras.Model):
    """A ``keras.Model`` that trains ``student`` from labels and a frozen ``teacher``'s softened logits.

    ``distiller(x)`` returns the student's logits; ``compute_loss`` is :func:`distillation_loss` plus the
    student's regularization losses (sample weights are not applied). The teacher is frozen
    (``teacher.trainable = False``) when the Distiller is built. Written
    with ``keras.ops`` and ``compute_loss`` (no backend-specific ``train_step``): tested on TensorFlow and
    JAX; nothing in it is specific to a backend, so torch should work too (not installed here, untested).

    Example:
        >>> d = Distiller(teacher, student, temperature=4.0, alpha=0.1)  # doctest: +SKIP
        >>> d.compile(optimizer="adam", metrics=["accuracy"]); d.fit(x, y, epochs=10)  # doctest: +SKIP
    """

    def __init__(self, teacher, student, *, temperature: float = 4.0, alpha: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ConfigError(f"Distiller: temperature={temperature} must be > 0.")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"Distiller: alpha={alpha} must be in [0, 1].")
        teacher.trainable = False  # frozen: its weights are not Distiller's to train
        self.teacher = teacher
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self._teacher_logits = logits_of(teacher)
        self._student_logits = logits_of(student)

    def call(self, x, training=False):
        return self._student_logits(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = keras.ops.stop_gradient(self._teacher_logits(x, training=False))
        loss = distillation_loss(y, y_pred, teacher_logits, temperature=self.temperature, alpha=self.alpha)
        regularizers = self.student.losses
        if regularizers:
            loss = loss + keras.ops.sum(keras.ops.stack([keras.ops.sum(term) for term in regularizers]))
        return loss


def distill(
    teacher,
    student,
    dataset,
    *,
    temperature: float = 4.0,
    alpha: float = 0.1,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    cache=None,
):
    """Train ``student`` (in place) by distillation from a trained ``teacher``; return the student.

    The teacher is frozen during training and its ``trainable`` flag restored afterwards. The returned student
    keeps its own head (a softmax student still outputs probabilities) and converts like any Keras 3 model.
    With ``cache`` (a ``TinyMLCache``), the weights of an identical earlier run (same teacher, same initial
    student, data and arguments) are loaded into ``student`` instead of training it again.

    Example:
        >>> digits = datasets.load("digits")  # doctest: +SKIP
        >>> student = distill(trained_teacher, zoo.build("student", input_shape=(64,), num_classes=10),
        ...                   digits, temperature=4.0, alpha=0.1, epochs=10)  # doctest: +SKIP
    """
    x, y = training.arrays(dataset, "distill")
    if training.is_reconstruction(dataset):
        raise ConfigError(
            "distill: distillation needs a classification dataset (labels), not a reconstruction task."
        )
    if tuple(teacher.output_shape[1:]) != tuple(student.output_shape[1:]):
        raise ConfigError(
            f"distill: teacher {teacher.name!r} outputs {teacher.output_shape[1:]} but student {student.name!r} "
            f"outputs {student.output_shape[1:]}; both must predict the same classes."
        )
    params = {
        "temperature": temperature,
        "alpha": alpha,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
    }

    def produce():
        training.seed_everything(seed)
        was_trainable = teacher.trainable
        teacher.trainable = False
        try:
            distiller = Distiller(teacher, student, temperature=temperature, alpha=alpha)
            distiller.compile(
                optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            )
            distiller.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        finally:
            teacher.trainable = was_trainable
        return student

    def save(trained, directory) -> None:
        trained.save_weights(str(directory / "student.weights.h5"))

    def load(directory):
        student.load_weights(str(directory / "student.weights.h5"))
        return student

    parts = {
        "teacher": _cached.model_key(teacher),
        "student": _cached.model_key(student),
        "dataset": _cached.dataset_key(dataset),
        "params": params,
    }
    return _cached.run(cache, "distill", parts, produce, save, load)
