"""Post-training conversion: every recipe on a digits MLP, refusals, crash and hang isolation, QAT, sources.

Conversions run in a child process (~5 s each, mostly importing TensorFlow), so the trained model and
the artifacts of every recipe are built once per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pytest_tinyml.conversion import RECIPES, convert
from pytest_tinyml.errors import CalibrationWarning, ConfigError, ConversionError

PYTEST_PID = os.getpid()


def digits():
    """(x_train, y_train, x_test, y_test): the 8x8 digits flattened to 64 floats in [0, 1]."""
    try:
        from pytest_tinyml import datasets

        ds = datasets.load("digits")
        x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    except (ImportError, AttributeError):
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.data / 16.0, d.target
        x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    flat = lambda a: np.asarray(a, dtype=np.float32).reshape(len(a), -1)  # noqa: E731
    return flat(x_train), np.asarray(y_train), flat(x_test), np.asarray(y_test)


def small_mlp(name="mlp"):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name=name,
    )


def litert_accuracy(content: bytes, x, y) -> float:
    """Top-1 accuracy of a flatbuffer in LiteRT, quantizing inputs / dequantizing outputs as declared."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    correct = 0
    for sample, label in zip(x, y, strict=True):
        scale, zero = inp["quantization"]
        value = sample[None]
        if scale:
            info = np.iinfo(inp["dtype"])
            value = np.clip(np.round(value / scale) + zero, info.min, info.max)
        interp.set_tensor(inp["index"], value.astype(inp["dtype"]))
        interp.invoke()
        result = interp.get_tensor(out["index"]).astype(np.float32)
        correct += int(np.argmax(result) == label)
    return correct / len(y)


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def trained(data):
    x_train, y_train, _, _ = data
    model = small_mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def artifacts(trained, data):
    x_train = data[0]
    return {recipe: convert(trained, recipe, representative=x_train) for recipe in RECIPES}


# --- refusals before any child process -------------------------------------------------------------------


def test_unknown_recipe_target_param_and_model_are_config_errors():
    model = small_mlp()
    with pytest.raises(ConfigError, match="unknown recipe 'int4'.*float16"):
        convert(model, "int4")
    with pytest.raises(ConfigError, match="unknown target 'esp'"):
        convert(model, "float32", target="esp")
    with pytest.raises(ConfigError, match="unknown converter parameter.*'bits'"):
        convert(model, "float32", bits=4)
    with pytest.raises(ConfigError, match="io_dtype='int8' needs a full-integer recipe"):
        convert(model, "float16", io_dtype="int8")
    with pytest.raises(ConfigError, match="select_tf_ops=True needs target='litert'"):
        convert(model, "float32", select_tf_ops=True)
    with pytest.raises(ConfigError, match="cannot convert a 'dict'") as info:
        convert({"not": "a model"})
    assert ".model" not in str(info.value)


def test_an_optimize_result_is_refused_naming_its_model_attribute(tmp_path):
    """optimize.prune returns a PruneResult holding the stripped model: passing the result names `.model`."""
    from pytest_tinyml.cache import TinyMLCache
    from pytest_tinyml.optimize import PruneResult

    result = PruneResult(model=small_mlp(), sparsity=0.5, per_layer={}, target_sparsity=0.5, schedule="constant",
                         structured=None, backend="native")
    with pytest.raises(ConfigError, match=r"cannot convert a 'PruneResult'.*pass its \.model"):
        convert(result, "float32")
    with pytest.raises(ConfigError, match=r"cannot hash 'PruneResult'.*pass its \.model"):  # tinyml_cache.convert
        TinyMLCache(tmp_path).convert(result, "float32")


def test_missing_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        convert(tmp_path / "nope.keras")
    with pytest.raises(ConfigError, match="no saved_model.pb"):
        convert(tmp_path)


@pytest.mark.parametrize("recipe", ["int8", "int16x8"])
def test_full_integer_without_representative_is_refused_with_the_fix(recipe):
    with pytest.raises(ConversionError, match="representative dataset") as info:
        convert(small_mlp(), recipe)
    assert "representative=x_train" in str(info.value) and f"recipe {recipe!r}" in str(info.value)


def test_uint8_io_is_refused_for_tflite_micro():
    with pytest.raises(ConversionError, match="TensorFlow Lite Micro dropped uint8") as info:
        convert(small_mlp(), "int8", representative=np.zeros((200, 64)), io_dtype="uint8")
    assert "target='litert'" in str(info.value)


# --- every recipe -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_recipe_loads_in_litert_and_keeps_accuracy(artifacts, trained, data):
    _, _, x_test, y_test = data
    keras_acc = float(trained.evaluate(x_test, y_test, verbose=0)[1])
    assert keras_acc >= 0.9
    expected_io = {"float32": "float32", "dynamic_range": "float32", "float16": "float32",
                   "int8": "int8", "int16x8": "int16"}
    for recipe, art in artifacts.items():
        assert art.content[4:8] == b"TFL3" and art.recipe == recipe
        assert art.inputs[0].dtype == expected_io[recipe] == art.outputs[0].dtype
        acc = litert_accuracy(art.content, x_test, y_test)
        assert acc >= keras_acc - 0.02, (recipe, acc, keras_acc)


@pytest.mark.slow
def test_int8_has_int8_io_with_sane_quantization(artifacts, data):
    from ai_edge_litert.interpreter import Interpreter

    art = artifacts["int8"]
    inp, out = art.inputs[0], art.outputs[0]
    # Inputs span [0, 1]: 256 int8 steps of 1/255 starting at -128. Softmax outputs: 1/256 from -128.
    assert inp.dtype == "int8" and inp.scale == pytest.approx(1 / 255, rel=0.05) and inp.zero_point == -128
    assert out.dtype == "int8" and out.scale == pytest.approx(1 / 256, rel=0.01) and out.zero_point == -128
    details = Interpreter(model_content=art.content).get_input_details()[0]
    assert details["quantization"] == pytest.approx((inp.scale, inp.zero_point))
    assert tuple(details["shape"]) == inp.shape == (1, 64)


@pytest.mark.slow
def test_sizes_shrink_with_quantization(artifacts):
    sizes = {recipe: art.size for recipe, art in artifacts.items()}
    print("sizes (bytes):", json.dumps(sizes))
    assert sizes["float16"] < sizes["float32"]
    assert sizes["int8"] < 0.5 * sizes["float32"]
    assert sizes["dynamic_range"] < 0.5 * sizes["float32"]


@pytest.mark.slow
def test_artifact_records_where_it_came_from(artifacts, trained, data):
    from pytest_tinyml.identity import model_hash

    art = artifacts["int8"]
    assert art.name == "mlp" and art.source_hash == model_hash(trained)
    assert {art.source_hash} == {a.source_hash for a in artifacts.values()}
    assert art.params["target"] == "tflm" and art.params["io_dtype"] == "int8"
    assert art.params["calibration_samples"] == min(500, len(data[0]))
    assert {"tensorflow", "keras", "python", "pytest_tinyml"} <= set(art.versions)
    assert art.versions["tensorflow"].startswith("2.")
    assert len({a.sha256 for a in artifacts.values()}) == len(RECIPES)
    # Conversion is deterministic: the cache may hand out what an earlier session converted.
    assert convert(trained, "int8", representative=data[0]).sha256 == art.sha256


# --- other sources and I/O types --------------------------------------------------------------------------


@pytest.mark.slow
def test_keras_file_to_uint8_litert_warns_on_few_samples(trained, data, tmp_path, monkeypatch):
    from pytest_tinyml.identity import model_hash

    monkeypatch.setenv("PYTEST_TINYML_CONVERT_REUSE", "0")  # this one in a fresh process of its own

    path = tmp_path / "digits_mlp.keras"
    trained.save(path)
    with pytest.warns(CalibrationWarning, match="50 representative samples"):
        art = convert(path, "int8", representative=data[0][:50], io_dtype="uint8", target="litert")
    assert art.name == "digits_mlp" and art.inputs[0].dtype == "uint8" and art.inputs[0].zero_point == 0
    assert art.params["calibration_samples"] == 50
    assert art.source_hash == model_hash(trained)  # hashed after loading in the child: same model, same hash


@pytest.mark.slow
def test_saved_model_dir_int8_with_float_io(trained, data, tmp_path):
    export_dir = tmp_path / "exported"
    trained.export(str(export_dir), format="tf_saved_model", verbose=False)
    generator = lambda: ([x[None]] for x in data[0][:300])  # noqa: E731 - TF's representative_dataset style
    art = convert(export_dir, "int8", representative=generator, io_dtype="float32", name="sm")
    assert art.name == "sm" and art.inputs[0].dtype == "float32" and art.outputs[0].dtype == "float32"
    assert art.params["calibration_samples"] == 300
    assert litert_accuracy(art.content, data[2], data[3]) >= 0.85
    # int8 inside: far smaller than the float model would be (~4 bytes per weight).
    assert art.size < 2 * trained.count_params()


# --- conversion never kills the run -----------------------------------------------------------------------


@pytest.mark.slow
def test_lstm_full_int8_segfault_becomes_conversion_error():
    from pytest_tinyml import zoo

    model = zoo.build("gesture_lstm", seed=0)  # LSTM 64 -> LSTM 32 -> Dense, dynamic batch axis
    samples = np.random.default_rng(0).normal(size=(120, *model.inputs[0].shape[1:])).astype(np.float32)
    with pytest.raises(ConversionError) as info:
        convert(model, "int8", representative=samples)
    message = str(info.value)
    assert "model 'gesture_lstm', recipe 'int8'" in message
    assert "crashed with SIGSEGV" in message  # TF 2.21's calibrator segfaults on it
    assert "float32 or dynamic_range recipe" in message and "gesture_cnn" in message
    assert "last lines of the converter's stderr" in message and "calibrator.py" in message
    assert os.getpid() == PYTEST_PID  # the crash was the child's, not ours
    # A new worker takes the next job; the recurrent model is traced at batch 1 so its loop lowers.
    art = convert(model, "dynamic_range")
    assert art.params["fixed_batch"] == 1 and art.inputs[0].shape == (1, 50, 3)


@pytest.mark.slow
def test_hang_is_killed_at_the_timeout():
    # No conversion finishes in 50 ms, warm worker or not: to the parent that is a hang.
    model = small_mlp()
    with pytest.raises(ConversionError, match=r"model 'mlp', recipe 'float32' hung: .*after 0.05 s \(timeout\)") as info:
        convert(model, "float32", timeout=0.05)
    assert "timeout=" in str(info.value)  # the fix names the knob
    assert convert(model, "float32").inputs[0].dtype == "float32"  # a new worker takes the next job


# --- quantization-aware training (tf_keras + tfmot) -------------------------------------------------------


@pytest.mark.slow
def test_tfmot_qat_model_converts_to_int8_without_representative(data):
    import tensorflow_model_optimization as tfmot
    import tf_keras

    x_train, y_train, x_test, y_test = data
    tf_keras.utils.set_random_seed(0)
    base = tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(32, activation="relu"),
                                tf_keras.layers.Dense(10, activation="softmax")], name="qat_mlp")
    qat = tfmot.quantization.keras.quantize_model(base)
    qat.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x_train, y_train, epochs=10, verbose=0)
    art = convert(qat, "int8", name="qat_mlp")
    assert art.params.get("qat") is True and art.params["calibration_samples"] == 0
    assert art.inputs[0].dtype == "int8" and art.outputs[0].dtype == "int8"
    assert art.inputs[0].scale == pytest.approx(1 / 255, rel=0.05)
    assert litert_accuracy(art.content, x_test, y_test) >= 0.8


# --- Keras 3 multi-backend --------------------------------------------------------------------------------

JAX_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["KERAS_BACKEND"] = "jax"
    import keras, numpy as np
    from sklearn.datasets import load_digits
    from pytest_tinyml.conversion import convert
    assert keras.backend.backend() == "jax"
    d = load_digits(); x = (d.data / 16).astype("float32"); y = d.target
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")], name="jax_mlp")
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:1400], y[:1400], epochs=12, verbose=0)
    acc = float(m.evaluate(x[1400:], y[1400:], verbose=0)[1])
    art = convert(m, "int8", representative=x[:300])
    print(json.dumps({"acc": acc, "dtype": art.inputs[0].dtype, "size": art.size, "hex": art.content.hex()}))
    """
)


@pytest.mark.slow
def test_model_trained_on_jax_converts(data):
    pytest.importorskip("jax", reason="JAX is not installed: the jax-backend path is untested here")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dtype"] == "int8" and result["acc"] >= 0.85
    assert litert_accuracy(bytes.fromhex(result["hex"]), data[2], data[3]) >= result["acc"] - 0.03


@pytest.mark.slow
def test_model_with_a_custom_layer_converts():
    """The child cannot import custom classes from a test module: such models are traced in this process."""
    import keras

    @keras.saving.register_keras_serializable(package="test_convert")
    class Doubling(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), Doubling(), keras.layers.Dense(2)], name="custom")
    art = convert(model, "int8", representative=np.random.default_rng(0).random((200, 4)))
    assert art.name == "custom" and art.inputs[0].dtype == "int8"
    from ai_edge_litert.interpreter import Interpreter

    x = np.full((1, 4), 0.5, dtype=np.float32)
    interp = Interpreter(model_content=art.content)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], art.inputs[0].quantize(x))
    interp.invoke()
    got = art.outputs[0].dequantize(interp.get_tensor(interp.get_output_details()[0]["index"]))
    np.testing.assert_allclose(got, model(x).numpy(), atol=0.05)  # the doubling survived conversion
