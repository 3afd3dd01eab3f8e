"""The fan model's quality gates: what must hold before it ships to the fans."""

import pytest

import pytest_tinyml as tinyml


def test_float_model_is_good_enough(float_model, windows):
    assert tinyml.metrics.accuracy(windows.y_test, float_model.predict(windows.x_test, verbose=0)) >= 0.9


def test_int8_keeps_accuracy(float_model, int8_model, windows):
    tinyml.assert_accuracy_drop(float_model, int8_model, windows.x_test, windows.y_test, max_drop=0.02)


def test_fits_the_fan_controller(int8_model):
    # The fan controller leaves 48 KB of flash and 24 KB of RAM to the model.
    tinyml.assert_budget(int8_model, flash_kb=48, arena_kb=24)


def test_runs_on_tflite_micro(int8_model):
    tinyml.assert_tflm_compatible(int8_model)


def test_int8_agrees_with_float(float_model, int8_model, windows):
    tinyml.assert_parity(float_model, int8_model, windows.x_test, min_top1_agreement=0.97, min_cosine=0.98)


@pytest.mark.tinyml_board
def test_on_the_fan_controller(tinyml_board, int8_model, windows):
    result = tinyml_board.benchmark(int8_model, inputs=windows.x_test[:8], runs=30)
    assert result.latency_us.median < 20_000
    tinyml.assert_parity(int8_model, result, windows.x_test[:8], max_error_steps=1)
