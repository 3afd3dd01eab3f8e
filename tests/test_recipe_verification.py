"""Every recipe's result is checked in the conversion worker, and representative data in any form gives one artifact.

Before: a list of samples was concatenated into one flat array and produced an "int8" model with float
FULLY_CONNECTED kernels and QUANTIZE/DEQUANTIZE around them, which every assertion then passed.
"""

from __future__ import annotations

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.conversion._child import recipe_findings, verify_recipe
from pytest_tinyml.errors import ConfigError, ConversionError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    return tinyml.datasets.load("digits")


@pytest.fixture(scope="module")
def mlp(digits):
    import keras

    keras.utils.set_random_seed(0)
    return tinyml.zoo.build("mlp", input_shape=(64,), num_classes=10)


def test_every_representative_form_gives_the_same_artifact(mlp, digits):
    tf = pytest.importorskip("tensorflow")
    x = digits.x_train[:150]
    forms = {
        "array": x,
        "list of samples": [x[i] for i in range(150)],
        "list of [sample] lists": [[x[i : i + 1]] for i in range(150)],
        "generator": ([x[i : i + 1]] for i in range(150)),
        "callable": lambda: ([x[i : i + 1]] for i in range(150)),
        "tf.data": tf.data.Dataset.from_tensor_slices(x).batch(1),
        "Dataset": tinyml.datasets.from_arrays(x, digits.y_train[:150], digits.x_test, digits.y_test),
    }
    shas = {form: tinyml.convert(mlp, "int8", representative=data).sha256 for form, data in forms.items()}
    assert len(set(shas.values())) == 1, shas
    art = tinyml.convert(mlp, "int8", representative=forms["list of samples"])
    assert not recipe_findings(art.content, "int8", "int8")
    ops = {op["op"] for op in tinyml.analyze.analyze(art, tflm=False).to_dict()["ops"]}
    assert ops == {"FULLY_CONNECTED", "SOFTMAX"}  # no QUANTIZE/DEQUANTIZE, no float kernels


def test_bad_representative_data_is_refused_before_converting(mlp, digits):
    x = digits.x_train[:150].copy()
    x[42, 0] = np.nan
    with pytest.raises(ConfigError, match=r"NaN/Inf values \(first in sample #42\)"):
        tinyml.convert(mlp, "int8", representative=[x[i] for i in range(150)])
    with pytest.raises(ConfigError, match=r"sample #0 .* has shape \(8, 8\); the model expects samples of shape \(64,\)"):
        tinyml.convert(mlp, "int8", representative=[s.reshape(8, 8) for s in digits.x_train[:150]])


def test_a_model_file_gets_its_representative_checked_in_the_worker(mlp, digits, tmp_path):
    path = tmp_path / "mlp.keras"
    mlp.save(path)
    with pytest.raises(ConfigError, match=r"representative data has samples of shape \(8, 8\), the model expects "
                                          r"\(64,\)"):
        tinyml.convert(str(path), "int8", representative=digits.x_train[:150].reshape(-1, 8, 8))


def test_a_broken_calibration_is_caught_by_the_recipe_check(mlp, digits):
    """The old bug, reproduced with TF's own converter: calibrate on the flattened list of samples."""
    tf = pytest.importorskip("tensorflow")
    flat = np.concatenate([digits.x_train[i] for i in range(150)]).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(mlp)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([flat[i : i + 1]] for i in range(150))
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    broken = converter.convert()
    with pytest.raises(ConversionError) as error:
        verify_recipe(broken, "int8", "int8", name="mlp")
    message = str(error.value)
    assert "recipe 'int8': the converted graph is not a int8 model" in message
    assert "compute in float: FULLY_CONNECTED #1" in message and "QUANTIZE/DEQUANTIZE inside the graph" in message
    assert "float weights" in message and "calibration" in message


def test_each_recipe_check_can_fail(mlp, digits):
    arts = {recipe: tinyml.convert(mlp, recipe, representative=digits.x_train[:150])
            for recipe in ("float32", "float16", "dynamic_range", "int8", "int16x8")}
    for recipe, art in arts.items():
        assert recipe_findings(art.content, recipe, art.params["io_dtype"]) == [], recipe
    assert any("compute in float" in f for f in recipe_findings(arts["float32"].content, "int8", "int8"))
    assert any("activations other than int16x8" in f for f in recipe_findings(arts["int8"].content, "int16x8", "int16"))
    assert any("integer activations" in f for f in recipe_findings(arts["int8"].content, "float32", "float32"))
    assert any("no float16 weights" in f for f in recipe_findings(arts["float32"].content, "float16", "float32"))
    assert any("no int8 weights" in f for f in recipe_findings(arts["float16"].content, "dynamic_range", "float32"))
    assert any("int8 weights" in f for f in recipe_findings(arts["dynamic_range"].content, "float16", "float32"))
    # int8 with float I/O: the QUANTIZE in front and DEQUANTIZE behind are what io_dtype asks for
    float_io = tinyml.convert(mlp, "int8", representative=digits.x_train[:150], io_dtype="float32")
    assert recipe_findings(float_io.content, "int8", "float32") == []
    assert any("QUANTIZE/DEQUANTIZE" in f for f in recipe_findings(float_io.content, "int8", "int8"))


def test_a_layer_without_an_integer_kernel_is_a_conversion_error():
    """target='litert' lets the converter fall back to float for SIN: the result is not int8, so it is refused."""
    import keras

    @keras.saving.register_keras_serializable(package="test_recipe_verification")
    class Sine(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), Sine(), keras.layers.Dense(2)], name="sine")
    with pytest.raises(ConversionError, match=r"model 'sine', recipe 'int8'.*compute in float: SIN"):
        tinyml.convert(model, "int8", representative=np.random.default_rng(0).random((120, 8)), target="litert")
    art = tinyml.convert(model, "float32")  # what the graph can be
    assert art.recipe == "float32"
