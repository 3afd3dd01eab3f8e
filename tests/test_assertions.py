"""pytest_tinyml.assertions on real models: passing cases, and each failure's report-like message.

One MLP trained on digits, converted twice to int8: calibrated on the training data (good), and on data
scaled down 100x (miscalibrated: the input quantization clips every real input), the classic mistake.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.errors import ConfigError, TinyMLAssertionError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    return tinyml.datasets.load("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # One cache for this session's tests (they train the same model): cold once, warm after.
    return tinyml.TinyMLCache(tmp_path_factory.getbasetemp() / "issue4-cache")


@pytest.fixture(scope="module")
def float_model(digits, cache):
    import keras

    keras.utils.set_random_seed(0)  # same initial weights in both modules: one training, one cache entry
    model = tinyml.zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes)
    return cache.fit(model, digits, epochs=30)


@pytest.fixture(scope="module")
def int8_model(float_model, digits, cache):
    return cache.convert(float_model, "int8", representative=digits.x_train[:300])


@pytest.fixture(scope="module")
def miscalibrated(float_model, digits, cache):
    return cache.convert(float_model, "int8", representative=digits.x_train[:300] * 0.01)


def test_accuracy_drop_passes_and_returns_the_figures(float_model, int8_model, digits):
    figures = tinyml.assert_accuracy_drop(float_model, int8_model, digits.x_test, digits.y_test, max_drop=0.01)
    assert figures["reference_accuracy"] >= 0.9
    assert figures["drop"] == pytest.approx(figures["reference_accuracy"] - figures["accuracy"])


def test_accuracy_drop_failure_reads_like_a_report(float_model, miscalibrated, digits):
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_accuracy_drop(float_model, miscalibrated, digits.x_test, digits.y_test, max_drop=0.01)
    message = str(failure.value)
    print(message)
    lines = message.splitlines()
    # The miscalibration (calibrated on x * 0.01) is named first, then the drop (tests/test_diagnosis.py).
    assert lines[0].startswith("x uses 2 of 256 input levels: the model was calibrated on values in 0..0.01")
    title = next(line for line in lines if line.startswith("accuracy dropped by "))
    assert title.endswith("more than the allowed 1.00")
    assert "reference: Keras model" in message and "candidate: int8 TFLite" in message
    assert any(line.split()[:5] == ["metric", "reference", "candidate", "difference", "budget"] for line in lines)
    row = next(line for line in lines if line.startswith("  accuracy "))
    assert "drop <= 0.0100" in row
    assert "more calibration samples" in message and "pytest_tinyml.optimize.qat" in message
    assert isinstance(failure.value, AssertionError)


@pytest.fixture(scope="module")
def anomaly():
    return tinyml.datasets.load("anomaly")


@pytest.fixture(scope="module")
def autoencoders(anomaly, cache):
    import keras

    keras.utils.set_random_seed(0)
    untrained = tinyml.zoo.build("autoencoder", input_shape=anomaly.input_shape)
    keras.utils.set_random_seed(0)
    trained = cache.fit(tinyml.zoo.build("autoencoder", input_shape=anomaly.input_shape), anomaly, epochs=20)
    return untrained, trained, cache.convert(trained, "int8", representative=anomaly.x_train[:300])


def test_autoencoder_drop_is_measured_in_roc_auc(autoencoders, anomaly):
    untrained, trained, int8 = autoencoders
    figures = tinyml.assert_accuracy_drop(trained, int8, anomaly.x_test, anomaly.y_test, max_drop=0.02)
    assert figures["metric"] == "roc_auc" and figures["reference_roc_auc"] > 0.85

    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_accuracy_drop(trained, untrained, anomaly.x_test, anomaly.y_test, max_drop=0.02)
    message = str(failure.value)
    print(message)
    assert message.startswith("ROC AUC dropped by ")
    assert "candidate: Keras model 'autoencoder' (float)" in message
    with pytest.raises(ConfigError, match="unknown metric 'f1'"):
        tinyml.assert_accuracy_drop(trained, int8, anomaly.x_test, anomaly.y_test, metric="f1")


def test_budget_passes_with_flash_and_host_arena(int8_model):
    figures = tinyml.assert_budget(int8_model, flash_kb=64, arena_kb=16)
    assert figures["flash_kb"] == pytest.approx(int8_model.size / 1024)
    assert 0 < figures["arena_kb"] < 16


def test_budget_failure_names_what_is_over(int8_model):
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_budget(int8_model, flash_kb=4, arena_kb=64)
    message = str(failure.value)
    print(message)
    assert "is over its budget" in message
    flash = next(line for line in message.splitlines() if line.strip().startswith("flash"))
    assert flash.split()[-1] == "OVER" and "4.0 KB" in flash
    arena = next(line for line in message.splitlines() if line.strip().startswith("arena"))
    assert "host 64-bit estimate" in arena and arena.split()[-1] == "ok"
    assert "raise the budget or prune" in message


def test_budget_accepts_bytes_and_a_path(int8_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_model.content)
    by_path = tinyml.assert_budget(str(path), flash_kb=64)
    by_bytes = tinyml.assert_budget(int8_model.content, flash_kb=64)
    assert by_path["flash_kb"] == by_bytes["flash_kb"] == pytest.approx(int8_model.size / 1024)


def test_parity_passes_float_vs_int8(float_model, int8_model, digits):
    figures = tinyml.assert_parity(float_model, int8_model, digits.x_test, min_top1_agreement=0.98,
                                   min_cosine=0.99)
    assert figures["top1_agreement"] >= 0.98
    assert figures["output_scale"] == pytest.approx(int8_model.outputs[0].scale)


def test_parity_failure_shows_the_table_and_the_worst_sample(float_model, miscalibrated, digits):
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_parity(float_model, miscalibrated, digits.x_test, min_top1_agreement=0.98, max_error_steps=8)
    message = str(failure.value)
    print(message)
    assert message.startswith("x uses 2 of 256 input levels")  # the miscalibration first (test_diagnosis.py)
    assert any(line.startswith("parity failed: top-1 agreement") for line in message.splitlines()[1:3])
    table = message.splitlines()
    assert any(line.split()[:5] == ["metric", "measured", "budget", "difference", "result"] for line in table)
    top1 = next(line for line in table if line.strip().startswith("top-1 agreement"))
    assert ">= 0.9800" in top1 and top1.split()[-1] == "FAIL"
    assert "disagree on top-1 (first: sample #" in message and "largest error: sample #" in message
    assert "more calibration samples" in message


def test_parity_error_steps_between_int8_and_a_device_result(int8_model, digits, request):
    """A board result built from the real TFLite Micro kernels: raw integers compared LSB by LSB."""
    from pytest_tinyml.board.result import BoardResult
    from pytest_tinyml.latency import LatencyStats

    x = digits.x_test[:8]
    from pytest_tinyml.runtime.tflm import TFLMRunner

    runner = TFLMRunner(int8_model)
    raw = np.asarray(runner.predict_raw(x))
    quant = int8_model.outputs[0]
    result = BoardResult(latency_us=LatencyStats.from_samples([100.0, 110.0]), arena_bytes=None,
                         info={"where": "host-sim", "chip": "sim"}, model_sha256=int8_model.sha256, runs=2,
                         warmup=0, outputs=quant.dequantize(raw), raw_outputs=raw, output_quant=quant)
    figures = tinyml.assert_parity(int8_model, result, x, max_error_steps=1)
    assert figures["steps_from"] == "raw integer outputs" and figures["max_error_steps"] <= 1
    # Recorded for the summary: the model the board ran, where it ran.
    recorded = dict(request.node.user_properties)
    assert recorded["tinyml.model"] == int8_model.name and recorded["tinyml.where"] == "host-sim"
    assert recorded["tinyml.max_error_steps"] == figures["max_error_steps"]

    # Without raw integers, steps come from the dequantized floats: exactly 1 LSB off everywhere still passes.
    one_lsb = np.clip(raw.astype(np.int16) + 1, -128, 127).astype(np.int8)
    dequantized_only = dataclasses.replace(result, raw_outputs=None, outputs=quant.dequantize(one_lsb))
    figures = tinyml.assert_parity(int8_model, dequantized_only, x, max_error_steps=1)
    assert "steps_from" not in figures and figures["max_error_steps"] == pytest.approx(1.0, abs=1e-5)

    # A board whose kernel rounds differently on one output: 3 LSB off.
    off = raw.copy()
    off[2, 4] = np.clip(int(off[2, 4]) + 3, -128, 127) if off[2, 4] < 125 else off[2, 4] - 3
    drifted = dataclasses.replace(result, raw_outputs=off, outputs=quant.dequantize(off))
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_parity(int8_model, drifted, x, max_error_steps=1)
    message = str(failure.value)
    print(message)
    steps = next(line for line in message.splitlines() if line.strip().startswith("max error (output steps)"))
    assert "3.0" in steps and "<= 1.0" in steps and steps.split()[-1] == "FAIL"
    assert "counted on the raw integer outputs" in message
    assert "board's kernels differ" in message

    other_model = dataclasses.replace(drifted, model_sha256="0" * 64)
    with pytest.raises(TinyMLAssertionError, match="the board ran model sha256 00000000, the reference is"):
        tinyml.assert_parity(int8_model, other_model, x, max_error_steps=1)

    with pytest.raises(ConfigError, match="outputs for 8 samples but x has 9"):
        tinyml.assert_parity(int8_model, result, digits.x_test[:9], max_error_steps=1)


def test_tflm_compatible_passes_for_int8(int8_model):
    assert tinyml.assert_tflm_compatible(int8_model)["unsupported_ops"] == []


def test_tflm_incompatible_keras_model_names_the_missing_operator():
    import keras

    inputs = keras.Input((8,))
    scores, _ = keras.ops.top_k(keras.layers.Dense(8)(inputs), 3)  # TOPK_V2: no micro kernel
    model = keras.Model(inputs, keras.layers.Dense(2)(scores), name="topk_head")
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_tflm_compatible(model)
    message = str(failure.value)
    print(message)
    assert message.startswith("Keras model 'topk_head' (float) cannot run on TFLite Micro: its op resolver lacks 1")
    row = next(line for line in message.splitlines() if line.strip().startswith("TOPK_V2"))
    assert "missing" in row and "argmax" in row


def test_argument_errors_name_what_was_given(int8_model, digits):
    with pytest.raises(ConfigError, match=r"model is a builtins.dict; expected a Keras model, a TFLiteArtifact"):
        tinyml.assert_budget({"not": "a model"}, flash_kb=1)
    with pytest.raises(ConfigError, match="no such model file"):
        tinyml.assert_budget(str(Path("missing.tflite")), flash_kb=1)
    with pytest.raises(ConfigError, match="needs a budget"):
        tinyml.assert_budget(int8_model)
    with pytest.raises(ConfigError, match="needs at least one budget"):
        tinyml.assert_parity(int8_model, int8_model, digits.x_test)
    with pytest.raises(ConfigError, match="min_snr_db must be a number, got 'high'"):
        tinyml.assert_parity(int8_model, int8_model, digits.x_test, min_snr_db="high")
    with pytest.raises(ConfigError, match="max_drop must be between 0 and 1"):
        tinyml.assert_accuracy_drop(int8_model, int8_model, digits.x_test, digits.y_test, max_drop=5)
    with pytest.raises(ConfigError, match="x has 300 samples but y has 3 labels"):
        tinyml.assert_accuracy_drop(int8_model, int8_model, digits.x_test[:300], digits.y_test[:3])
    with pytest.raises(ConfigError, match="board result; only the candidate"):
        from pytest_tinyml.board.result import BoardResult
        from pytest_tinyml.latency import LatencyStats

        result = BoardResult(LatencyStats.from_samples([1.0]), None, {}, None, 1, 0, outputs=np.zeros((1, 10)))
        tinyml.assert_parity(result, int8_model, digits.x_test[:1], min_cosine=0.9)


def test_error_steps_need_a_quantized_side(float_model, digits):
    with pytest.raises(ConfigError, match="max_error_steps= needs a quantized side"):
        tinyml.assert_parity(float_model, float_model, digits.x_test[:4], max_error_steps=1)


def test_a_failure_as_pytest_shows_it(pytester, int8_model):
    """In a user's run: the report is the failure text, helper frames are hidden, figures reach the summary."""
    (pytester.path / "model.tflite").write_bytes(int8_model.content)
    pytester.makepyfile(test_small='''
        import pytest_tinyml as tinyml

        def test_fits():
            tinyml.assert_budget("model.tflite", flash_kb=8)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E *: TFLite 'model' (sha256 *) is over its budget",
        "E *flash (flatbuffer)*8.0 KB*OVER",
        "E *raise the budget or prune*",
        "*tinyml summary*",
        "test_fits*model*failed",
    ])
    shown = result.stdout.str()
    assert "raise TinyMLAssertionError" not in shown and "def assert_budget" not in shown  # frames hidden
