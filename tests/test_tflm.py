"""TFLite Micro on the host: parity with LiteRT, exact arena by bisection, allocation report capture."""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
import runtime_models as models

from pytest_tinyml import runtime
from pytest_tinyml.errors import ArenaTooSmall, ModelLoadError
from pytest_tinyml.runtime import cstdio, tflm
from pytest_tinyml.runtime.litert import LiteRTRunner
from pytest_tinyml.runtime.tflm import HOST_LABEL, TFLMRunner


@pytest.fixture(scope="module")
def mlp_arena(mlp_int8):
    return tflm.arena(mlp_int8)


@pytest.mark.parametrize("which", ["mlp_int8", "cnn_int8"])
def test_litert_and_tflm_agree_within_one_lsb(which, request):
    artifact = request.getfixturevalue(which)
    shape = artifact.inputs[0].shape[1:]
    x = models.inputs(64, shape, seed=11)
    reference = LiteRTRunner(artifact).predict_raw(x).astype(np.int32)
    micro = TFLMRunner(artifact).predict_raw(x).astype(np.int32)
    assert micro.shape == reference.shape == (64, 10)
    difference = np.abs(reference - micro)
    assert difference.max() <= 1, f"max difference {difference.max()} LSB"
    assert (difference == 0).mean() >= 0.9  # off-by-one is a rounding corner case, not the rule


def test_tflm_predict_dequantizes_with_output_scale(mlp_int8):
    x = models.inputs(10, seed=12)
    runner = TFLMRunner(mlp_int8)
    out_q = mlp_int8.outputs[0]
    np.testing.assert_allclose(
        runner.predict(x), (runner.predict_raw(x).astype(np.float64) - out_q.zero_point) * out_q.scale, rtol=1e-6
    )


def test_tflm_float_model_matches_litert():
    float_model = models.artifact(models.mlp_float_bytes(), "mlp_float")
    x = models.inputs(16, seed=13)
    np.testing.assert_allclose(runtime.predict(float_model, x, engine="tflm"), runtime.predict(float_model, x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_arena_bisection_gives_the_exact_minimum(mlp_int8, mlp_arena):
    n = mlp_arena.arena_bytes
    assert 256 < n < 64 * 1024
    assert tflm.arena_works(mlp_int8, n)
    assert not tflm.arena_works(mlp_int8, n - 1)
    # and in this process: the runner works with exactly N bytes and gives the same outputs
    x = models.inputs(4, seed=14)
    np.testing.assert_array_equal(TFLMRunner(mlp_int8, arena_size=n).predict_raw(x), TFLMRunner(mlp_int8).predict_raw(x))


@pytest.mark.slow
def test_arena_report_parses_the_recording_allocator(mlp_arena):
    assert mlp_arena.label == HOST_LABEL and "64-bit" in mlp_arena.label
    allocated = mlp_arena.arena_allocated_bytes
    assert allocated is not None and 0 < allocated < mlp_arena.arena_bytes  # two figures, two names
    assert mlp_arena.allocated_head_bytes + mlp_arena.allocated_tail_bytes == allocated
    assert {"TfLiteEvalTensor data", "NodeAndRegistration struct"} <= set(mlp_arena.breakdown)
    assert all(a.used >= a.requested > 0 and a.count > 0 for a in mlp_arena.breakdown.values())
    assert mlp_arena.breakdown["NodeAndRegistration struct"].count == 3  # FC, FC, softmax
    assert f"{mlp_arena.arena_bytes} bytes" in mlp_arena.summary()


@pytest.mark.slow
def test_a_too_small_arena_is_refused_before_the_wrapper_can_crash(mlp_int8, mlp_arena):
    with pytest.raises(ArenaTooSmall, match=rf"arena_size=300 .*'mlp_int8'.*at least {mlp_arena.arena_bytes} bytes"):
        TFLMRunner(mlp_int8, arena_size=300)


def test_parse_allocations_reads_totals_and_lines():
    text = (
        "[RecordingMicroAllocator] Arena allocation total 1680 bytes\n"
        "[RecordingMicroAllocator] Arena allocation head 384 bytes\n"
        "[RecordingMicroAllocator] Arena allocation tail 1296 bytes\n"
        "[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 144 bytes with alignment overhead "
        "(requested 140 bytes for 6 allocations)\n"
    )
    parsed = tflm.parse_allocations(text)
    assert (parsed["total"], parsed["head"], parsed["tail"]) == (1680, 384, 1296)
    assert parsed["breakdown"]["TfLiteEvalTensor data"] == tflm.Allocation(144, 140, 6)


def test_capture_sees_c_level_writes_on_stdout_and_stderr():
    libc = ctypes.CDLL(None)
    with cstdio.capture() as captured:
        libc.printf(b"from C printf %d\n", 42)  # buffered in C stdio: capture must flush it
        libc.write(2, b"from C write(2)\n", 16)
    assert "from C printf 42" in captured.text
    assert "from C write(2)" in captured.text


# --- TFLite Micro's own reason is part of every TFLM error ------------------------------------------------

HYBRID_REASON = r"Hybrid models are not supported on TFLite Micro\. Node CONV_2D \(number 0\) failed to prepare"


def test_a_hybrid_model_is_refused_in_tflm_words_by_assert_tflm_compatible():
    import pytest_tinyml as tinyml

    hybrid = models.artifact(models.hybrid_conv_bytes(), "hybrid")
    with pytest.raises(tinyml.errors.TinyMLAssertionError) as failure:
        tinyml.assert_tflm_compatible(hybrid)
    message = str(failure.value)
    assert re.search(HYBRID_REASON, message), message
    assert "'hybrid' (sha256" in message and "loading failed" in message


def test_a_hybrid_model_is_refused_in_tflm_words_by_the_runner_and_analyze():
    from pytest_tinyml import analyze

    hybrid = models.artifact(models.hybrid_conv_bytes(), "hybrid_runner")
    with pytest.raises(ModelLoadError, match=rf"TFLite Micro refused model .*TFLite Micro says: {HYBRID_REASON}"):
        TFLMRunner(hybrid)
    assert re.search(HYBRID_REASON, analyze.analyze(hybrid).tflm.summary())
    # LiteRT has the hybrid kernels: the same bytes run there
    assert runtime.predict(hybrid, models.inputs(2, (8, 8, 4))).shape == (2, 3)


def test_micro_reason_keeps_tflm_words_and_drops_source_paths_and_allocator_lines():
    text = (
        "tensorflow/lite/micro/kernels/conv_common.cc Hybrid models are not supported on TFLite Micro.\n"
        "Node CONV_2D (number 0) failed to prepare with status 1\n"
        "[RecordingMicroAllocator] Arena allocation total 1680 bytes\n"
    )
    assert tflm.micro_reason(text) == (
        "Hybrid models are not supported on TFLite Micro. Node CONV_2D (number 0) failed to prepare with status 1"
    )
    assert tflm.micro_reason("") == ""
    assert "printed nothing" in tflm.micro_error("TFLite Micro refused model 'm'", RuntimeError("x"), "")
