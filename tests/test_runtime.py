"""LiteRT runner, model loading and checks, child-process isolation: on real converted models."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import runtime_models as models

from pytest_tinyml import runtime
from pytest_tinyml.errors import ConfigError, ModelLoadError, RuntimeCrash
from pytest_tinyml.runtime import isolation
from pytest_tinyml.runtime.litert import LiteRTRunner
from pytest_tinyml.tflite import schema


def tutorial_loop(content: bytes, x: np.ndarray) -> np.ndarray:
    """The per-sample set_tensor/invoke loop of the TFLite tutorials, with their quantization by hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    rows = []
    for sample in x:
        scaled = sample / scale
        q = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None, ...])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


# --- loading and flatbuffer checks ----------------------------------------------------------------------


def test_load_accepts_artifact_bytes_and_path(mlp_int8, tmp_path):
    path = tmp_path / "mlp.tflite"
    path.write_bytes(mlp_int8.content)
    loaded = [runtime.load(mlp_int8), runtime.load(mlp_int8.content), runtime.load(path), runtime.load(str(path))]
    assert {a.sha256 for a in loaded} == {mlp_int8.sha256}
    assert runtime.load(path).name == "mlp"
    assert runtime.load(mlp_int8) is mlp_int8


def test_load_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(ModelLoadError, match="nope.tflite"):
        runtime.load(missing)


def test_load_rejects_a_non_tflite_file_naming_it_and_the_identifier(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelLoadError, match=r"weights\.h5.*identifier.*TFL3"):
        runtime.load(path)


def test_load_rejects_other_objects():
    with pytest.raises(ConfigError, match="cannot use a int as a model"):
        runtime.load(42)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b[:10], "too short"),
        (lambda b: b[:4] + b"XXXX" + b[8:], "identifier"),
        (lambda b: struct.pack("<I", len(b) + 64) + b[4:], "root table offset"),
        (lambda b: struct.pack("<I", 10) + b[4:], "not 4-byte aligned"),
        (lambda b: b[:8] + b"\xff" * (len(b) - 8), "outside|malformed|past the end"),
    ],
    ids=["short", "identifier", "root-outside", "root-misaligned", "garbage-tables"],
)
def test_flatbuffer_check_names_model_and_problem(mlp_int8, mutate, problem):
    bad = mutate(mlp_int8.content)
    with pytest.raises(ModelLoadError, match=rf"model 'bad\.tflite'.*({problem})"):
        schema.check(bad, name="bad.tflite")


def test_flatbuffer_check_accepts_real_models(mlp_int8, cnn_int8):
    schema.check(mlp_int8.content, name="mlp")
    schema.check(cnn_int8.content, name="cnn")
    assert schema.io_counts(cnn_int8.content) == (1, 1)


def test_the_header_is_checked_once_on_a_journey_through_load_runners_and_analysis(mlp_int8, monkeypatch):
    """One read of the bytes per artifact: load, both host runners, analyze and the op resolver reuse it."""
    from pytest_tinyml.analyze import analyze, op_resolver_snippet
    from pytest_tinyml.runtime.tflm import TFLMRunner
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    real_check, checked = schema.check, []

    def counting_check(content, *, name="<bytes>"):
        checked.append(name)
        return real_check(content, name=name)

    monkeypatch.setattr(schema, "check", counting_check)
    artifact = TFLiteArtifact.from_bytes(mlp_int8.content, name="journey")
    x = models.inputs(3, (64,), seed=5)
    loaded = runtime.load(artifact)
    LiteRTRunner(loaded).predict(x)
    TFLMRunner(loaded).predict(x)
    analyze(loaded, tflm=False)
    op_resolver_snippet(loaded)
    assert checked == ["journey"]


def test_a_directly_built_artifact_with_bad_bytes_is_still_refused_on_load():
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    with pytest.raises(ModelLoadError, match="'direct'.*identifier"):
        runtime.load(TFLiteArtifact(content=b"\0" * 64, name="direct"))


# --- LiteRT: batching and quantization ------------------------------------------------------------------


def test_batched_and_per_sample_outputs_are_identical(mlp_int8, cnn_int8):
    for artifact, shape in ((mlp_int8, (64,)), (cnn_int8, (8, 8, 1))):
        x = models.inputs(37, shape, seed=3)
        runner = LiteRTRunner(artifact, batch_size=16)  # 16 + 16 + 5: exercises re-resizing too
        batched = runner.predict_raw(x)
        assert runner.batchable
        per_sample = np.concatenate([runner.predict_raw(x[i : i + 1]) for i in range(len(x))])
        assert batched.dtype == np.int8 and batched.shape == (37, 10)
        np.testing.assert_array_equal(batched, per_sample)


def test_batched_run_equals_the_tutorial_loop(mlp_int8):
    x = models.inputs(50, seed=4)
    np.testing.assert_array_equal(LiteRTRunner(mlp_int8).predict_raw(x), tutorial_loop(mlp_int8.content, x))


def test_a_batch_one_model_is_still_evaluated_in_batches(mlp_int8):
    """TFLite Micro recipes convert at batch 1; the host resizes a copy whose RESHAPE targets follow the batch."""
    pinned = models.artifact(models.mlp_int8_batch_one_bytes(), "mlp_batch1")
    runner = LiteRTRunner(pinned)
    assert runner.batchable
    x = models.inputs(9, seed=5)
    out = runner.predict_raw(x)
    assert out.shape == (9, 10) and runner._batch == 9
    np.testing.assert_array_equal(out, tutorial_loop(pinned.content, x))


def test_a_graph_that_pins_its_batch_falls_back_to_per_sample():
    """A batch-1 graph that drops its batch axis (a reshape to (8,)) is run one sample at a time."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    def across_batch(x):
        return tf.reshape(x * 2.0, [8])

    content = tf.lite.TFLiteConverter.from_concrete_functions([across_batch.get_concrete_function()],
                                                              across_batch).convert()
    runner = LiteRTRunner(models.artifact(content, "across_batch"))
    x = models.inputs(5, (8,), seed=6)
    out = runner.predict(x)
    assert not runner.batchable and out.shape == (5, 8)
    np.testing.assert_allclose(out, x * 2.0, rtol=1e-6)


def test_outputs_are_dequantized_with_the_output_tensor_own_scale(mlp_int8):
    runner = LiteRTRunner(mlp_int8)
    x = models.inputs(20, seed=6)
    raw, real = runner.predict_raw(x), runner.predict(x)
    out_q, in_q = mlp_int8.outputs[0], mlp_int8.inputs[0]
    assert out_q.scale != in_q.scale  # distinct tensors, distinct parameters: using the wrong one would show
    np.testing.assert_allclose(real, (raw.astype(np.float64) - out_q.zero_point) * out_q.scale, rtol=1e-6)
    assert real.dtype == np.float32
    # softmax outputs: dequantized rows sum to ~1
    np.testing.assert_allclose(real.sum(axis=1), 1.0, atol=0.05)


def test_integer_input_of_the_model_dtype_passes_unquantized(mlp_int8):
    runner = LiteRTRunner(mlp_int8)
    x = models.inputs(8, seed=7)
    quantized = runner.inputs[0].quantize(x)
    assert quantized.dtype == np.int8
    np.testing.assert_array_equal(runner.predict_raw(quantized), runner.predict_raw(x))


def test_float_model_batched_matches_per_sample():
    float_model = models.artifact(models.mlp_float_bytes(), "mlp_float")
    x = models.inputs(12, seed=8)
    out = runtime.predict(float_model, x)
    assert out.dtype == np.float32 and out.shape == (12, 10)
    np.testing.assert_allclose(out, np.concatenate([runtime.predict(float_model, x[i : i + 1]) for i in range(12)]),
                               rtol=1e-5, atol=1e-6)


def test_predict_accepts_one_unbatched_sample_and_rejects_wrong_shapes(mlp_int8):
    x = models.inputs(1, seed=9)
    np.testing.assert_array_equal(runtime.predict_raw(mlp_int8, x[0]), runtime.predict_raw(mlp_int8, x))
    with pytest.raises(ConfigError, match=r"has samples of shape \(5,\), the model expects \(64,\)"):
        runtime.predict(mlp_int8, np.zeros((3, 5), np.float32))


@pytest.mark.parametrize("engine", ["litert", "tflm"])
def test_a_model_with_a_fixed_batch_is_a_config_error_naming_the_batch(engine):
    """Before, LiteRT raised its untyped ValueError ('Dimension mismatch. Got 1 but expected 4') and TFLite Micro a
    ModelLoadError around it: neither says the fixed batch is the problem or how to convert the model."""
    batch_four = models.artifact(models.mlp_int8_batch_bytes(4), "batch_four")  # input (4, 64)
    with pytest.raises(ConfigError, match=r"model 'batch_four' has a fixed batch of 4 \(input \(4, 64\)\): .*"
                                          r"convert it with batch 1 or None"):
        runtime.predict(batch_four, models.inputs(8), engine=engine)
    batch_one = models.artifact(models.mlp_int8_batch_one_bytes(), "batch_one")  # input (1, 64): still runs
    assert runtime.predict(batch_one, models.inputs(3), engine=engine).shape == (3, 10)


def test_outputs_of_a_model_with_a_fixed_batch_is_the_same_config_error():
    import pytest_tinyml as tinyml

    batch_four = models.artifact(models.mlp_int8_batch_bytes(4), "batch_four")
    with pytest.raises(ConfigError, match=r"model 'batch_four' has a fixed batch of 4"):
        tinyml.outputs(batch_four, models.inputs(8))


def test_unknown_engine_is_a_config_error(mlp_int8):
    with pytest.raises(ConfigError, match="unknown engine 'onnx'"):
        runtime.predict(mlp_int8, models.inputs(1), engine="onnx")


def test_invoke_once_runs_the_interpreter(mlp_int8):
    runner = LiteRTRunner(mlp_int8)
    runner.predict(models.inputs(1))
    runner.invoke_once()


# --- isolation policy -----------------------------------------------------------------------------------


def test_unknown_model_is_vetted_once_in_a_child_then_runs_in_process(cnn_int8):
    fresh = models.artifact(cnn_int8.content, "cnn_copy")
    isolation.forget(fresh)
    assert not isolation.is_trusted(fresh, "litert")
    isolation.vet(fresh, "litert")
    assert isolation.is_trusted(fresh, "litert")
    assert not isolation.is_trusted(fresh, "tflm")  # vetting is per engine


def test_trusted_model_skips_the_child(cnn_int8, monkeypatch):
    copy = models.artifact(cnn_int8.content, "cnn_trusted")
    isolation.trust(bytes(copy.content))  # what pytest_tinyml.convert does for the artifacts it makes
    assert isolation.is_trusted(copy)

    def no_child(*args, **kwargs):
        raise AssertionError("a trusted model must not start a child process")

    monkeypatch.setattr(isolation, "run_task", no_child)
    assert LiteRTRunner(copy).predict(models.inputs(2, (8, 8, 1))).shape == (2, 10)


def test_predict_isolated_equals_in_process(mlp_int8):
    x = models.inputs(5, seed=10)
    np.testing.assert_array_equal(runtime.predict_raw(mlp_int8, x, isolated=True), runtime.predict_raw(mlp_int8, x))


def _corrupt_first_tensor_buffer_index(content: bytes) -> bytes:
    """Point a constant tensor at a buffer index far past the buffer list: TFLite Micro does not check."""
    model = schema.read_model(content)
    graph = model.Subgraphs(0)
    data = bytearray(content)
    for k in range(graph.TensorsLength()):
        tensor = graph.Tensors(k)
        field = tensor._tab.Offset(8)  # Tensor.buffer
        if field and tensor.Buffer() > 0:
            struct.pack_into("<I", data, tensor._tab.Pos + field, 0x7FFFFFF0)
            return bytes(data)
    raise AssertionError("no constant tensor found")


def test_load_rejects_a_tensor_pointing_past_the_buffers(mlp_int8):
    bad = _corrupt_first_tensor_buffer_index(mlp_int8.content)
    with pytest.raises(ModelLoadError, match=r"tensor \d+ .*points at buffer 2147483632, but there are \d+"):
        runtime.load(bad)


def test_corrupted_shape_of_a_constant_tensor_is_caught_before_cpp(mlp_int8):
    # [32, 64] weights declared [32, 65536]: TFLite Micro would read 2 MB past a 2 KB buffer
    graph = schema.read_model(mlp_int8.content).Subgraphs(0)
    tensor = next(t for t in map(graph.Tensors, range(graph.TensorsLength())) if t.ShapeAsNumpy().tolist() == [32, 64])
    data = bytearray(mlp_int8.content)
    struct.pack_into("<I", data, tensor._tab.Vector(tensor._tab.Offset(4)) + 4, 65536)
    with pytest.raises(ModelLoadError, match=r"declares shape \[32, 65536\] of INT8 \(2097152 bytes\) but its buffer"):
        runtime.predict(bytes(data), models.inputs(1), engine="tflm")


def test_a_model_that_segfaults_tflm_becomes_runtime_crash(mlp_int8):
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    # Skip the Python checks of runtime.load() to reach the C++ loader: it dies, the child with it, not us.
    bad = TFLiteArtifact.from_bytes(_corrupt_first_tensor_buffer_index(mlp_int8.content), name="corrupt")
    with pytest.raises(RuntimeCrash, match=r"(?s)tflm crashed \(SIG(SEGV|BUS|ABRT)\).*'corrupt'.*Hint"):
        isolation.vet(bad, "tflm")
    # memoized: the second attempt raises the same error without a new child
    with pytest.raises(RuntimeCrash):
        isolation.vet(bad, "tflm")
    # the verdict is about the bytes: the same bytes under another name are named as the caller names them
    again = TFLiteArtifact.from_bytes(bad.content, name="renamed")
    with pytest.raises(RuntimeCrash, match=r"'renamed'") as info:
        isolation.vet(again, "tflm")
    assert "'corrupt'" not in str(info.value)


def test_a_hung_child_is_killed_and_reported(mlp_int8):
    with pytest.raises(RuntimeCrash, match=r"(?s)hung for more than 0 s.*'mlp_int8'.*killed"):
        isolation.run_task(
            "vet",
            {"content": mlp_int8.content, "name": "mlp_int8", "engine": "tflm"},
            model_name="mlp_int8",
            engine="tflm",
            what="loading",
            timeout=0.001,
        )


def test_importing_runtime_and_analyze_loads_no_heavy_module():
    import subprocess
    import sys

    code = (
        "import sys, pytest_tinyml.runtime, pytest_tinyml.analyze, pytest_tinyml.c_export\n"
        "heavy = [m for m in ('numpy', 'tensorflow', 'keras', 'ai_edge_litert', 'tflite_micro') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_batched_copy_that_mixes_samples_is_caught_and_not_used():
    """A batch-1 graph that works across its batch axis (a reverse over axis 0: a no-op at batch 1) batches to the
    right shape but wrong values: the first batch is compared with one-at-a-time runs, and the runner falls back."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 64), tf.float32)])
    def mixes(x):
        return tf.reverse(x * 3.0, axis=[0]) + 1.0

    content = tf.lite.TFLiteConverter.from_concrete_functions([mixes.get_concrete_function()], mixes).convert()
    runner = LiteRTRunner(models.artifact(content, "mixes"))
    x = models.inputs(6, (64,), seed=7)
    out = runner.predict(x)
    np.testing.assert_allclose(out, x * 3.0 + 1.0, rtol=1e-6)
    assert not runner.batchable
