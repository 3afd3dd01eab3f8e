"""The sim runs the firmware's semantics: inputs set once per upload, invokes on what TFLite Micro leaves in
the arena, the one arena figure, the one input quantization. Real TFLite Micro, real LiteRT, real ptys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_tinyml.board import flash
from pytest_tinyml.board.simboard import open_sim
from pytest_tinyml.options import parse_board

MLP = (Path(__file__).parent / "data" / "board_mlp_int8.tflite").read_bytes()
BUILTIN = (flash.locate_firmware_dir() / "models" / "builtin.tflite").read_bytes()


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("board-cache"))


@pytest.fixture(scope="module")
def board(board_cache):
    with open_sim(parse_board("sim"), cache_dir=board_cache, timeout=60.0) as b:
        yield b


def _first_run(model: bytes, x: np.ndarray) -> np.ndarray:
    """The output of ONE invoke on a fresh TFLite Micro interpreter: what every run must give."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=1 << 20)
    interpreter.set_input(x.reshape(interpreter.get_input_details(0)["shape"]), 0)
    interpreter.invoke()
    return np.array(interpreter.get_output(0)).reshape(-1)


def _input(model: bytes, seed: int = 0) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    details = runtime.Interpreter.from_bytes(model, arena_size=1 << 20).get_input_details(0)
    return np.random.default_rng(seed).integers(-128, 128, details["shape"]).astype(details["dtype"])


# --- the engine keeps the firmware's contract (ENGINE_RPC.md) ----------------------------------------------


def test_engine_invokes_on_what_the_arena_holds():
    """One set_input, two invokes: the second sees the arena TFLite Micro's planner reused -- so a core that
    sets the input once (the firmware's defect D1) gives a wrong second result on the sim too; with
    set_input before every invoke (the contract) every run gives the first run's output."""
    from pytest_tinyml.board.sim_engine import TflmEngine

    x = _input(BUILTIN)
    engine = TflmEngine(arena_size=131072)
    engine.load(BUILTIN)
    engine.set_input(0, x.tobytes())
    engine.invoke()
    first = np.frombuffer(engine.output(0), np.int8)
    engine.invoke()
    second = np.frombuffer(engine.output(0), np.int8)
    np.testing.assert_array_equal(first, _first_run(BUILTIN, x))
    assert not np.array_equal(second, first), "the input slot was not reused: this model cannot show D1"
    for _ in range(2):  # the contract the firmware keeps: the staged input again before every invoke
        engine.set_input(0, x.tobytes())
        engine.invoke()
        np.testing.assert_array_equal(np.frombuffer(engine.output(0), np.int8), first)


def test_sim_infer_twice_gives_the_first_runs_outputs(board):
    """Upload one input, `tinyml-infer 1 0` twice: both give the first run's outputs (firmware D1 fixed)."""
    x = _input(BUILTIN, seed=1)
    board.load_model(BUILTIN)
    board.client.upload("input", x.tobytes(), 0)
    outputs = []
    for _ in range(2):
        board.client.infer(1, 0)
        outputs.append(np.frombuffer(board.client.output(0)[1], np.int8))
    np.testing.assert_array_equal(outputs[0], _first_run(BUILTIN, x))
    np.testing.assert_array_equal(outputs[1], outputs[0])
    board.client.infer(5, 2)  # and after timed runs with warm-up too
    np.testing.assert_array_equal(np.frombuffer(board.client.output(0)[1], np.int8), outputs[0])


def test_sim_mlperf_infer_reports_the_first_runs_results(board):
    """MLPerf Tiny `db load` + `infer 3 1`: `m-results-` are the first run's outputs, not the 4th run's."""
    from pytest_tinyml.tflite.quant import TensorQuant

    x = _input(BUILTIN, seed=2)
    state = board.load_model(None)  # MLPerf commands run the built-in model
    assert state.source == "builtin"
    board.client.mlperf_load(x.tobytes())
    run = board.client.mlperf_infer(3, 1)
    out = state.outputs[0]
    expected = TensorQuant(out.name, out.shape, out.dtype, out.scale, out.zero_point).dequantize(
        _first_run(BUILTIN, x))
    np.testing.assert_allclose(np.array(run.results), expected, atol=1e-6)


# --- one arena figure (COORD contract 2) -------------------------------------------------------------------


@pytest.mark.parametrize("model", [MLP, BUILTIN], ids=["board_mlp_int8", "builtin"])
def test_sim_arena_is_assert_budgets_to_the_byte(board, model):
    from pytest_tinyml import assert_budget
    from pytest_tinyml.runtime import tflm

    result = board.benchmark(model, runs=1, warmup=0)
    budget_bytes = assert_budget(model, arena_kb=1e6)["arena_kb"] * 1024
    assert result.arena_bytes == tflm.arena(model).arena_bytes == budget_bytes
    state = board.loaded_model()
    assert state.arena_allocated_bytes is not None and state.arena_allocated_bytes != state.arena_bytes


# --- one quantization of inputs (issue 11) -----------------------------------------------------------------


def _half_steps(quant, n: int) -> np.ndarray:
    """Float inputs exactly halfway between two of the input tensor's levels, both parities of the level."""
    k = np.arange(-60, -60 + n * 64, dtype=np.float32).reshape(n, 64) % 200 - 100
    x = ((k + np.float32(0.5)) * np.float32(quant.scale)).astype(np.float32)
    exact = (x / np.float32(quant.scale)) % 1 == 0.5
    assert exact.mean() > 0.9, "the half-steps did not survive float32"
    return x


def test_half_step_inputs_on_the_sim_match_litert_reference_kernels_bit_for_bit(board):
    from pytest_tinyml import runtime
    from pytest_tinyml.runtime.litert import LiteRTRunner

    artifact = runtime.load(MLP)
    x = _half_steps(artifact.inputs[0], 4)
    on_sim = board.benchmark(artifact, inputs=x, runs=1, warmup=0).raw_outputs
    reference = LiteRTRunner(artifact, reference_kernels=True).predict_raw(x)
    np.testing.assert_array_equal(on_sim, np.asarray(reference[0] if isinstance(reference, list) else reference))


def test_half_steps_rounded_half_to_even_would_not_match(board):
    """The check above can fail: the same inputs rounded half to even (np.round) give other outputs."""
    from pytest_tinyml import runtime
    from pytest_tinyml.runtime.litert import LiteRTRunner

    artifact = runtime.load(MLP)
    quant = artifact.inputs[0]
    x = _half_steps(quant, 4)
    even = np.clip(np.round(x / np.float32(quant.scale)) + quant.zero_point, -128, 127).astype(np.int8)
    assert not np.array_equal(even, quant.quantize(x))
    on_sim = board.benchmark(artifact, inputs=even, runs=1, warmup=0).raw_outputs
    reference = LiteRTRunner(artifact, reference_kernels=True).predict_raw(x)
    assert not np.array_equal(on_sim, np.asarray(reference[0] if isinstance(reference, list) else reference))


# --- what the sim cannot do, it says -----------------------------------------------------------------------


def test_sim_says_it_has_no_per_op_times(board):
    result = board.benchmark(MLP, runs=2, warmup=0)
    assert result.ops == () and "no per-op profiler" in result.ops_reason
    assert result.where == "sim" and result.identity.where == "sim"
