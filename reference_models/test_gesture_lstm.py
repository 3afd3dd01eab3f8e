"""The tutorial's gesture LSTM: float and dynamic range on LiteRT; full int8 is a known converter crash."""

import pytest

import pytest_tinyml as tinyml


@pytest.fixture(scope="module")
def budget(reference_budgets):
    return reference_budgets["gesture_lstm"]


@pytest.fixture(scope="module")
def data(budget):
    return tinyml.datasets.load(budget.dataset)


@pytest.fixture(scope="module")
def float_model(data, budget, tinyml_cache):
    model = tinyml.zoo.build("gesture_lstm", input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    return tinyml_cache.fit(model, data, epochs=budget.epochs)


def test_float_accuracy(float_model, data, budget):
    accuracy = tinyml.metrics.accuracy(data.y_test, tinyml.outputs(float_model, data.x_test))
    tinyml.record(model="gesture_lstm", recipe="float32", accuracy=accuracy)
    assert accuracy >= budget.min_accuracy


@pytest.mark.parametrize("recipe", ["float32", "dynamic_range"])
def test_converts_for_litert(recipe, float_model, data, tinyml_cache):
    artifact = tinyml_cache.convert(float_model, recipe)
    tinyml.assert_accuracy_drop(float_model, artifact, data.x_test, data.y_test, max_drop=0.02)


def test_full_int8_fails_cleanly(float_model, data, tinyml_cache):
    """TF 2.21's converter segfaults calibrating a Keras 3 LSTM: the crash must be a ConversionError."""
    with pytest.raises(tinyml.errors.ConversionError, match="(?i)signal|crash"):
        tinyml_cache.convert(float_model, "int8", representative=data.x_train[:200])
