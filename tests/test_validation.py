"""pytest_tinyml.validation: the one place that refuses bad inputs, labels and calibration data.

Unit tests of the checks, then the assertions as users call them with each bad input (every one of these
passed silently before: NaN in x gave "drop -0.83", labels +10 "drop 0", an 8x8 input was reshaped).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.errors import ConfigError
from pytest_tinyml.validation import check_inputs, check_labels, representative_samples

# --- inputs ----------------------------------------------------------------------------------------------


def test_nan_and_inf_are_counted_and_located():
    x = np.zeros((10, 64), np.float32)
    x[3, 5] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(ConfigError, match=r"x has 2 NaN/Inf values \(first in sample #3\): 1 NaN, 1 Inf"):
        check_inputs(x, sample_shape=(64,))
    assert check_inputs(np.nan_to_num(x, posinf=0.0), sample_shape=(64,)).dtype == np.float32


def test_same_element_count_in_another_layout_is_refused_unless_asked():
    flat_model_x = np.arange(4 * 64, dtype=np.float32).reshape(4, 8, 8)
    with pytest.raises(ConfigError, match=r"samples of shape \(8, 8\), the model expects \(64,\).*reshape=True") as e:
        check_inputs(flat_model_x, sample_shape=(64,))
    assert "(n, 64)" in str(e.value)
    reshaped = check_inputs(flat_model_x, sample_shape=(64,), reshape=True)
    assert reshaped.shape == (4, 64) and np.array_equal(reshaped[1], flat_model_x[1].reshape(64))
    nchw = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ConfigError, match=r"expects \(8, 8, 1\).*transpose it instead") as e:
        check_inputs(nchw, sample_shape=(8, 8, 1))
    assert "(n, 8, 8, 1)" in str(e.value)


def test_a_wrong_element_count_is_refused_even_with_reshape():
    with pytest.raises(ConfigError, match=r"samples of shape \(63,\), the model expects \(64,\)") as e:
        check_inputs(np.zeros((2, 63)), sample_shape=(64,), reshape=True)
    assert "reshape=True" not in str(e.value)  # no advice to reshape what cannot be reshaped


def test_free_dimensions_match_anything_and_a_single_sample_needs_its_batch_axis():
    assert check_inputs(np.zeros((3, 17, 4)), sample_shape=(None, 4)).shape == (3, 17, 4)
    with pytest.raises(ConfigError, match=r"one sample of the model's input \(64,\).*x\[None\]"):
        check_inputs(np.zeros(64), sample_shape=(64,))
    with pytest.raises(ConfigError, match="non-empty numeric array"):
        check_inputs(np.array(["a", "b"]))


# --- labels ----------------------------------------------------------------------------------------------


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ConfigError, match=r"y has 3 labels outside \[0, 10\) \(first: sample #1, label 12\)"):
        check_labels(np.array([0, 12, 13, 19, 4]), num_classes=10)
    with pytest.raises(ConfigError, match=r"label -1"):
        check_labels(np.array([0, -1]), num_classes=10)
    assert check_labels(np.array([0, 9]), num_classes=10).tolist() == [0, 9]


def test_float_labels_only_when_integral():
    assert check_labels(np.array([1.0, 3.0]), num_classes=10).tolist() == [1, 3]
    with pytest.raises(ConfigError, match=r"1 non-integral float labels \(first: sample #1, label 2.5\)"):
        check_labels(np.array([1.0, 2.5]), num_classes=10)
    with pytest.raises(ConfigError, match="NaN"):
        check_labels(np.array([1.0, np.nan]), num_classes=10)


def test_one_hot_labels_must_have_the_models_width():
    assert check_labels(np.eye(10)[[1, 2]], num_classes=10).shape == (2, 10)
    with pytest.raises(ConfigError, match="one-hot with 5 columns but the model has 10 output classes"):
        check_labels(np.eye(5)[[1, 2]], num_classes=10)


# --- representative data ---------------------------------------------------------------------------------


def test_every_representative_form_gives_the_same_array():
    x = np.random.default_rng(0).random((150, 8, 8, 1)).astype(np.float32)
    forms = {
        "array": x,
        "list of samples": [x[i] for i in range(150)],
        "list of [sample] lists": [[x[i : i + 1]] for i in range(150)],
        "list of [unbatched sample] lists": [[x[i]] for i in range(150)],
        "generator": ([x[i : i + 1]] for i in range(150)),
        "callable": lambda: ([x[i : i + 1]] for i in range(150)),
        "Dataset": tinyml.datasets.from_arrays(x, np.zeros(150, int), x[:10], np.zeros(10, int)),
    }
    for shape in ((8, 8, 1), None):
        for form, data in forms.items():
            if form == "generator":
                data = ([x[i : i + 1]] for i in range(150))  # a generator is used up once
            got = representative_samples(data, sample_shape=shape)
            assert got.shape == (150, 8, 8, 1) and np.array_equal(got, x), (form, shape)


def test_representative_nan_and_wrong_shapes_name_the_first_bad_sample():
    x = np.random.default_rng(0).random((150, 64)).astype(np.float32)
    bad = x.copy()
    bad[42, 3] = np.nan
    with pytest.raises(ConfigError, match=r"representative data has 1 NaN/Inf values \(first in sample #42\)"):
        representative_samples([bad[i] for i in range(150)], sample_shape=(64,))
    mixed = [x[i] for i in range(150)]
    mixed[17] = np.zeros(63, np.float32)
    with pytest.raises(ConfigError, match=r"representative sample #17 .* has shape \(63,\); the model expects "
                                          r"samples of shape \(64,\)"):
        representative_samples(mixed, sample_shape=(64,))
    with pytest.raises(ConfigError, match=r"sample #0 .* has shape \(8, 8\); the model expects samples of shape \(64,\)"):
        representative_samples([np.zeros((8, 8))] * 3, sample_shape=(64,))
    with pytest.raises(ConfigError, match=r"has shape \(150, 8, 8\): the model expects samples of shape \(64,\)"):
        representative_samples(np.zeros((150, 8, 8)), sample_shape=(64,))
    with pytest.raises(ConfigError, match="holds 2 arrays: only single-input"):
        representative_samples([(x[0], 1)], sample_shape=(64,))
    with pytest.raises(ConfigError, match="representative data is empty"):
        representative_samples(iter(()), sample_shape=(64,))


def test_tf_data_datasets_batched_or_not_give_the_same_array():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(1).random((120, 64)).astype(np.float32)
    for data in (tf.data.Dataset.from_tensor_slices(x), tf.data.Dataset.from_tensor_slices(x).batch(1),
                 tf.data.Dataset.from_tensor_slices(x).batch(32)):
        assert np.array_equal(representative_samples(data, sample_shape=(64,)), x)


# --- the assertions as users call them ------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return tinyml.datasets.load("digits")


@pytest.fixture(scope="module")
def mlp(digits, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = tinyml.zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes)
    return tinyml.TinyMLCache(tmp_path_factory.mktemp("validation-cache")).fit(model, digits, epochs=10)


@pytest.mark.slow
def test_assert_accuracy_drop_refuses_nan_inputs(mlp, digits):
    x = digits.x_test.copy()
    x[5, :] = np.nan
    with pytest.raises(ConfigError, match=r"x has 64 NaN/Inf values \(first in sample #5\)"):
        tinyml.assert_accuracy_drop(mlp, mlp, x, digits.y_test)
    with pytest.raises(ConfigError, match=r"x has 64 NaN/Inf values"):
        tinyml.assert_parity(mlp, mlp, x, min_cosine=0.9)


@pytest.mark.slow
def test_assert_accuracy_drop_refuses_labels_outside_the_classes(mlp, digits):
    with pytest.raises(ConfigError, match=r"labels outside \[0, 10\).*the model has 10 output classes"):
        tinyml.assert_accuracy_drop(mlp, mlp, digits.x_test, digits.y_test + 10)
    with pytest.raises(ConfigError, match="non-integral float labels"):
        tinyml.assert_accuracy_drop(mlp, mlp, digits.x_test, digits.y_test + 0.5)
    figures = tinyml.assert_accuracy_drop(mlp, mlp, digits.x_test, digits.y_test.astype(float))
    assert figures["drop"] == 0 and figures["accuracy"] > 0.85  # integral floats are labels


@pytest.mark.slow
def test_assert_accuracy_drop_refuses_another_layout_unless_reshape(mlp, digits):
    square = digits.x_test.reshape(-1, 8, 8)
    with pytest.raises(ConfigError, match=r"samples of shape \(8, 8\), the model expects \(64,\)"):
        tinyml.assert_accuracy_drop(mlp, mlp, square, digits.y_test)
    with pytest.raises(ConfigError, match=r"samples of shape \(8, 8\), the model expects \(64,\)"):
        tinyml.assert_parity(mlp, mlp, square, min_cosine=0.9)
    figures = tinyml.assert_accuracy_drop(mlp, mlp, square, digits.y_test, reshape=True)
    assert figures["accuracy"] > 0.85


@pytest.mark.slow
def test_fit_refuses_bad_training_data(mlp, digits, tmp_path):
    import keras

    cache = tinyml.TinyMLCache(tmp_path)
    x = digits.x_train.copy()
    x[9, 1] = np.inf
    build = lambda: tinyml.zoo.build("mlp", input_shape=(64,), num_classes=10)  # noqa: E731
    keras.utils.set_random_seed(0)
    arrays = lambda x, y: SimpleNamespace(x_train=x, y_train=y, task="classification")  # noqa: E731
    with pytest.raises(ConfigError, match=r"x_train has 1 NaN/Inf values \(first in sample #9\)"):
        cache.fit(build(), arrays(x, digits.y_train), epochs=1)
    with pytest.raises(ConfigError, match=r"y_train has .* labels outside \[0, 10\)"):
        cache.fit(build(), arrays(digits.x_train, digits.y_train + 10), epochs=1)
    with pytest.raises(ConfigError, match=r"x_train has samples of shape \(8, 8\), the model expects \(64,\)"):
        cache.fit(build(), arrays(digits.x_train.reshape(-1, 8, 8), digits.y_train), epochs=1)
    assert not list(tmp_path.glob("fit/*/*/meta.json"))  # nothing was trained or cached


def test_the_runtimes_never_reshape_silently(cnn_int8):
    flat = np.random.default_rng(0).random((4, 64)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"samples of shape \(64,\), the model expects \(8, 8, 1\).*reshape=True"):
        tinyml.runtime.predict(cnn_int8, flat)
    assert tinyml.runtime.predict(cnn_int8, flat.reshape(4, 8, 8, 1)).shape == (4, 10)


def test_assert_accuracy_drop_refuses_a_scalar_y_and_a_batch_size_without_a_board():
    """Before: TypeError (len() of unsized object) out of the assertion."""
    from pathlib import Path

    model = Path(__file__).parent / "data" / "board_mlp_int8.tflite"
    x = np.random.default_rng(3).uniform(0, 16, (5, 64)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"x has 5 samples but y has 0 labels \(shape \(\)\)"):
        tinyml.assert_accuracy_drop(model, model, x, 3)
    with pytest.raises(ConfigError, match=r"x has 5 samples but y has 4 labels"):
        tinyml.assert_accuracy_drop(model, model, x, [0, 1, 2, 3])
    y = tinyml.outputs(model, x).argmax(axis=1)
    assert tinyml.assert_accuracy_drop(model, model, x, y)["drop"] == 0
    # Before, batch_size= with a model as the candidate was ignored (0 included).
    with pytest.raises(ConfigError, match="batch_size= is for a board as the candidate"):
        tinyml.assert_accuracy_drop(model, model, x, y, batch_size=0)
