"""TensorQuant quantizes as TFLite does: float32 division, halves away from zero, clamp; per channel too.

The reference is TFLite itself: a one-op model (float32 -> QUANTIZE -> int8 / int16) run by LiteRT's
reference kernels, the kernels TFLite Micro shares. Inputs exactly between two quantization levels are the
cases a half-to-even rounding (``np.round``) or a float64 division gets wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_tinyml.tflite.quant import TensorQuant, round_half_away_from_zero

# A power-of-two scale: (k + 0.5) * scale is exact in float32, and so is its division by the scale.
HALF_STEP_SCALE = 1 / 16


def half_steps(scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Real values exactly between every two adjacent levels of the dtype, and a little beyond both ends."""
    info = np.iinfo(dtype)
    levels = np.arange(info.min - 3, info.max + 3, dtype=np.float64)
    return ((levels - zero_point + 0.5) * scale).astype(np.float32)


def quantize_model(scale: float, zero_point: int, dtype: str, size: int) -> bytes:
    """A real TFLite flatbuffer: float32 input [1, size] -> QUANTIZE -> ``dtype`` output (scale, zero point)."""
    import flatbuffers

    from pytest_tinyml.tflite.schema import schema

    fb = schema()

    def tensor(name, tensor_type, quant=None):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, size], tensor_type, 0
        if quant is not None:
            q = fb.QuantizationParametersT()
            q.scale, q.zeroPoint = [quant[0]], [quant[1]]
            t.quantization = q
        return t

    out_type = {"int8": fb.TensorType.INT8, "int16": fb.TensorType.INT16}[dtype]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.QUANTIZE
    code.version = 1
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = fb.SubGraphT()
    graph.tensors = [tensor("x", fb.TensorType.FLOAT32), tensor("q", out_type, (scale, zero_point))]
    graph.inputs, graph.outputs, graph.operators = [0], [1], [op]
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [fb.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """What TFLite's own QUANTIZE kernel (LiteRT reference kernels) makes of float32 values ``x``."""
    from pytest_tinyml.runtime.litert import new_interpreter

    x = np.asarray(x, dtype=np.float32).reshape(1, -1)
    interpreter = new_interpreter(quantize_model(scale, zero_point, dtype, x.shape[1]), "quantize",
                                  reference_kernels=True)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)


# --- pure logic -----------------------------------------------------------------------------------------

def test_values_exactly_between_two_levels_round_away_from_zero():
    q = TensorQuant("x", (1, 6), "int8", 0.5, 0)
    # 0.25 / 0.5 = 0.5 -> 1 (half to even says 0); 1.25 -> 2.5 -> 3 (even: 2); negatives mirror.
    assert q.quantize([0.25, 1.25, 2.25, -0.25, -1.25, -2.25]).tolist() == [1, 3, 5, -1, -3, -5]
    shifted = TensorQuant("x", (1, 2), "int8", 0.5, -128)
    assert shifted.quantize([0.25, 1.25]).tolist() == [-127, -125]


def test_round_half_away_from_zero_matches_std_round_where_floor_plus_half_does_not():
    below_half = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997: floor(x + 0.5) makes it 1
    got = round_half_away_from_zero(np.array([below_half, -below_half, 0.5, -0.5, 2.5, -2.5, 3.0], np.float32))
    assert got.tolist() == [0.0, 0.0, 1.0, -1.0, 3.0, -3.0, 3.0]


def test_clamps_to_the_dtype_range_and_passes_raw_integers_through():
    q = TensorQuant("x", (1, 4), "int8", 0.1, 10)
    assert q.quantize([1e9, -1e9, np.inf, -np.inf]).tolist() == [127, -128, 127, -128]
    raw = np.array([[5, -7]], dtype=np.int8)
    assert q.quantize(raw) is raw or np.array_equal(q.quantize(raw), raw)
    assert TensorQuant("u", (1, 1), "int16", 1 / 32768, 0).quantize([1.0]).tolist() == [32767]


def test_float_tensors_only_get_their_dtype():
    f = TensorQuant("y", (1, 2), "float32")
    assert not f.quantized
    out = f.quantize(np.array([0.5, 2.0], dtype=np.float64))
    assert out.dtype == np.float32 and out.tolist() == [0.5, 2.0]
    assert f.dequantize([1, 2]).dtype == np.float32


def test_dequantize_is_scale_times_steps_from_the_zero_point():
    q = TensorQuant("x", (1, 3), "int8", 0.5, -1)
    assert q.dequantize(np.array([-1, 1, 127], dtype=np.int8)).tolist() == [0.0, 1.0, 64.0]
    steps = np.arange(-128, 128, dtype=np.int8)
    assert np.array_equal(q.quantize(q.dequantize(steps)), steps)  # every level survives the round trip


def test_per_channel_scales_apply_along_the_quantized_dimension():
    q = TensorQuant.from_params("w", (2, 3), "int8", [0.5, 0.25, 1.0], [0, 1, -1], quantized_dimension=1)
    assert q.per_channel and q.quantized
    x = np.array([[0.25, 0.125, 0.5], [-1.0, -0.375, 3.0]], dtype=np.float32)
    # column 0: /0.5, column 1: /0.25 then +1, column 2: /1.0 then -1; the halves go away from zero.
    assert q.quantize(x).tolist() == [[1, 2, 0], [-2, -1, 2]]
    assert np.allclose(q.dequantize(q.quantize(x)), [[0.5, 0.25, 1.0], [-1.0, -0.5, 3.0]])
    with pytest.raises(Exception, match="per channel along axis 1"):
        q.quantize(np.zeros(3, dtype=np.float32))


def test_from_details_reads_interpreter_details():
    per_tensor = TensorQuant.from_details(
        {"name": "in", "shape": np.array([1, 4]), "dtype": np.int8,
         "quantization_parameters": {"scales": np.array([0.25]), "zero_points": np.array([-3]),
                                     "quantized_dimension": 0}})
    assert per_tensor == TensorQuant("in", (1, 4), "int8", 0.25, -3)
    unquantized = TensorQuant.from_details({"name": "out", "shape": [1, 2], "dtype": np.float32})
    assert unquantized == TensorQuant("out", (1, 2), "float32") and not unquantized.quantized


# --- against TFLite's own QUANTIZE kernel ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("scale", "zero_point", "dtype"),
    [(HALF_STEP_SCALE, -128, "int8"), (HALF_STEP_SCALE, 0, "int8"), (HALF_STEP_SCALE, 5, "int8"),
     (HALF_STEP_SCALE / 64, 0, "int16")],
    ids=["int8-zp-128", "int8-zp0", "int8-zp5", "int16"],
)
def test_half_steps_quantize_bit_exactly_as_the_tflite_kernel(scale, zero_point, dtype):
    x = half_steps(scale, zero_point, dtype)
    ours = TensorQuant("x", (1, x.size), dtype, scale, zero_point).quantize(x)
    np.testing.assert_array_equal(ours, tflite_quantize(x, scale, zero_point, dtype))
    assert ours.dtype == np.dtype(dtype)


def test_arbitrary_scales_quantize_bit_exactly_as_the_tflite_kernel():
    """Scales that are not powers of two: the division must be float32, as in the kernel, not float64."""
    rng = np.random.default_rng(7)
    for scale, zero_point in [(1 / 255, -128), (0.0392157, -5), (0.0137, 17), (0.2, 3)]:
        scale = float(np.float32(scale))
        levels = rng.integers(-130, 130, 4000)
        x = ((levels + 0.5 - zero_point) * scale).astype(np.float32)  # near half-steps, where it matters
        x = np.concatenate([x, rng.normal(0, 40 * scale, 4000).astype(np.float32)])
        ours = TensorQuant("x", (1, x.size), "int8", scale, zero_point).quantize(x)
        np.testing.assert_array_equal(ours, tflite_quantize(x, scale, zero_point, "int8"), err_msg=f"scale {scale}")


def test_model_fed_through_the_one_quantize_matches_feeding_tflite_quantized_inputs(mlp_int8):
    """The host runner quantizes float inputs with TensorQuant; the same model fed the integers TFLite's
    QUANTIZE kernel makes of those floats gives the same raw outputs, bit for bit (reference kernels)."""
    from pytest_tinyml.runtime.litert import LiteRTRunner

    spec = mlp_int8.inputs[0]
    assert spec.quantized and spec.dtype == "int8"
    rng = np.random.default_rng(3)
    levels = rng.integers(-128, 127, (64, 64))
    x = ((levels - spec.zero_point + 0.5) * np.float32(spec.scale)).astype(np.float32)  # half-steps
    by_tflite = tflite_quantize(x, spec.scale, spec.zero_point, "int8").reshape(x.shape)
    runner = LiteRTRunner(mlp_int8, reference_kernels=True)
    np.testing.assert_array_equal(runner.predict_raw(x), runner.predict_raw(by_tflite))
    # and the half-steps are a real test: half to even would have fed different integers
    assert not np.array_equal(np.clip(np.round(x / spec.scale) + spec.zero_point, -128, 127), by_tflite)
