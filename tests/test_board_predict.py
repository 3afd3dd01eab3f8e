"""``Board.predict``: a data set slice streamed through the sim board in batches (protocol 1.2), its outputs
the same integers as TFLite Micro and LiteRT's reference kernels give on the host, and a board that dies,
resets or stalls mid-stream reported as a typed error, never a hang."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from pytest_tinyml.board.simboard import open_sim
from pytest_tinyml.errors import BoardDisconnected, BoardReset, BoardTimeout, ConfigError
from pytest_tinyml.options import parse_board
from pytest_tinyml.tflite.artifact import TFLiteArtifact

pytestmark = pytest.mark.slow  # each test starts tinyml-host and its TFLite Micro engine

MODEL = (Path(__file__).parent / "data" / "board_mlp_int8.tflite").read_bytes()  # 64 int8 in, 10 int8 out
ARTIFACT = TFLiteArtifact.from_bytes(MODEL, name="board_mlp_int8")


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("board-cache"))


def sim(board_cache, text="sim", **kwargs):
    kwargs.setdefault("timeout", 10.0)
    return open_sim(parse_board(text), cache_dir=board_cache, **kwargs)


@pytest.fixture(scope="module")
def slice_x():
    return np.random.default_rng(7).uniform(0, 16, (400, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def host_raw(slice_x):
    """The slice on the host: TFLite Micro (the tflite-micro package), one sample per invoke."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(MODEL, arena_size=65536)
    quantized = ARTIFACT.inputs[0].quantize(slice_x)
    out = []
    for row in quantized:
        interp.set_input(row.reshape(1, -1), 0)
        interp.invoke()
        out.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(out)


def test_a_slice_larger_than_the_batch_buffer_streams_in_batches_bit_for_bit(board_cache, slice_x, host_raw):
    from pytest_tinyml.runtime.litert import LiteRTRunner
    from pytest_tinyml.runtime.tflm import TFLMRunner

    # 1024 bytes of batch: 16 samples of 64 bytes, so 400 samples take at least 25 batches.
    with sim(board_cache, extra=["--batch-max", "1024"]) as board:
        assert board.info["batch-max-bytes"] == "1024"
        predictions = board.predict(ARTIFACT, slice_x)
        uploads = board.client.log.count("tinyml-load model")
    assert predictions.where == "sim" and predictions.identity.where == "sim"
    assert predictions.identity.chip == "host-sim" and predictions.identity.firmware_hash
    assert sum(predictions.batches) == 400 and max(predictions.batches) == 16 and len(predictions.batches) == 26
    assert predictions.model_sha256 == ARTIFACT.sha256 and uploads <= 1  # the model goes up once
    assert predictions.raw_outputs.shape == (400, 10) and predictions.raw_outputs.dtype == np.int8
    np.testing.assert_array_equal(predictions.raw_outputs, host_raw)
    tflm = np.asarray(TFLMRunner(ARTIFACT).predict_raw(slice_x)).reshape(400, 10)  # the project's host TFLM runner
    np.testing.assert_array_equal(predictions.raw_outputs, tflm)
    # LiteRT's reference kernels agree on every sample's class. Not on every bit: measured on this slice, one
    # FULLY_CONNECTED value of one sample (#151) rounds 1 LSB apart from TFLite Micro's, which SOFTMAX then spreads.
    litert = np.asarray(LiteRTRunner(ARTIFACT, reference_kernels=True).predict_raw(slice_x)).reshape(400, 10)
    np.testing.assert_array_equal(predictions.raw_outputs.argmax(axis=1), litert.argmax(axis=1))
    # Dequantized with the artifact's one TensorQuant, as the host runners dequantize.
    np.testing.assert_array_equal(predictions.outputs, ARTIFACT.outputs[0].dequantize(host_raw))
    assert predictions.ran_on(slice_x) and not predictions.ran_on(slice_x[::-1]) and not predictions.ran_on(slice_x[:399])


def test_default_batches_grow_from_the_boards_own_time_and_respect_batch_size(board_cache, slice_x, host_raw):
    with sim(board_cache) as board:
        grown = board.predict(ARTIFACT, slice_x)
        capped = board.predict(ARTIFACT, slice_x[:100], batch_size=7)
    # First batch one sample (time per sample unknown), then as many as 16384 bytes hold (256 samples).
    assert grown.batches[0] == 1 and max(grown.batches) == 256 and sum(grown.batches) == 400
    assert max(capped.batches) == 7 and sum(capped.batches) == 100
    np.testing.assert_array_equal(grown.raw_outputs, host_raw)
    np.testing.assert_array_equal(capped.raw_outputs, host_raw[:100])


def test_a_slow_board_gets_batches_that_end_inside_the_timeout(board_cache, slice_x, host_raw):
    # 20 ms an invoke, 1 s timeout: a batch may take a quarter of it, about 12 samples (256 would take 5 s).
    with sim(board_cache, "sim:delay_us=20000") as slow:
        slow.predict(ARTIFACT, slice_x[:1])  # the model goes up under the normal timeout (a loaded machine...)
        slow.client.timeout = 1.0  # ...and the batches are sized for this one
        predictions = slow.predict(ARTIFACT, slice_x[:60])
    assert predictions.batches[0] == 1 and 1 < max(predictions.batches) <= 12 and sum(predictions.batches) == 60
    np.testing.assert_array_equal(predictions.raw_outputs, host_raw[:60])


def test_samples_larger_than_the_batch_buffer_and_old_firmware_go_one_at_a_time(board_cache, slice_x, host_raw):
    with sim(board_cache, extra=["--batch-max", "32"]) as board:  # one 64-byte sample does not fit
        single = board.predict(ARTIFACT, slice_x[:20])
        assert single.batches == (1,) * 20 and "tinyml-load batch" not in board.client.log
        np.testing.assert_array_equal(single.raw_outputs, host_raw[:20])
    with sim(board_cache) as board:
        board.info["protocol"] = "1.1"  # as a firmware before batches reports itself
        old = board.predict(ARTIFACT, slice_x[:20])
        assert old.batches == (1,) * 20 and "tinyml-load batch" not in board.client.log
        np.testing.assert_array_equal(old.raw_outputs, host_raw[:20])


def test_garbled_lines_mid_stream_are_reasked_and_the_outputs_are_right(board_cache, slice_x, host_raw):
    with sim(board_cache, extra=["--batch-max", "1024", "--garble-seq", "12,20,33,47,60"]) as noisy:
        predictions = noisy.predict(ARTIFACT, slice_x[:64])
        assert noisy.client.reasks >= 3
    np.testing.assert_array_equal(predictions.raw_outputs, host_raw[:64])


def test_a_board_that_resets_mid_stream_is_a_board_reset_then_works_again(board_cache, slice_x, host_raw):
    with sim(board_cache, extra=["--batch-max", "1024", "--panic-at-invoke", "40"]) as crashy:
        with pytest.raises(BoardReset) as info:
            crashy.predict(ARTIFACT, slice_x[:100])
        assert "reset during `tinyml-predict" in str(info.value) and "panic" in str(info.value)
        again = crashy.predict(ARTIFACT, slice_x[:100])  # the model is uploaded again after the reset
    np.testing.assert_array_equal(again.raw_outputs, host_raw[:100])


def test_a_board_that_dies_mid_stream_is_a_lost_connection(board_cache, slice_x):
    with sim(board_cache, extra=["--batch-max", "1024"]) as doomed:
        read_back = doomed.client.predictions

        def die_after_the_first_batch(*args):
            out = read_back(*args)
            os.killpg(doomed.process.process.pid, signal.SIGKILL)
            doomed.process.process.wait(timeout=10)
            return out

        doomed.client.predictions = die_after_the_first_batch
        with pytest.raises(BoardDisconnected, match="lost the connection to sim"):
            doomed.predict(ARTIFACT, slice_x[:100])


def test_a_board_that_stalls_mid_stream_times_out_once(board_cache, slice_x, host_raw):
    with sim(board_cache, extra=["--batch-max", "1024"]) as frozen:
        pid = frozen.process.process.pid
        read_back = frozen.client.predictions
        # The model goes up under the normal timeout (a loaded machine can take over 1 s for a chunk's reply);
        # only the stalled stream runs under 1 s.
        frozen.predict(ARTIFACT, slice_x[:1])
        frozen.client.timeout = 1.0

        def stall_after_the_first_batch(*args):
            out = read_back(*args)
            os.kill(pid, signal.SIGSTOP)
            return out

        frozen.client.predictions = stall_after_the_first_batch
        try:
            with pytest.raises(BoardTimeout, match="did not answer"):
                frozen.predict(ARTIFACT, slice_x[:100])
        finally:
            os.kill(pid, signal.SIGCONT)
        frozen.client.predictions = read_back
        frozen.client.timeout = 10.0
        again = frozen.predict(ARTIFACT, slice_x[:50])  # resynchronised, not confused by the late reply
    np.testing.assert_array_equal(again.raw_outputs, host_raw[:50])


def test_bad_arguments_are_config_errors(board_cache, slice_x):
    with sim(board_cache) as board:
        with pytest.raises(ConfigError, match="batch_size must be a whole number >= 1"):
            board.predict(ARTIFACT, slice_x, batch_size=0)
        with pytest.raises(ConfigError, match="predict needs the model to run"):
            board.predict(None, slice_x)
        with pytest.raises(ConfigError, match=r"inputs of shape \(3, 65\) do not match the model's input"):
            board.predict(ARTIFACT, np.zeros((3, 65), np.float32))


def test_inputs_the_board_cannot_run_as_given_are_refused_before_any_output(board_cache, slice_x):
    """Before, a 2-input model ran with its second input all zeros, an empty x raised numpy's ValueError, a
    NaN sample was sent as whatever the int8 cast made of it (outputs of no input given), and a model with a
    fixed batch of 4 got the board's 'input-size' refusal, which does not say the batch is the problem."""
    import runtime_models as models

    two_inputs = models.artifact(models.two_input_int8_bytes(), "two_inputs")
    assert len(two_inputs.inputs) == 2
    with_nan = slice_x[:5].copy()
    with_nan[2, 7] = np.nan
    with sim(board_cache) as board:
        with pytest.raises(ConfigError, match="streams input tensor 0 only; model 'two_inputs' has 2 inputs"):
            board.predict(two_inputs, np.zeros((3, 8), np.float32))
        batch_four = models.artifact(models.mlp_int8_batch_bytes(4), "batch_four")  # input (4, 64)
        with pytest.raises(ConfigError, match=r"model 'batch_four' has a fixed batch of 4 \(input \(4, 64\)\)"):
            board.predict(batch_four, slice_x[:8])
        with pytest.raises(ConfigError, match=r"inputs of shape \(0, 64\) hold no sample"):
            board.predict(ARTIFACT, slice_x[:0])
        with pytest.raises(ConfigError, match=r"inputs has 1 NaN/Inf values \(first in sample #2\)"):
            board.predict(ARTIFACT, with_nan)
        with pytest.raises(ConfigError, match="NaN/Inf"):
            board.benchmark(ARTIFACT, np.full((1, 64), np.inf, np.float32), runs=1)
        # the right input still runs: one sample, and int8 samples as they are
        assert board.predict(ARTIFACT, slice_x[0]).raw_outputs.shape == (1, 10)
        assert board.predict(ARTIFACT, slice_x[:3].astype(np.int8)).raw_outputs.shape == (3, 10)


def test_a_batch_the_boards_free_heap_cannot_hold_is_halved_until_it_fits(board_cache, slice_x, host_raw):
    """batch-max-bytes (16384: 256 samples here) is the firmware's limit; beside the 4.5 KB model a 9000-byte
    heap has about 4 KB free. Before, the second batch was refused (no-room) and predict failed."""
    with sim(board_cache, extra=["--max-model-bytes", "9000"]) as board:
        assert board.info["batch-max-bytes"] == "16384"
        predictions = board.predict(ARTIFACT, slice_x)
        assert sum(predictions.batches) == 400 and 1 < max(predictions.batches) < 64
        np.testing.assert_array_equal(predictions.raw_outputs, host_raw)
        assert board.predict(ARTIFACT, slice_x[:3]).raw_outputs.shape == (3, 10)  # the board is still in sync


def test_a_garbled_line_of_an_output_longer_than_the_resend_window_is_read_again(board_cache, slice_x):
    """A 4096-byte output is 64 lines in one tinyml-predictions reply; the board holds the last 48 for resend,
    so its first line, garbled, cannot be re-asked. Before, predict failed ('no longer held by the board')."""
    import re

    import runtime_models as models

    from pytest_tinyml.runtime.tflm import TFLMRunner

    wide = models.artifact(models.wide_output_int8_bytes(), "wide_output")
    x = slice_x[:3] / 16
    with sim(board_cache) as clean:
        expected = clean.predict(wide, x)
        firsts = [int(m.group(1)) for m in re.finditer(r"m-#(\d+)-prediction-\[\d+\]-\[0\]-", clean.client.log)]
    assert expected.batches == (1, 2) and len(firsts) == 3  # one reply per sample: 64 lines each
    np.testing.assert_array_equal(expected.raw_outputs, np.asarray(TFLMRunner(wide).predict_raw(x)).reshape(3, -1))
    with sim(board_cache, extra=["--garble-seq", str(firsts[1])]) as noisy:
        again = noisy.predict(wide, x)
        assert noisy.client.reasks >= 1
    np.testing.assert_array_equal(again.raw_outputs, expected.raw_outputs)


def test_assert_parity_refuses_the_board_outputs_of_other_inputs(board_cache, slice_x):
    """Its docstring says a board result's outputs must be those of x; before, only their count was checked:
    the outputs of slice_x[:20] were compared with the host's on slice_x[20:40]."""
    import pytest_tinyml as tinyml

    with sim(board_cache) as board:
        predictions = board.predict(ARTIFACT, slice_x[:20])
        benchmarked = board.benchmark(ARTIFACT, slice_x[:20], runs=1)
    for result in (predictions, benchmarked):
        with pytest.raises(ConfigError, match="outputs of 20 other inputs than x"):
            tinyml.assert_parity(ARTIFACT, result, slice_x[20:40], max_error_steps=1)
        assert tinyml.assert_parity(ARTIFACT, result, slice_x[:20], max_error_steps=1)["max_error_steps"] <= 1


def test_assert_accuracy_drop_on_a_board_refuses_a_model_with_two_outputs(board_cache, slice_x):
    """As a two-output candidate is refused on the host. Before, the board scored output 0 alone and reported
    its accuracy as the model's."""
    import runtime_models as models

    import pytest_tinyml as tinyml

    two_heads = models.artifact(models.two_output_int8_bytes(), "two_heads")
    assert len(two_heads.outputs) == 2 and all(q.shape == (1, 10) for q in two_heads.outputs)
    x = slice_x[:20]
    y = tinyml.outputs(ARTIFACT, x).argmax(axis=1)
    with sim(board_cache) as board:
        with pytest.raises(ConfigError, match=r"model= \(TFLite 'two_heads'.*\) has 2 outputs; the assertions compare"):
            tinyml.assert_accuracy_drop(ARTIFACT, board, x, y, model=two_heads, max_drop=1.0)
        results = (board.predict(two_heads, x), board.benchmark(two_heads, x, runs=1))
    for result in results:  # its results as the candidate too (they hold output 0 only)
        with pytest.raises(ConfigError, match="a model with 2 outputs and holds output 0 only"):
            tinyml.assert_accuracy_drop(ARTIFACT, result, x, y, max_drop=1.0)
        with pytest.raises(ConfigError, match="a model with 2 outputs and holds output 0 only"):
            tinyml.assert_parity(ARTIFACT, result, x, max_error_steps=255)
    with pytest.raises(ConfigError, match="candidate has 2 outputs"):
        tinyml.assert_accuracy_drop(ARTIFACT, two_heads, x, y, max_drop=1.0)
