"""Analyzer: ops, MACs, flash, I/O quantization, TFLite Micro compatibility from the runtime, C exports."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
import runtime_models as models

from pytest_tinyml.analyze import analyze, export_c_array, op_resolver_snippet
from pytest_tinyml.errors import ConfigError, ModelLoadError
from pytest_tinyml.runtime import microops
from pytest_tinyml.runtime.litert import LiteRTRunner
from pytest_tinyml.tflite import schema


@pytest.fixture(scope="module")
def topk():
    return models.artifact(models.topk_float_bytes(), "topk")


def test_mlp_ops_macs_and_flash(mlp_int8):
    info = analyze(mlp_int8)
    assert info.op_counts == {"FULLY_CONNECTED": 2, "SOFTMAX": 1}
    assert [op.macs for op in info.ops] == [64 * 32, 32 * 10, 0]
    assert info.macs_total == 64 * 32 + 32 * 10
    # int8 weights plus int32 biases, nothing else is constant in this graph
    assert info.flash.weights == 64 * 32 + 32 * 10 + 4 * (32 + 10)
    assert info.flash.weights + info.flash.graph + info.flash.metadata == info.flash.total == mlp_int8.size
    assert info.flash.graph > 0 and info.flash.metadata > 0  # the converter's runtime-version metadata
    assert info.tflm.compatible and info.tflm.missing_ops == [] and info.tflm.load_error is None


def test_cnn_macs_per_op(cnn_int8):
    info = analyze(cnn_int8, tflm=False)
    by_op = info.macs_by_op
    # 8x8x1 -conv 3x3x4-> 6x6x4 -depthwise 3x3-> 4x4x4 -avgpool 2-> 2x2x4 -flatten-> 16 -dense-> 10
    assert by_op["CONV_2D"] == 6 * 6 * 4 * (3 * 3 * 1)
    assert by_op["DEPTHWISE_CONV_2D"] == 4 * 4 * 4 * (3 * 3)
    assert by_op["FULLY_CONNECTED"] == 16 * 10
    assert info.macs_total == sum(by_op.values()) == 1296 + 576 + 160
    assert info.tflm is None
    per_op = {op.op: op.weight_bytes for op in info.ops}
    assert per_op["DEPTHWISE_CONV_2D"] == 3 * 3 * 4 + 4 * 4  # int8 kernel + int32 bias
    assert per_op["FULLY_CONNECTED"] >= 16 * 10
    # the converter stores identical constants once (the two all-zero conv biases): flash counts them once
    kernels = 3 * 3 * 4 + 3 * 3 * 4 + 16 * 10
    assert kernels < info.flash.weights < sum(per_op.values())


def test_io_quantization_matches_the_interpreter(cnn_int8):
    info = analyze(cnn_int8, tflm=False)
    runner = LiteRTRunner(cnn_int8)
    for ours, theirs in ((info.inputs[0], runner.inputs[0]), (info.outputs[0], runner.outputs[0])):
        assert ours.dtype == "int8" and ours.quantized
        assert ours == theirs  # one TensorQuant type: the flatbuffer's and the interpreter's view agree exactly


def test_tflm_incompatibility_comes_from_the_runtime(topk):
    info = analyze(topk)
    assert not info.tflm.compatible
    assert info.tflm.missing_ops == ["TOPK_V2"]
    assert "topk" in info.tflm.load_error
    assert "lacks TOPK_V2" in info.summary()
    assert LiteRTRunner(topk).predict(models.inputs(2, (16,))).shape == (2, 3)  # LiteRT has the kernel


@pytest.mark.slow
def test_resolver_method_table_agrees_with_the_runtime_registry():
    registered = set(microops.registered_builtins())
    assert {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"} <= registered
    assert "TOPK_V2" not in registered
    assert registered == set(microops.RESOLVER_BUILTINS)
    assert all(microops.resolver_method(op) for op in registered)


def test_analyze_rejects_a_corrupted_operator(mlp_int8):
    graph = schema.read_model(mlp_int8.content).Subgraphs(0)
    # opcode_index is only stored when it is not 0 (flatbuffers omits defaults): take such an operator
    operator = next(op for op in map(graph.Operators, range(graph.OperatorsLength())) if op._tab.Offset(4))
    data = bytearray(mlp_int8.content)
    struct.pack_into("<I", data, operator._tab.Pos + operator._tab.Offset(4), 999)
    with pytest.raises(ModelLoadError, match="'bad'.*opcode 999"):
        analyze(models.artifact(bytes(data), "bad"), tflm=False)


def test_op_resolver_snippet_has_exactly_the_needed_calls(mlp_int8, cnn_int8):
    snippet = op_resolver_snippet(mlp_int8)
    assert "tflite::MicroMutableOpResolver<2>" in snippet
    assert re.findall(r"resolver\.(Add\w+)\(\)", snippet) == ["AddFullyConnected", "AddSoftmax"]
    cnn = op_resolver_snippet(cnn_int8)
    calls = re.findall(r"resolver\.(Add\w+)\(\)", cnn)
    assert f"MicroMutableOpResolver<{len(calls)}>" in cnn
    assert {"AddConv2D", "AddDepthwiseConv2D", "AddAveragePool2D", "AddFullyConnected"} <= set(calls)
    assert len(calls) == len(set(calls)) == len(analyze(cnn_int8, tflm=False).op_counts)


def test_op_resolver_snippet_refuses_ops_tflm_cannot_register(topk):
    with pytest.raises(ModelLoadError, match="topk.*TOPK_V2"):
        op_resolver_snippet(topk)


def _hex_bytes(cc_text: str) -> bytes:
    body = cc_text.split("{", 1)[1].split("}", 1)[0]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def test_export_c_array_round_trips_and_is_aligned_const(mlp_int8, tmp_path):
    cc, h = export_c_array(mlp_int8, tmp_path / "main")
    assert (cc.name, h.name) == ("model_data.cc", "model_data.h")
    text = cc.read_text()
    assert "alignas(16) const unsigned char g_model[] = {" in text
    assert f"const unsigned int g_model_len = {mlp_int8.size};" in text
    assert _hex_bytes(text) == mlp_int8.content
    header = h.read_text()
    assert "extern const unsigned char g_model[];" in header and "extern const unsigned int g_model_len;" in header
    # unchanged model: files are not rewritten (no firmware rebuild)
    before = cc.stat().st_mtime_ns
    export_c_array(mlp_int8, tmp_path / "main")
    assert cc.stat().st_mtime_ns == before


def test_export_c_array_names_the_array(mlp_int8, tmp_path):
    cc, h = export_c_array(mlp_int8, tmp_path, name="g_fan_model")
    assert "alignas(16) const unsigned char g_fan_model[] = {" in cc.read_text()
    assert f"const unsigned int g_fan_model_len = {mlp_int8.size};" in cc.read_text()
    assert "extern const unsigned char g_fan_model[];" in h.read_text()
    assert "g_model" not in cc.read_text().replace("g_fan_model", "")


def test_exported_files_follow_the_umask(mlp_int8, tmp_path):
    old = os.umask(0o022)
    try:
        cc, h = export_c_array(mlp_int8, tmp_path / "a")
        assert (cc.stat().st_mode & 0o777, h.stat().st_mode & 0o777) == (0o644, 0o644)
        os.umask(0o077)
        cc, _ = export_c_array(mlp_int8, tmp_path / "b")
        assert cc.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_exported_array_compiles_links_and_is_16_byte_aligned(mlp_int8, tmp_path):
    cc, _ = export_c_array(mlp_int8, tmp_path, name="g_test_model")
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main() {\n"
        "  unsigned long sum = 0;\n"
        "  for (unsigned int i = 0; i < g_test_model_len; ++i) sum = sum * 31 + g_test_model[i];\n"
        '  std::printf("%u %lu %d\\n", g_test_model_len, sum,\n'
        "              static_cast<int>(reinterpret_cast<std::uintptr_t>(g_test_model) % 16));\n"
        "}\n"
    )
    binary = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(binary), str(main), str(cc)], check=True)
    length, checksum, misalignment = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.split()
    expected = 0
    for byte in mlp_int8.content:
        expected = (expected * 31 + byte) % 2**64
    assert (int(length), int(checksum), int(misalignment)) == (mlp_int8.size, expected, 0)


def test_export_rejects_bad_identifiers(mlp_int8, tmp_path):
    with pytest.raises(ConfigError, match="not a C identifier"):
        export_c_array(mlp_int8, tmp_path, name="g-model")


def test_analyze_accepts_a_path(mlp_int8, tmp_path):
    path = tmp_path / "mlp.tflite"
    path.write_bytes(mlp_int8.content)
    info = analyze(path, tflm=False)
    assert info.name == "mlp" and info.sha256 == mlp_int8.sha256
    assert np.isclose(info.flash.total_kb, mlp_int8.size / 1024)
