"""Fuzz the model loader with malformed flatbuffers: every case ends in a typed error or a working model,
and the pytest process survives (the runtimes run unknown models in a child process first).

Cases: truncated files, header-only files, random bytes (with and without the ``TFL3`` identifier), bit
flips anywhere, and a valid model whose tensor-to-buffer indices, buffer data offsets/lengths or tensor
shapes are overwritten; the last also straight into the C++ loaders (in the child), past the Python checks. A corrupted model may still be valid (a flipped weight bit): then it must run and
give outputs of the right shape. Example counts are kept small: a case that passes the Python checks costs
a child process (~0.5 s).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import runtime_models as models
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pytest_tinyml import runtime
from pytest_tinyml.errors import ModelLoadError, RuntimeCrash
from pytest_tinyml.runtime import isolation
from pytest_tinyml.tflite import schema

pytestmark = pytest.mark.slow  # each case that passes the Python checks costs a child process

ENGINES = st.sampled_from(runtime.ENGINES)
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
SPECIAL_VALUES = [0, 1, 7, 255, 4096, 65536, 2**31 - 1, 2**32 - 1]


def base() -> bytes:
    return models.mlp_int8_bytes()


def exercise(data: bytes, engine: str) -> str:
    """Load ``data`` and run it on ``engine`` the way users do; return the outcome for Hypothesis stats."""
    try:
        artifact = runtime.load(data)  # pure-Python checks
        runner = runtime.runner(artifact, engine=engine)  # unknown bytes: vetted in a child first
        x = np.random.default_rng(0).uniform(0, 1, (2, *runner.inputs[0].shape[1:])).astype(np.float32)
        outputs = runner.predict(x)
    except ModelLoadError as error:
        assert "model" in str(error)  # names the model it is about
        return "ModelLoadError"
    except RuntimeCrash as error:
        assert "crashed" in str(error) or "hung" in str(error)
        return f"RuntimeCrash ({engine})"
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert all(o.shape[0] == 2 for o in outputs)
    return "still a valid model"


@settings(max_examples=25, **SETTINGS)
@given(fraction=st.floats(0.0, 0.999), engine=ENGINES)
def test_truncated_files(fraction, engine):
    data = base()
    event(exercise(data[: int(len(data) * fraction)], engine))


@settings(max_examples=10, **SETTINGS)
@given(size=st.sampled_from([0, 4, 8, 12, 16, 24, 32]), root=st.integers(0, 2**32 - 1), engine=ENGINES)
def test_header_only_files(size, root, engine):
    header = struct.pack("<I", root) + b"TFL3"
    event(exercise((header + base()[8:])[:size], engine))


@settings(max_examples=25, **SETTINGS)
@given(noise=st.binary(min_size=0, max_size=4096), identifier=st.booleans(), engine=ENGINES)
def test_random_bytes(noise, identifier, engine):
    data = bytearray(noise)
    if identifier and len(data) >= 8:
        data[4:8] = b"TFL3"
    event(exercise(bytes(data), engine))


@settings(max_examples=15, **SETTINGS)
@given(bits=st.lists(st.integers(0, 8 * 5000), min_size=1, max_size=16), engine=ENGINES)
def test_bit_flips(bits, engine):
    data = bytearray(base())
    for bit in bits:
        byte = bit // 8 % len(data)
        data[byte] ^= 1 << (bit % 8)
    event(exercise(bytes(data), engine))


def _fields(content: bytes) -> dict[str, list[int]]:
    """Byte positions of the fields that point at tensor data, by kind."""
    model = schema.read_model(content)
    graph = model.Subgraphs(0)
    fields: dict[str, list[int]] = {"tensor buffer index": [], "buffer data offset": [], "buffer data length": [],
                                    "shape dimension": []}
    for k in range(graph.TensorsLength()):
        tensor = graph.Tensors(k)
        if tensor._tab.Offset(8):
            fields["tensor buffer index"].append(tensor._tab.Pos + tensor._tab.Offset(8))
        if tensor._tab.Offset(4):
            start = tensor._tab.Vector(tensor._tab.Offset(4))
            fields["shape dimension"] += [start + 4 * j for j in range(tensor.ShapeLength())]
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer._tab.Offset(4):
            fields["buffer data offset"].append(buffer._tab.Pos + buffer._tab.Offset(4))
            fields["buffer data length"].append(buffer._tab.Vector(buffer._tab.Offset(4)) - 4)
    return fields


@st.composite
def corrupted_offsets(draw):
    content = base()
    fields = _fields(content)
    kind = draw(st.sampled_from(sorted(fields)))
    position = draw(st.sampled_from(fields[kind]))
    value = draw(st.sampled_from(SPECIAL_VALUES) | st.integers(0, 2**32 - 1))
    data = bytearray(content)
    struct.pack_into("<I", data, position, value)
    return kind, bytes(data)


@settings(max_examples=15, **SETTINGS)
@given(case=corrupted_offsets(), engine=ENGINES)
def test_valid_model_with_corrupted_tensor_data_offsets(case, engine):
    kind, data = case
    event(f"{kind}: {exercise(data, engine)}")


@settings(max_examples=12, **SETTINGS)
@given(case=corrupted_offsets(), engine=ENGINES)
@example(case=("tensor buffer index", None), engine="tflm")  # known to SIGSEGV TFLite Micro: always covered
def test_cpp_loaders_meet_corrupted_offsets_only_in_a_child(case, engine):
    """Past the Python checks, straight to the C++ loaders: whatever they do happens in the child."""
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    kind, data = case
    if data is None:
        corrupt = bytearray(base())
        struct.pack_into("<I", corrupt, _fields(base())["tensor buffer index"][0], 0x7FFFFFF0)
        data = bytes(corrupt)
    try:
        artifact = TFLiteArtifact.from_bytes(data, name="fuzzed")  # reads only the I/O tensors
        isolation.vet(artifact, engine)
        outcome = "loaded"
    except ModelLoadError:
        outcome = "ModelLoadError"
    except RuntimeCrash as error:
        # names the engine, and the model (by the name it had when these bytes were first vetted: memoized)
        assert str(error).startswith(engine) and "model '" in str(error)
        outcome = f"RuntimeCrash ({engine})"
    event(f"{kind}: {outcome}")
