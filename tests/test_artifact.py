"""TFLiteArtifact and TensorQuant: parsing I/O quantization from real flatbuffers, refusing broken ones.

The flatbuffers here are built with the TFLite schema's own object API (the one LiteRT ships), so these
tests need no TensorFlow; test_convert.py checks artifacts of real conversions against LiteRT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_tinyml.errors import ModelLoadError
from pytest_tinyml.tflite.artifact import TFLiteArtifact
from pytest_tinyml.tflite.quant import TensorQuant
from pytest_tinyml.tflite.schema import read_io


def flatbuffer(in_scale=0.5, in_zero=-1, weights=b"") -> bytes:
    """A tiny real TFLite flatbuffer: int8 input [1, 4] (scale, zero point), float32 output [1, 2]."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name, shape, dtype, scale=None, zero=None, buffer=0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, dtype, buffer
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = [scale], [zero]
            t.quantization = q
        return t

    graph = schema.SubGraphT()
    graph.tensors = [
        tensor("input", [1, 4], schema.TensorType.INT8, in_scale, in_zero),
        tensor("output", [1, 2], schema.TensorType.FLOAT32),
        tensor("weights", [len(weights)], schema.TensorType.UINT8, buffer=1),
    ]
    graph.inputs, graph.outputs, graph.operators = [0], [1], []
    data = schema.BufferT()
    data.data = list(weights)
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [graph], [schema.BufferT(), data]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_io_quantization_is_read_from_the_flatbuffer():
    art = TFLiteArtifact.from_bytes(flatbuffer(0.25, -3), name="tiny", recipe="int8")
    assert art.inputs == [TensorQuant("input", (1, 4), "int8", 0.25, -3)]
    assert art.outputs == [TensorQuant("output", (1, 2), "float32", 0.0, 0)]
    assert art.inputs[0].quantized and not art.outputs[0].quantized
    assert art.name == "tiny" and art.recipe == "int8"


def test_identity_size_and_equality_follow_the_bytes():
    content = flatbuffer()
    a = TFLiteArtifact.from_bytes(content, name="a")
    b = TFLiteArtifact.from_bytes(content, name="b", recipe="float32")
    c = TFLiteArtifact.from_bytes(flatbuffer(0.125))
    import hashlib

    assert a.sha256 == hashlib.sha256(content).hexdigest()
    assert a.size == len(content) and a.kb == pytest.approx(len(content) / 1024)
    assert a == b and hash(a) == hash(b) and len({a, b, c}) == 2
    assert a != c


def test_save_from_path_and_metadata_round_trip(tmp_path):
    art = TFLiteArtifact.from_bytes(flatbuffer(), name="mlp", recipe="int8", params={"target": "tflm"},
                                    source_hash="ab" * 32, versions={"tensorflow": "2.21.0"})
    path = art.save(tmp_path / "deep" / "mlp.tflite")
    assert path.read_bytes() == art.content
    again = TFLiteArtifact.from_path(path)
    assert again == art and again.name == "mlp" and again.inputs == art.inputs
    meta = json.loads(json.dumps(art.metadata()))  # JSON-able
    assert meta["sha256"] == art.sha256 and meta["size"] == art.size and meta["params"] == {"target": "tflm"}
    assert meta["inputs"][0] == {"name": "input", "shape": [1, 4], "dtype": "int8", "scale": 0.5, "zero_point": -1}
    rebuilt = TFLiteArtifact.from_metadata(art.content, meta)
    assert rebuilt == art and rebuilt.versions == art.versions and rebuilt.source_hash == art.source_hash


def test_metadata_sha_mismatch_is_refused():
    art = TFLiteArtifact.from_bytes(flatbuffer())
    meta = art.metadata()
    with pytest.raises(ModelLoadError, match="sha256"):
        TFLiteArtifact.from_metadata(flatbuffer(0.125), meta)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b"", "too short"),
        (lambda b: b[:12], "too short"),
        (lambda b: b[:4] + b"ABCD" + b[8:], "identifier .*'ABCD'.*TFL3.*convert it"),
        (lambda b: b"PK\x03\x04" + b"\0" * 60, "identifier .*TFL3.*convert it"),  # a .keras zip
        (lambda b: b[:40], "cannot be read|outside|past the end"),
        (lambda b: b[: len(b) - 700], "cannot be read|past the end"),  # the weights at the tail are gone
    ],
    ids=["empty", "tiny", "wrong-identifier", "zip", "truncated-tables", "truncated-weights"],
)
def test_broken_bytes_raise_model_load_error(mangle, message):
    content = flatbuffer(weights=bytes(range(256)) * 4)
    with pytest.raises(ModelLoadError, match=message) as info:
        TFLiteArtifact.from_bytes(mangle(content), name="broken")
    assert "'broken'" in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="nope.tflite"):
        TFLiteArtifact.from_path(tmp_path / "nope.tflite")


def test_read_io_matches_from_bytes():
    content = flatbuffer(0.1, 5)
    assert read_io(content)[0] == TFLiteArtifact.from_bytes(content).inputs


def test_tensor_quant_quantize_dequantize():
    q = TensorQuant("x", (1, 3), "int8", 0.5, -1)
    assert q.quantize([0.0, 1.0, 1000.0]).tolist() == [-1, 1, 127]
    assert q.quantize([-1000.0]).tolist() == [-128]
    assert q.dequantize(np.array([-1, 1, 127], dtype=np.int8)).tolist() == [0.0, 1.0, 64.0]
    f = TensorQuant("y", (1, 2), "float32")
    assert f.quantize([0.5, 2.0]).dtype == np.float32 and f.dequantize([1, 2]).tolist() == [1.0, 2.0]
    u = TensorQuant("u", (1, 1), "int16", 1 / 32768, 0)
    assert u.quantize([1.0]).tolist() == [32767]
