"""tinyml.diagnose and the diagnosis in assert_parity / assert_accuracy_drop failures, on real int8 models.

Two broken models are built from one small MLP trained on digits: one whose middle Dense layer has a single
output channel ~300x larger than the others (the next layer's weights for it divided by 300, so the float
model is unchanged and the per-tensor int8 scale crushes the other channels), and one calibrated on 0..255
and fed 0..1. Each has a healthy twin that must not be diagnosed the same way.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import runtime_models

from pytest_tinyml.diagnosis import diagnose, map_layers, per_class_lines
from pytest_tinyml.errors import ConfigError, TinyMLAssertionError

slow = pytest.mark.slow  # trains a small MLP and converts it (a few seconds)


def _int8(model, calibration):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@functools.cache
def _digits():
    import pytest_tinyml as tinyml

    return tinyml.datasets.load("digits")


@functools.cache
def _trained():
    import keras

    ds = _digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="middle"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=30, verbose=0)
    return model


@pytest.fixture(scope="module")
def healthy():
    model = _trained()
    return model, runtime_models.artifact(_int8(model, _digits().x_train[:200]), "healthy")


@pytest.fixture(scope="module")
def outlier():
    import keras

    model = keras.models.clone_model(_trained())
    model.set_weights(_trained().get_weights())
    w, b = model.get_layer("middle").get_weights()
    w[:, 0] *= 300.0
    b[0] *= 300.0
    model.get_layer("middle").set_weights([w, b])
    w, b = model.get_layer("head").get_weights()
    w[0, :] /= 300.0  # the float model computes the same function
    model.get_layer("head").set_weights([w, b])
    return model, runtime_models.artifact(_int8(model, _digits().x_train[:200]), "outlier")


@pytest.fixture(scope="module")
def miscalibrated():
    model = _trained()
    return model, runtime_models.artifact(_int8(model, _digits().x_train[:200] * 255.0), "calibrated_0_255")


@slow
def test_outlier_channel_is_the_first_divergent_layer(outlier):
    import pytest_tinyml as tinyml

    model, artifact = outlier
    x = _digits().x_test
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_parity(model, artifact, x, min_top1_agreement=0.95)
    text = str(failure.value)
    assert "first divergent layer: 'middle'" in text
    row = next(line for line in text.splitlines() if line.strip().startswith(">>"))
    assert row.split()[1] == "middle"
    assert "crushed by an outlier channel: in 'middle' channel 0 spans" in text
    # The diagnosis comes before the generic hints.
    assert text.index("outlier channel") < text.index("more calibration samples")


@slow
def test_healthy_model_has_no_divergent_layer(healthy):
    model, artifact = healthy
    d = diagnose(model, artifact, _digits().x_test)
    assert d.first_divergent is None and d.lead == [] and d.hints == []
    assert [e.layer for e in d.layers] == ["input", "hidden", "middle", "head"]
    assert all(e.score > 25 for e in d.layers), d.text()


@slow
def test_miscalibrated_model_fails_with_the_input_range_first(miscalibrated):
    import pytest_tinyml as tinyml

    model, artifact = miscalibrated
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_parity(model, artifact, _digits().x_test, min_top1_agreement=0.95)
    first = str(failure.value).splitlines()[0]
    assert first.startswith("x uses 2 of 256 input levels: the model was calibrated on values in 0..255, x is in 0..1")


@slow
def test_input_line_leads_the_accuracy_failure_too(miscalibrated):
    import pytest_tinyml as tinyml

    model, artifact = miscalibrated
    ds = _digits()
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_accuracy_drop(model, artifact, ds.x_test, ds.y_test, max_drop=0.02)
    lines = str(failure.value).splitlines()
    assert lines[0].startswith("x uses 2 of 256 input levels")
    assert lines[1].startswith("accuracy dropped by")
    assert any(line.strip().startswith("per class (the 5 that moved most)") for line in lines)


@slow
def test_x_scaled_like_the_calibration_data_has_no_input_line(miscalibrated):
    model, artifact = miscalibrated
    d = diagnose(model, artifact, _digits().x_test * 255.0)
    assert d.lead == []
    assert d.layers[0].levels > 10


@slow
def test_x_beyond_the_calibrated_range_is_reported_clipped(healthy):
    model, artifact = healthy
    d = diagnose(model, artifact, _digits().x_test * 4.0)
    assert any("is clipped at qmin/qmax" in line for line in d.lead), d.lead


@slow
def test_tflm_engine_agrees_on_the_divergent_layer(outlier):
    model, artifact = outlier
    d = diagnose(model, artifact, _digits().x_test[:32], engine="tflm")
    assert d.first_divergent == "middle"
    assert "TFLite Micro" in d.text()


@slow
def test_bad_engine_is_a_config_error(healthy):
    model, artifact = healthy
    with pytest.raises(ConfigError, match="engine must be"):
        diagnose(model, artifact, _digits().x_test, engine="xnnpack")


def test_layer_mapping_rule():
    """Keras 3 scopes ("dense" -> "dense_1"), bare tf_keras names, fused layers and outputs by position."""
    layers = [("dense", (32,)), ("dense_1", (16,)), ("bn", (16,)), ("relu", (16,)), ("drop", (16,)), ("head", (10,))]
    ops = [
        (4, "sequential_1/dense_1/MatMul;sequential_1/dense_1/Relu", (32,)),
        (5, "sequential_1/dense_1_2/MatMul", (16,)),
        (6, "sequential_1/relu_1/Relu;sequential_1/bn_1/batchnorm/mul_1", (16,)),
        (7, "sequential_1/head_1/MatMul1", (10,)),
        (8, "StatefulPartitionedCall_1:0", (10,)),
    ]
    assert map_layers(layers, ops, [("head", 8)]) == {"dense": 4, "dense_1": 5, "relu": 6, "head": 8}
    bare = [(1, "sequential/dense/MatMul", (32,)), (2, "sequential/dense_1/MatMul", (16,))]
    assert map_layers(layers[:2], bare, []) == {"dense": 1, "dense_1": 2}
    # A shape that does not agree is no counterpart, whatever the name says.
    assert map_layers([("dense", (8,))], ops[:1], []) == {}


def test_per_class_lines_show_the_classes_that_moved():
    y = np.array([0, 0, 1, 1, 2, 2])
    ref = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    cand = np.eye(3)[[0, 0, 2, 2, 2, 2]]
    lines = per_class_lines(y, ref, cand)
    assert lines[0] == "  per class (the 1 that moved most):"
    assert lines[3].split() == ["1", "2", "1.000", "0.000", "-1.000"]
    assert lines[-1] == "  newly confused: 1 -> 2 (2x)"


def _board_result(artifact, raw):
    """A board result carrying TFLite Micro's own integers (as the sim returns them)."""
    from pytest_tinyml.board.result import BoardResult
    from pytest_tinyml.latency import LatencyStats

    quant = artifact.outputs[0]
    return BoardResult(latency_us=LatencyStats.from_samples([100.0, 110.0]), arena_bytes=None,
                       info={"where": "sim", "chip": "sim"}, model_sha256=artifact.sha256, runs=2, warmup=0,
                       outputs=quant.dequantize(raw), raw_outputs=raw, output_quant=quant)


def test_board_candidate_is_compared_on_the_outputs_and_says_so(mlp_int8):
    from pytest_tinyml.runtime.tflm import TFLMRunner

    x = runtime_models.inputs(8)
    raw = np.asarray(TFLMRunner(mlp_int8).predict_raw(x))
    same = diagnose(mlp_int8, _board_result(mlp_int8, raw), x)
    assert any("outputs are bit-identical" in note for note in same.notes), same.notes
    assert any("no command to read intermediate tensors" in note for note in same.notes)
    off = raw.copy()
    off[2, 4] = off[2, 4] + 3 if off[2, 4] < 120 else off[2, 4] - 3
    drifted = diagnose(mlp_int8, _board_result(mlp_int8, off), x)
    assert any("differ by up to 3 LSB on 1.2% of the values" in note for note in drifted.notes), drifted.notes
    assert drifted.layers[0].layer == "input" and drifted.lead == []


@slow
def test_rounding_hint_on_a_residual_add_and_not_on_an_mlp(mlp_int8):
    """LiteRT's optimized kernels round the residual ADD differently from the reference kernels (TFLite Micro's)."""
    residual = runtime_models.artifact(runtime_models.residual_int8_bytes(), "residual")
    x = runtime_models.inputs(32, shape=(16, 16, 3))
    hints = diagnose(residual, residual, x).hints
    assert any(h.startswith("reference-vs-optimized rounding") and "ADD in the graph" in h for h in hints), hints
    assert diagnose(mlp_int8, mlp_int8, runtime_models.inputs(32)).hints == []


def test_board_diagnosis_names_the_esp_nn_bug_its_shape_hits(mlp_int8):
    """mlp_int8's last FULLY_CONNECTED is per-channel with 10 outputs: esp-nn#34 on esp32s3, not on esp32p4."""
    import dataclasses

    from pytest_tinyml.runtime.tflm import TFLMRunner

    x = runtime_models.inputs(4)
    result = _board_result(mlp_int8, np.asarray(TFLMRunner(mlp_int8).predict_raw(x)))
    s3 = diagnose(mlp_int8, dataclasses.replace(result, info={"where": "device", "chip": "esp32s3"}), x)
    assert any("FULLY_CONNECTED (per-channel int8, 10 outputs) on esp32s3 hits esp-nn#34" in h for h in s3.hints)
    p4 = diagnose(mlp_int8, dataclasses.replace(result, info={"where": "device", "chip": "esp32p4"}), x)
    assert not any("esp-nn#34" in h for h in p4.hints) and any("ESP-NN runs" in h for h in p4.hints)
    assert not any("ESP-NN" in h for h in diagnose(mlp_int8, result, x).hints)  # the sim is no Espressif chip


def test_board_diagnosis_says_when_the_firmware_links_another_esp_nn(mlp_int8):
    import dataclasses

    from pytest_tinyml.board.identity import BoardIdentity
    from pytest_tinyml.runtime.tflm import TFLMRunner

    x = runtime_models.inputs(2)
    result = _board_result(mlp_int8, np.asarray(TFLMRunner(mlp_int8).predict_raw(x)))
    for version, differs in (("1.1.2", True), ("1.2.3", False)):
        identity = BoardIdentity(chip="esp32s3", esp_nn_version=version, where="device")
        hints = diagnose(mlp_int8, dataclasses.replace(result, identity=identity), x).hints
        assert any(f"links esp-nn {version}; the lint's rules were read from esp-nn 1.2.3" in h for h in hints) is differs


def test_saturation_hint_needs_clipping_upstream_of_the_divergent_layer():
    from pytest_tinyml.diagnosis import LayerError, _hints
    from pytest_tinyml.diagnosis.layers import first_divergent as _first_divergent

    def rows(clipped):
        return [LayerError("input", "x", snr_db=45.0, levels=200, clipped=0.0),
                LayerError("hidden", "t1", snr_db=40.0, channel_snr_db=38.0, levels=250, clipped=clipped),
                LayerError("middle", "t2", snr_db=12.0, channel_snr_db=11.0, levels=90, clipped=0.0),
                LayerError("head", "t3", snr_db=10.0, channel_snr_db=9.0, levels=60, clipped=0.2)]

    saturated = rows(0.05)
    first = _first_divergent(saturated)
    assert first == "middle"
    hints = _hints(saturated, first, None, None)
    assert hints == [hints[0]] and hints[0].startswith("saturated calibration (TF#52854): 5.0% of 'hidden'")
    # Clipping only downstream of the divergent layer (the head) or under 1% is not the cause.
    assert _hints(rows(0.005), "middle", None, None) == []
    assert _first_divergent(rows(0.0)[:2]) is None


def test_memory_cap_compares_fewer_samples_and_says_so(monkeypatch, mlp_int8):
    import keras

    from pytest_tinyml import diagnosis

    keras.utils.set_random_seed(runtime_models.RNG_SEED)
    model = runtime_models._mlp()
    monkeypatch.setattr(diagnosis.layers, "MAX_ACTIVATION_VALUES", 10 * (32 + 10))
    d = diagnose(model, mlp_int8, runtime_models.inputs(40))
    assert d.samples == 10
    assert any("per layer on the first 10 of 40 samples" in note for note in d.notes)


@slow
def test_float_io_model_is_judged_on_its_quantize_op():
    """int8 inside, float input: the grid x lands on is the QUANTIZE after the input."""
    import tensorflow as tf

    model = _trained()
    calibration = _digits().x_train[:200] * 255.0
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
    artifact = runtime_models.artifact(converter.convert(), "float_io")
    assert artifact.inputs[0].dtype == "float32"
    d = diagnose(model, artifact, _digits().x_test)
    assert d.lead and d.lead[0].startswith("x uses 2 of 256 input levels"), d.lead


@slow
def test_fused_and_identity_layers_say_why_they_have_no_row():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="act")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    artifact = runtime_models.artifact(runtime_models._convert(model, (8, 8, 1), int8=True), "fused")
    d = diagnose(model, artifact, runtime_models.inputs(16, shape=(8, 8, 1)))
    notes = {e.layer: e.note for e in d.layers if e.tensor is None}
    assert notes["drop"] == "identity at inference"
    # The converter folds the BatchNormalization into the conv's weights and fuses the conv with the ReLU
    # ("functional_1/act_1/Relu;functional_1/conv_1/convolution"): bn is named by no tensor at all.
    assert notes["conv"] == "fused into 'act''s tensor", d.text()
    assert notes["bn"].startswith("no counterpart: no tensor of its shape is named after it")
    assert {e.layer for e in d.layers if e.tensor is not None} >= {"input", "act", "flat", "head"}
