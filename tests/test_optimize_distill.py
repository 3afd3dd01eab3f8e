"""Knowledge distillation: the loss on a hand-computed example, logits read before the softmax, and the
distilled student against the same student trained alone on digits."""

from __future__ import annotations

import math

import numpy as np
import pytest


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_optimize_distillation_loss_matches_hand_computation():
    from pytest_tinyml.optimize import distillation_loss

    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[0.5, 3.0, -1.0], [2.0, 0.0, 1.0]]
    labels = [1, 0]
    temperature, alpha = 2.0, 0.3
    expected = 0.0
    for s, t, y in zip(student, teacher, labels, strict=True):
        hard = -math.log(_softmax(s)[y])
        p_t = _softmax([v / temperature for v in t])
        p_s = _softmax([v / temperature for v in s])
        kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True))
        expected += alpha * hard + (1 - alpha) * temperature**2 * kl
    expected /= len(labels)

    loss = distillation_loss(
        np.array(labels), np.array(student), np.array(teacher), temperature=temperature, alpha=alpha
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # one-hot labels give the same loss
    one_hot = np.eye(3)[labels]
    assert float(
        distillation_loss(one_hot, np.array(student), np.array(teacher), temperature=temperature, alpha=alpha)
    ) == pytest.approx(expected, rel=1e-5)
    # alpha=1 is plain cross-entropy; identical logits and alpha=0 give zero
    assert float(distillation_loss(np.array(labels), np.array(student), np.array(teacher), alpha=1.0)) == (
        pytest.approx(
            sum(-math.log(_softmax(s)[y]) for s, y in zip(student, labels, strict=True)) / 2, rel=1e-5
        )
    )
    assert float(distillation_loss(np.array(labels), np.array(teacher), np.array(teacher), alpha=0.0)) == (
        pytest.approx(0.0, abs=1e-6)
    )


@pytest.mark.parametrize("head", ["dense_softmax", "softmax_layer", "logits"])
def test_optimize_logits_are_read_before_the_softmax(head):
    import keras

    from pytest_tinyml.optimize.distillation import logits_of

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    if head == "dense_softmax":
        outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    elif head == "softmax_layer":
        outputs = keras.layers.Softmax()(keras.layers.Dense(3)(hidden))
    else:
        outputs = keras.layers.Dense(3)(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    logits = keras.ops.convert_to_numpy(logits_of(model)(x, training=False))
    predicted = keras.ops.convert_to_numpy(model(x))
    if head == "logits":
        np.testing.assert_allclose(logits, predicted, atol=1e-6)
    else:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(keras.ops.softmax(logits)), predicted, atol=1e-6
        )
        assert (logits < 0).any()  # real logits, not probabilities


def test_optimize_distiller_gradients_reach_student_only():
    """One train step moves the student's weights and leaves the frozen teacher's alone."""
    import keras

    from pytest_tinyml.optimize import Distiller

    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    distiller = Distiller(teacher, student, temperature=3.0, alpha=0.5)
    assert not teacher.trainable
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    t_before, s_before = teacher.get_weights(), student.get_weights()
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    distiller.fit(x, np.arange(8) % 3, epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(t_before, teacher.get_weights(), strict=True))
    assert not np.allclose(s_before[0], student.get_weights()[0])


@pytest.mark.slow
def test_optimize_distilled_student_vs_student_alone():
    import keras

    from pytest_tinyml import datasets, zoo
    from pytest_tinyml.optimize import distill

    dataset = datasets.load("digits")

    def accuracy(model):
        return float(
            (np.asarray(model.predict(dataset.x_test, verbose=0)).argmax(-1) == dataset.y_test).mean()
        )

    keras.utils.set_random_seed(0)
    teacher = zoo.build("teacher", input_shape=(64,), num_classes=10)
    teacher.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    teacher.fit(dataset.x_train, dataset.y_train, epochs=15, batch_size=32, verbose=0)

    keras.utils.set_random_seed(1)
    student = zoo.build("student", input_shape=(64,), num_classes=10)
    alone = zoo.build("student", input_shape=(64,), num_classes=10)
    alone.set_weights(student.get_weights())  # same architecture, same initial weights

    distilled = distill(teacher, student, dataset, temperature=4.0, alpha=0.1, epochs=10, seed=1)
    assert distilled is student and teacher.trainable  # trained in place; the teacher's flag is restored
    keras.utils.set_random_seed(1)
    alone.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    alone.fit(dataset.x_train, dataset.y_train, epochs=10, batch_size=32, verbose=0)

    teacher_acc, distilled_acc, alone_acc = accuracy(teacher), accuracy(distilled), accuracy(alone)
    print(f"teacher {teacher_acc:.4f}; student distilled {distilled_acc:.4f}, alone {alone_acc:.4f}")
    assert distilled_acc >= 0.8  # distillation trained a real classifier
    assert teacher_acc >= 0.85
