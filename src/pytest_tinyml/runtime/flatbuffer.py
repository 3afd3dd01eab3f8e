"""Cheap structural checks of a TFLite flatbuffer, and a typed reader of its tables.

The C++ loaders of LiteRT and TFLite Micro trust the bytes they get: TFLite Micro does not run the flatbuffer
verifier at all, so a truncated or corrupted file can crash the whole process. :func:`check` rejects what
can be rejected in pure Python, before any C++ sees the bytes: wrong size, a missing ``TFL3`` identifier,
a root table or vtable that points outside the buffer. :func:`read_model` then parses the tables with the
generated schema module that ships with the ``tflite-micro`` package (the public TFLite schema), turning
any reader exception into :class:`~pytest_tinyml.errors.ModelLoadError`.

Passing :func:`check` does not make a model safe (tensor data offsets, shapes and op options are not
verified); :mod:`pytest_tinyml.runtime.isolation` covers the rest by loading unknown models in a child
process first.

Example:
    >>> check(b"short", name="m.tflite")
    Traceback (most recent call last):
    ...
    pytest_tinyml.errors.ModelLoadError: model 'm.tflite' is not a valid TFLite flatbuffer: ...
"""

from __future__ import annotations

import struct

from pytest_tinyml.errors import ModelLoadError

IDENTIFIER = b"TFL3"
# Root offset (4) + identifier (4) + the smallest vtable (4) and table (4) a Model can have.
MIN_SIZE = 16
# Flatbuffers address with signed 32-bit offsets; larger TFLite files keep their weights outside the
# flatbuffer (buffer offsets), which TFLite Micro does not support.
MAX_SIZE = 2**31 - 1

_FIX = "re-export it with pytest_tinyml.convert() (or tf.lite.TFLiteConverter) and check the file was copied whole"


def _fail(name: str, problem: str) -> ModelLoadError:
    return ModelLoadError(f"model {name!r} is not a valid TFLite flatbuffer: {problem}; {_FIX}")


def check(content: bytes, *, name: str = "<bytes>") -> None:
    """Raise :class:`ModelLoadError` unless ``content`` looks like a TFLite flatbuffer.

    Checks the size bounds, the ``TFL3`` file identifier at bytes 4..8, and that the root table and its
    vtable lie inside the buffer. Runs in microseconds and never touches C++.

    Example:
        >>> check(b"\\x00" * 64, name="zeros")
        Traceback (most recent call last):
        ...
        pytest_tinyml.errors.ModelLoadError: model 'zeros' is not a valid TFLite flatbuffer: ...
    """
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ModelLoadError(f"model {name!r}: expected bytes, got {type(content).__name__}")
    size = len(content)
    if size < MIN_SIZE:
        raise _fail(name, f"{size} bytes is too short (a model has at least {MIN_SIZE})")
    if size > MAX_SIZE:
        raise _fail(name, f"{size} bytes is more than a flatbuffer can address (2 GiB)")
    identifier = bytes(content[4:8])
    if identifier != IDENTIFIER:
        raise _fail(name, f"file identifier at bytes 4..8 is {identifier!r}, expected {IDENTIFIER!r}")
    (root,) = struct.unpack_from("<I", content, 0)
    if root < 8 or root + 4 > size:
        raise _fail(name, f"root table offset {root} lies outside the {size}-byte buffer")
    if root % 4:
        raise _fail(name, f"root table offset {root} is not 4-byte aligned")
    (vtable_delta,) = struct.unpack_from("<i", content, root)
    vtable = root - vtable_delta
    if vtable < 0 or vtable + 4 > size:
        raise _fail(name, f"root vtable offset {vtable} lies outside the {size}-byte buffer")
    vtable_size, table_size = struct.unpack_from("<HH", content, vtable)
    if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > size:
        raise _fail(name, f"root vtable of {vtable_size} bytes at offset {vtable} is malformed")
    if root + table_size > size:
        raise _fail(name, f"root table of {table_size} bytes at offset {root} runs past the end")


def schema():
    """The generated TFLite schema module (shipped with the ``tflite-micro`` package)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def enum_names(enum_class) -> dict[int, str]:
    """Map the values of a generated flatbuffers enum class to their names."""
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_") and isinstance(value, int)}


def read_model(content: bytes, *, name: str = "<bytes>"):
    """Check ``content`` and return its root ``Model`` table (lazy reader of the generated schema).

    Example:
        >>> model = read_model(artifact.content, name=artifact.name)  # doctest: +SKIP
        >>> model.SubgraphsLength()  # doctest: +SKIP
        1
    """
    check(content, name=name)
    fb = schema()
    try:
        model = fb.Model.GetRootAs(bytes(content), 0)
        if model.SubgraphsLength() < 1:
            raise _fail(name, "it has no subgraph")
        model.Version()
    except ModelLoadError:
        raise
    except Exception as exc:  # the generated reader raises struct.error, IndexError, TypeError, ...
        raise _fail(name, f"its tables cannot be read ({type(exc).__name__}: {exc})") from None
    return model


def guarded(name: str, what: str):
    """Context manager turning reader exceptions on malformed tables into :class:`ModelLoadError`."""
    return _Guard(name, what)


class _Guard:
    def __init__(self, name: str, what: str) -> None:
        self.name, self.what = name, what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, ModelLoadError) or not isinstance(exc, Exception):
            return False
        raise _fail(self.name, f"{self.what} cannot be read ({exc_type.__name__}: {exc})") from None


def io_counts(content: bytes, *, name: str = "<bytes>") -> tuple[int, int]:
    """Number of inputs and outputs of the main subgraph.

    Example:
        >>> io_counts(artifact.content)  # doctest: +SKIP
        (1, 1)
    """
    model = read_model(content, name=name)
    with guarded(name, "the main subgraph"):
        graph = model.Subgraphs(0)
        return int(graph.InputsLength()), int(graph.OutputsLength())


# Bytes per element of the fixed-size tensor types (packed INT4/INT2, strings and resources are skipped).
_ITEM_SIZE = {
    "FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "FLOAT64": 8, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2,
    "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8, "BOOL": 1, "COMPLEX64": 8, "COMPLEX128": 16,
}
_MAX_ELEMENTS = 2**31 - 1


def check_tensors(content: bytes, *, name: str = "<bytes>") -> None:
    """Check what the C++ runtimes take on trust: every index (opcode, tensor, buffer) in range, shapes
    non-negative, and each constant tensor's data exactly as large as its shape and type say.

    TFLite Micro reads a constant tensor's data in place for as many elements as the shape declares, so a
    shape or buffer index that does not match the data makes it read past the model, which may crash the
    process or only later, depending on what lies behind it. Sparse tensors and packed types are skipped.

    Example:
        >>> check_tensors(artifact.content, name=artifact.name)  # doctest: +SKIP
    """
    model = read_model(content, name=name)
    fb = schema()
    type_names = enum_names(fb.TensorType)
    with guarded(name, "the tensors"):
        n_buffers = model.BuffersLength()
        n_codes = model.OperatorCodesLength()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            n_tensors = graph.TensorsLength()
            for k in range(n_tensors):
                tensor = graph.Tensors(k)
                label = f"tensor {k} ({(tensor.Name() or b'?').decode('utf-8', 'replace')}) of subgraph {s}"
                shape = [int(tensor.Shape(j)) for j in range(tensor.ShapeLength())]
                if any(d < 0 for d in shape):
                    raise _fail(name, f"{label} has a negative dimension in its shape {shape}")
                elements = 1
                for d in shape:
                    elements *= d
                if elements > _MAX_ELEMENTS:
                    raise _fail(name, f"{label} has an implausible shape {shape}")
                buffer_index = int(tensor.Buffer())
                if buffer_index >= n_buffers:
                    raise _fail(name, f"{label} points at buffer {buffer_index}, but there are {n_buffers}")
                data = model.Buffers(buffer_index).DataLength() if buffer_index else 0
                size = _ITEM_SIZE.get(type_names.get(tensor.Type(), ""))
                if data and size and tensor.Sparsity() is None and data != elements * size:
                    raise _fail(
                        name,
                        f"{label} declares shape {shape} of {type_names.get(tensor.Type())} "
                        f"({elements * size} bytes) but its buffer {buffer_index} holds {data} bytes",
                    )
            for k in range(graph.OperatorsLength()):
                operator = graph.Operators(k)
                if operator.OpcodeIndex() >= n_codes:
                    raise _fail(name, f"operator {k} of subgraph {s} uses opcode {operator.OpcodeIndex()} of {n_codes}")
                for kind, length, getter in (("input", operator.InputsLength(), operator.Inputs),
                                             ("output", operator.OutputsLength(), operator.Outputs)):
                    for j in range(length):
                        index = int(getter(j))
                        if not -1 <= index < n_tensors:
                            raise _fail(name, f"operator {k} of subgraph {s} has {kind} tensor {index} of {n_tensors}")
            for kind, length, getter in (("input", graph.InputsLength(), graph.Inputs),
                                         ("output", graph.OutputsLength(), graph.Outputs)):
                for j in range(length):
                    if not 0 <= int(getter(j)) < n_tensors:
                        raise _fail(name, f"subgraph {s} {kind} {j} is tensor {int(getter(j))} of {n_tensors}")
