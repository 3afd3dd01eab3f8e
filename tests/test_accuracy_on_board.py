"""``assert_accuracy_drop`` with a board: the slice runs on the sim board (the firmware core built for the host,
real TFLite Micro kernels), streamed in batches, and the drop is measured there.

The digits MLP of tests/test_assertions.py (same seed, same cache: one training per session), converted to int8
twice: calibrated on the training data (good) and on data scaled down 100x (miscalibrated: its accuracy
collapses). Whether the board computes the accuracy the host would is checked against this host's TFLite Micro.
"""

from __future__ import annotations

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
    return tinyml.TinyMLCache(tmp_path_factory.getbasetemp() / "issue4-cache")


@pytest.fixture(scope="module")
def float_model(digits, cache):
    import keras

    keras.utils.set_random_seed(0)
    model = tinyml.zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes)
    return cache.fit(model, digits, epochs=30)


@pytest.fixture(scope="module")
def int8_model(float_model, digits, cache):
    return cache.convert(float_model, "int8", representative=digits.x_train[:300])


@pytest.fixture(scope="module")
def miscalibrated(float_model, digits, cache):
    return cache.convert(float_model, "int8", representative=digits.x_train[:300] * 0.01)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from pytest_tinyml.board.simboard import open_sim
    from pytest_tinyml.options import parse_board

    with open_sim(parse_board("sim"), cache_dir=str(tmp_path_factory.mktemp("board-cache")), timeout=20.0) as b:
        yield b


def test_the_drop_is_measured_on_the_board_and_equals_the_hosts(float_model, int8_model, digits, board, request):
    from pytest_tinyml.runtime.tflm import TFLMRunner

    x, y = digits.x_test, digits.y_test
    assert len(x) >= 300  # several hundred samples: more than one batch of 16384 bytes (256 samples of 64)
    figures = tinyml.assert_accuracy_drop(float_model, board, x, y, model=int8_model, max_drop=0.05)
    assert figures["where"] == "sim" and figures["samples"] == len(x)
    # The host's TFLite Micro on the same int8 model gives the same accuracy: the board path counts the same.
    host = tinyml.metrics.accuracy(y, int8_model.outputs[0].dequantize(np.asarray(TFLMRunner(int8_model).predict_raw(x))))
    assert figures["accuracy"] == host and figures["reference_accuracy"] >= 0.9
    recorded = dict(request.node.user_properties)
    assert recorded["tinyml.where"] == "sim" and recorded["tinyml.model"] == int8_model.name

    # The board's result given instead of the board: the same figures, no second run.
    predictions = board.predict(int8_model, x)
    assert len(predictions.batches) >= 2
    again = tinyml.assert_accuracy_drop(float_model, predictions, x, y, max_drop=0.05)
    assert again["accuracy"] == figures["accuracy"] and again["where"] == "sim"
    assert tinyml.assert_accuracy_drop(float_model, predictions, x, y, model=int8_model, max_drop=0.05)["drop"] == (
        figures["drop"])


def test_a_model_that_drops_accuracy_on_the_board_fails_saying_where_and_which_board(float_model, miscalibrated,
                                                                                      digits, board):
    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_accuracy_drop(float_model, board, digits.x_test, digits.y_test, model=miscalibrated,
                                    max_drop=0.01)
    message = str(failure.value)
    print(message)
    lines = message.splitlines()
    title = next(line for line in lines if line.startswith("accuracy dropped by "))
    assert title.endswith("more than the allowed 1.00")
    assert "candidate: host-sim (sim) result, firmware " in message
    measured = next(line for line in lines if "the candidate's figure was measured on the sim" in line)
    assert "chip host-sim" in measured and "firmware " in measured and "batches" in measured
    assert "on this host's TFLite Micro scores" in message and "bit-identical" in message
    assert any(line.split()[:5] == ["metric", "reference", "candidate", "(sim)", "difference"] for line in lines)
    # The per-layer diagnosis runs the model the board ran: the miscalibration is named first.
    assert lines[0].startswith("x uses 2 of 256 input levels")


def test_wrong_inputs_are_config_errors(float_model, int8_model, miscalibrated, digits, board):
    x, y = digits.x_test[:300], digits.y_test[:300]
    predictions = board.predict(int8_model, x)
    with pytest.raises(ConfigError, match="outputs for 300 samples but x has 299"):
        tinyml.assert_accuracy_drop(float_model, predictions, x[:299], y[:299])
    other_slice = digits.x_test[1:301]
    with pytest.raises(ConfigError, match="outputs of 300 other inputs than x"):
        tinyml.assert_accuracy_drop(float_model, predictions, other_slice, digits.y_test[1:301])
    with pytest.raises(ConfigError, match=r"the board result is of model sha256 \w{8}, but model= is"):
        tinyml.assert_accuracy_drop(float_model, predictions, x, y, model=miscalibrated)
    with pytest.raises(ConfigError, match="x has 300 samples but y has 299 labels"):
        tinyml.assert_accuracy_drop(float_model, board, x, y[:299], model=int8_model)
    with pytest.raises(ConfigError, match="with a board needs model="):
        tinyml.assert_accuracy_drop(float_model, board, x, y)
    with pytest.raises(ConfigError, match="a board runs a TFLite model"):
        tinyml.assert_accuracy_drop(float_model, board, x, y, model=float_model)
    with pytest.raises(ConfigError, match="model= is for a board or a board result"):
        tinyml.assert_accuracy_drop(float_model, int8_model, x, y, model=int8_model)
    with pytest.raises(ConfigError, match="batch_size must be a whole number"):
        tinyml.assert_accuracy_drop(float_model, board, x, y, model=int8_model, batch_size=0)


def test_a_benchmark_result_of_other_inputs_is_refused_too(float_model, int8_model, digits, board):
    """Before, a ``Board.benchmark`` result carried no input fingerprint: the outputs of x[:20] were scored
    against the labels of x[20:40] and the drop reported as measured on the board."""
    x, y = digits.x_test[:40], digits.y_test[:40]
    result = board.benchmark(int8_model, x[:20], runs=1)
    with pytest.raises(ConfigError, match="outputs of 20 other inputs than x"):
        tinyml.assert_accuracy_drop(float_model, result, x[20:], y[20:])
    assert result.ran_on(x[:20]) is True and result.ran_on(x[20:]) is False
    figures = tinyml.assert_accuracy_drop(float_model, result, x[:20], y[:20], max_drop=1.0)
    assert figures["where"] == "sim" and figures["samples"] == 20


PLUGIN_TEST = '''
import pathlib
import numpy as np
import pytest
import pytest_tinyml as tinyml

MODEL = pathlib.Path(__file__).parent / "model.tflite"
X = np.random.default_rng(3).uniform(0, 16, (300, 64)).astype(np.float32)
Y = tinyml.outputs(MODEL, X).argmax(axis=1)  # the host's classes as labels

@pytest.mark.tinyml_board
def test_accuracy_on_the_board(tinyml_board):
    figures = tinyml.assert_accuracy_drop(MODEL, tinyml_board, X, Y, model=MODEL, max_drop=0.01)
    assert figures["where"] == "sim" and figures["samples"] == 300

@pytest.mark.tinyml_board
def test_board_without_the_model(tinyml_board):
    tinyml.assert_accuracy_drop(MODEL, tinyml_board, X, Y)
'''


def test_the_plugin_runs_the_slice_on_the_session_board_and_reports_where(pytester, tmp_path_factory):
    """As users see it: --tinyml-board=sim, the tinyml_board fixture as the candidate, where=sim in the summary."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).parent / "data" / "board_mlp_int8.tflite", pytester.path / "model.tflite")
    pytester.makepyfile(test_on_board=PLUGIN_TEST)
    cache = tmp_path_factory.mktemp("plugin-board-cache")
    result = pytester.runpytest_subprocess("--tinyml-board=sim", f"--tinyml-cache-dir={cache}", "-p",
                                           "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ConfigError: assert_accuracy_drop with a board needs model=*",
                                 "*tinyml summary*", "*accuracy*drop*where*", "test_accuracy_on_the_board*sim*passed"])
