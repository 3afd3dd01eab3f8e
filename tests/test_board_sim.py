"""The sim board end to end: tinyml-host (the firmware core built here) + real TFLite Micro, over a real pty."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from pytest_tinyml.board import flash, protocol
from pytest_tinyml.board.simboard import open_sim
from pytest_tinyml.errors import BoardError, BoardReset, BoardTimeout, FirmwareError
from pytest_tinyml.options import parse_board

MODEL = (Path(__file__).parent / "data" / "board_mlp_int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("board-cache"))


def sim(board_cache, text="sim", **kwargs):
    kwargs.setdefault("timeout", 10.0)
    board = open_sim(parse_board(text), cache_dir=board_cache, **kwargs)
    return board


@pytest.fixture(scope="module")
def board(board_cache):
    with sim(board_cache) as b:
        yield b


def _tflm(x: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(MODEL, arena_size=65536)
    out = []
    for row in x:
        interp.set_input(row.reshape(1, -1), 0)
        interp.invoke()
        out.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(out)


def test_sim_says_it_is_a_host_sim(board):
    info = board.info
    assert info["where"] == "sim" and info["chip"] == "host-sim" and board.identity.where == "sim"
    assert info["engine"].startswith("external:") and info["arena-note"] == "host-64-bit-estimate"
    assert info["protocol"].startswith("1.")


def test_benchmark_matches_tflite_micro_bit_for_bit(board):
    x = np.random.default_rng(0).uniform(0, 16, (3, 64)).astype(np.float32)
    result = board.benchmark(MODEL, inputs=x, runs=12, warmup=2)
    assert result.where == "sim" and result.runs == 12 and result.latency_us.n == 12
    assert 0 < result.latency_us.min <= result.latency_us.median <= result.latency_us.max
    assert result.arena_bytes and result.arena_bytes > 0
    assert result.model_sha256 == __import__("hashlib").sha256(MODEL).hexdigest()
    assert result.raw_outputs.shape == (3, 10) and result.outputs.shape == (3, 10)
    scale, zero = result.output_quant.scale, result.output_quant.zero_point
    # The same bytes through the tflite-micro package directly: identical integers.
    from pytest_tinyml.tflite.quant import TensorQuant

    in_q = TensorQuant("in", (1, 64), "int8", *_input_quant())
    np.testing.assert_array_equal(result.raw_outputs, _tflm(in_q.quantize(x)))
    np.testing.assert_allclose(result.outputs, (result.raw_outputs.astype(np.float32) - zero) * scale)
    assert result.ops == ()  # the Python TFLM interpreter has no per-op profiler: said, not faked


def _input_quant():
    from tflite_micro.python.tflite_micro import runtime

    details = runtime.Interpreter.from_bytes(MODEL, arena_size=65536).get_input_details(0)
    q = details["quantization_parameters"]
    return float(q["scales"][0]), int(q["zero_points"][0])


def test_same_model_is_not_uploaded_twice(board):
    board.benchmark(MODEL, runs=2, warmup=0)
    uploads = board.client.log.count("load-[target=model")
    board.benchmark(MODEL, runs=2, warmup=0)
    assert board.client.log.count("load-[target=model") == uploads


def test_delay_slows_the_sim_down(board_cache):
    with sim(board_cache, "sim:delay_us=3000") as slow:
        result = slow.benchmark(MODEL, runs=5, warmup=1)
    assert result.latency_us.min >= 3000


def test_garbled_lines_are_reasked_and_the_result_is_right(board_cache, board):
    clean = board.benchmark(MODEL, inputs=np.ones((2, 64), np.float32), runs=3, warmup=0)
    with sim(board_cache, extra=["--garble-seq", "3,9,10,14,30"]) as noisy:
        result = noisy.benchmark(MODEL, inputs=np.ones((2, 64), np.float32), runs=3, warmup=0)
        assert noisy.client.reasks >= 3
    np.testing.assert_array_equal(result.raw_outputs, clean.raw_outputs)


def test_panic_mid_run_discards_the_result_and_says_so(board_cache):
    with sim(board_cache, extra=["--panic-at-invoke", "5"]) as crashy:
        with pytest.raises(BoardReset) as info:
            crashy.benchmark(MODEL, runs=10, warmup=0)
        assert "reset during `tinyml-infer" in str(info.value) and "panic" in str(info.value)
        assert "partial result was discarded" in str(info.value)
        again = crashy.benchmark(MODEL, runs=3, warmup=0)  # the model is uploaded again after the reset
        assert again.latency_us.n == 3


def test_model_too_big_says_what_it_needs(board_cache):
    with sim(board_cache, extra=["--max-model-bytes", "1000"]) as small:
        with pytest.raises(protocol.ModelTooBig, match=rf"model-too-big: .*{len(MODEL)}"):
            small.benchmark(MODEL, runs=1, warmup=0)


def test_arena_too_small_says_how_much_it_needs(board_cache):
    with sim(board_cache, arena_size=1024) as tight:
        with pytest.raises(protocol.DeviceArenaTooSmall) as info:
            tight.benchmark(MODEL, runs=1, warmup=0)
    assert info.value.needed_bytes > 1024
    assert f"needs at least {info.value.needed_bytes} bytes, have 1024" in str(info.value)
    assert "CONFIG_TINYML_ARENA_SIZE" in str(info.value)


def test_stale_sim_fails_under_skip_flash_and_is_restarted_otherwise(board_cache):
    with pytest.raises(FirmwareError, match="is stale: it reports build hash deadbeef0000"):
        sim(board_cache, stale_build="deadbeef0000", skip_flash=True)
    with sim(board_cache, stale_build="deadbeef0000") as fresh:
        assert fresh.identity.firmware_hash != "deadbeef0000"


def test_silent_sim_times_out_with_the_serial_log(board_cache):
    with sim(board_cache) as frozen:
        frozen.benchmark(MODEL, runs=1, warmup=0)  # the upload under the normal timeout (a loaded machine...)
        frozen.client.timeout = 1.0  # ...the silence under 1 s
        os.kill(frozen.process.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(BoardTimeout) as info:
                frozen.benchmark(MODEL, runs=1, warmup=0)
        finally:
            os.kill(frozen.process.process.pid, signal.SIGCONT)
        # the late reply is drained, not mistaken for the next command's
        frozen.client.timeout = 10.0
        assert frozen.benchmark(MODEL, runs=2, warmup=0).latency_us.n == 2
    assert "did not answer" in str(info.value) and "m-ready" in info.value.log


def test_builtin_model_is_timed_with_model_none(board):
    import hashlib

    from pytest_tinyml.board import flash

    builtin = (flash.locate_firmware_dir() / "models" / "builtin.tflite").read_bytes()
    result = board.benchmark(None, runs=4, warmup=1)  # the firmware's baked-in model, as an MLPerf run times it
    assert result.latency_us.n == 4 and result.outputs.shape[0] == 1
    assert result.model_sha256 == hashlib.sha256(builtin).hexdigest()
    assert result.info["model"] == "builtin"


def test_dead_sim_is_a_lost_connection_not_a_crash(board_cache):
    from pytest_tinyml.errors import BoardError

    with sim(board_cache) as doomed:
        os.killpg(doomed.process.process.pid, signal.SIGKILL)
        doomed.process.process.wait(timeout=10)
        with pytest.raises(BoardError, match="lost the connection to sim"):
            doomed.benchmark(MODEL, runs=1, warmup=0)


def test_samples_ops_and_outputs_parse_exactly(board_cache):
    """tinyml-host's deterministic test engine: every figure is known in advance (ENGINE_RPC.md section 4)."""
    model = b"TST1" + bytes([16, 4]) + (2048).to_bytes(4, "little") + b"\x00" + bytes(range(1, 9))
    with sim(board_cache, extra=["--engine", "test", "--no-builtin"]) as test_board:
        state = test_board.load_model(model)
        assert state.arena_bytes == 2048 and state.inputs[0].shape == (1, 16) and state.outputs[0].dtype == "int8"
        assert state.outputs[0].scale == pytest.approx(1 / 256) and state.outputs[0].zero_point == -128
        test_board.client.upload("input", bytes(range(16)), 0)
        test_board.client.infer(3, 0)
        assert test_board.client.samples(3) == [1040, 1041, 1042]  # 1000 + 10*O + (n mod 5)
        quant, raw = test_board.client.output(0)
        weights = list(range(1, 9))
        expected = bytes((sum((i + 1) * i for i in range(16)) + weights[j % 8] + j) % 256 for j in range(4))
        assert raw == expected and quant.shape == (1, 4)
        ops, reason = test_board.client.ops()
        assert [(op.index, op.name) for op in ops] == [(0, "TEST_MAC"), (1, "TEST_ADD")]
        assert ops[1].us == 200


def test_jitter_spreads_the_samples(board_cache):
    with sim(board_cache, "sim:jitter_us=400,seed=3") as jittery:
        result = jittery.benchmark(MODEL, runs=15, warmup=0)
    assert result.latency_us.stdev > 20  # uniform 0..400 us: about 115 us; a quiet sim: about 1 us


def test_more_runs_than_the_firmware_keeps_go_in_batches(board_cache):
    with sim(board_cache, extra=["--max-runs", "8"]) as small:
        result = small.benchmark(MODEL, runs=20, warmup=2)
    assert result.latency_us.n == 20 and result.runs == 20


@pytest.mark.parametrize("keep", [0, 4096], ids=["emptied", "truncated"])
def test_cached_sim_binary_that_fails_its_handshake_is_rebuilt_once(tmp_path, keep):
    from pytest_tinyml.board import sim as simmod

    cache = tmp_path / "cache"
    binary, _ = simmod.build_host(flash.locate_firmware_dir(), cache)
    size = binary.stat().st_size
    with binary.open("r+b") as f:  # a crash mid-write, a full disk: the cache holds a broken program
        f.truncate(keep)
    with open_sim(parse_board("sim"), cache_dir=str(cache), timeout=10.0) as board:
        assert board.identity.where == "sim" and board.client.version().startswith("1.")
    assert binary.stat().st_size == size  # rebuilt from the sources


def test_a_rebuild_that_still_fails_is_reported_once(tmp_path, monkeypatch):
    """A compiler that writes a broken program: one rebuild, then a typed error that says so."""
    calls = tmp_path / "calls"
    fake_cc = tmp_path / "fake-cc"
    fake_cc.write_text(f'#!/bin/sh\necho x >> "{calls}"\nwhile [ "$1" != "-o" ]; do shift; done\n'
                       'printf "not a program" > "$2"\nchmod +x "$2"\n')
    fake_cc.chmod(0o755)
    monkeypatch.setenv("CC", str(fake_cc))
    with pytest.raises((FirmwareError, BoardError)) as info:
        open_sim(parse_board("sim"), cache_dir=str(tmp_path / "cache"), timeout=5.0)
    assert "the sim was rebuilt" in str(info.value)
    assert calls.read_text().count("x") == 2  # the first build and exactly one rebuild


def test_a_garbled_line_of_an_output_longer_than_the_resend_window_is_read_again(board_cache):
    """One sample at a time (tinyml-outputs, Board.benchmark's path): a 4096-byte output is 64 lines in one
    reply, the board holds the last 48 for resend, so its first line, garbled, cannot be re-asked. Before, the
    benchmark failed ('no longer held by the board'); now the read-only command is sent again."""
    import re

    import runtime_models as models

    from pytest_tinyml.runtime.tflm import TFLMRunner

    wide = models.artifact(models.wide_output_int8_bytes(), "wide_output")
    x = np.random.default_rng(7).uniform(0, 1, (3, 64)).astype(np.float32)
    with sim(board_cache) as clean:
        expected = clean.benchmark(wide, inputs=x, runs=1, warmup=0)
        firsts = [int(m.group(1)) for m in re.finditer(r"m-#(\d+)-output-data-\[0\]-\[0\]-", clean.client.log)]
    assert len(firsts) == 3  # one tinyml-outputs reply per sample: 64 data lines each
    np.testing.assert_array_equal(expected.raw_outputs, np.asarray(TFLMRunner(wide).predict_raw(x)).reshape(3, -1))
    with sim(board_cache, extra=["--garble-seq", str(firsts[1])]) as noisy:
        again = noisy.benchmark(wide, inputs=x, runs=1, warmup=0)
        headers = re.findall(r"-output-\[0\]-\[type=", noisy.client.log)
        assert noisy.client.reasks >= 1 and len(headers) == 4  # sample 2's reply read twice
    np.testing.assert_array_equal(again.raw_outputs, expected.raw_outputs)
