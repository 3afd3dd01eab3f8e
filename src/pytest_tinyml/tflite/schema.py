"""The one reader of TFLite flatbuffers: header check, model tables, tensors, operators, I/O, enum names.

Everything that needs to know what is inside a ``.tflite`` file asks this module; nothing else parses the
bytes. The C++ loaders of LiteRT and TFLite Micro trust the bytes they get (TFLite Micro does not run the
flatbuffer verifier at all, so a truncated or corrupted file can crash the whole process). :func:`check`
rejects what can be rejected in pure Python, before any C++ sees the bytes: wrong size, a missing ``TFL3``
identifier, a root table or vtable that points outside the buffer. :func:`read_model` then parses the
tables with the generated schema module that ships with the ``tflite-micro`` package (the public TFLite
schema), turning any reader exception into :class:`~pytest_tinyml.errors.ModelLoadError`.
:func:`read_io` and :func:`read_graph` give the I/O tensors and the operators as plain Python values.

Deeper structural checks (indices, constant data sizes) are in :mod:`pytest_tinyml.tflite.checks`;
:mod:`pytest_tinyml.runtime.isolation` covers the rest by loading unknown models in a child process first.

Example:
    >>> check(b"short", name="m.tflite")
    Traceback (most recent call last):
    ...
    pytest_tinyml.errors.ModelLoadError: model 'm.tflite' is not a valid TFLite flatbuffer: ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pytest_tinyml.errors import ModelLoadError
from pytest_tinyml.tflite.quant import TensorQuant

IDENTIFIER = b"TFL3"
# Root offset (4) + identifier (4) + the smallest vtable (4) and table (4) a Model can have.
MIN_SIZE = 16
# Flatbuffers address with signed 32-bit offsets; larger TFLite files keep their weights outside the
# flatbuffer (buffer offsets), which TFLite Micro does not support.
MAX_SIZE = 2**31 - 1

_FIX = "re-export it with pytest_tinyml.convert() (or tf.lite.TFLiteConverter) and check the file was copied whole"


def invalid(name: str, problem: str) -> ModelLoadError:
    """The ``ModelLoadError`` for a model whose bytes are not a valid flatbuffer, naming it and the fix."""
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
        raise invalid(name, f"{size} bytes is too short (a model has at least {MIN_SIZE})")
    if size > MAX_SIZE:
        raise invalid(name, f"{size} bytes is more than a flatbuffer can address (2 GiB)")
    identifier = bytes(content[4:8])
    if identifier != IDENTIFIER:
        raise invalid(
            name,
            f"file identifier at bytes 4..8 is {identifier!r}, expected {IDENTIFIER!r} (a .keras / .h5 / "
            "SavedModel file? convert it with pytest_tinyml.convert first)",
        )
    (root,) = struct.unpack_from("<I", content, 0)
    if root < 8 or root + 4 > size:
        raise invalid(name, f"root table offset {root} lies outside the {size}-byte buffer")
    if root % 4:
        raise invalid(name, f"root table offset {root} is not 4-byte aligned")
    (vtable_delta,) = struct.unpack_from("<i", content, root)
    vtable = root - vtable_delta
    if vtable < 0 or vtable + 4 > size:
        raise invalid(name, f"root vtable offset {vtable} lies outside the {size}-byte buffer")
    vtable_size, table_size = struct.unpack_from("<HH", content, vtable)
    if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > size:
        raise invalid(name, f"root vtable of {vtable_size} bytes at offset {vtable} is malformed")
    if root + table_size > size:
        raise invalid(name, f"root table of {table_size} bytes at offset {root} runs past the end")


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
            raise invalid(name, "it has no subgraph")
        model.Version()
    except ModelLoadError:
        raise
    except Exception as exc:  # the generated reader raises struct.error, IndexError, TypeError, ...
        raise invalid(name, f"its tables cannot be read ({type(exc).__name__}: {exc})") from None
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
        raise invalid(self.name, f"{self.what} cannot be read ({exc_type.__name__}: {exc})") from None


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




# Guards against garbage vectors whose length field is huge (a loop over it would never end).
_MAX_IO = 4096
_MAX_RANK = 64
_MAX_CHANNELS = 65536
_MAX_BUFFERS = 10_000_000


def dtype_names() -> dict[int, str]:
    """Map TFLite ``TensorType`` values to numpy-style dtype names (``9`` -> ``'int8'``)."""
    return {value: key.lower() for value, key in enum_names(schema().TensorType).items()}


def check_buffers(model, size: int, *, name: str = "<bytes>") -> None:
    """Every weight buffer must lie inside the bytes: a truncated file loses its tail, where they live."""
    with guarded(name, "the buffers"):
        n = model.BuffersLength()
        if n > _MAX_BUFFERS:
            raise invalid(name, f"implausible buffer count {n}")
        for i in range(n):
            buffer = model.Buffers(i)
            if buffer.DataLength() > 0:
                buffer.DataAsNumpy()  # a view; numpy refuses one that runs past the end
            offset, length = int(buffer.Offset()), int(buffer.Size())
            if offset > 1 and offset + length > size:  # weights stored after the flatbuffer (large models)
                raise invalid(name, f"buffer {i} ends at byte {offset + length}, past the end ({size})")


def read_io(content: bytes, *, name: str = "<bytes>", model=None) -> tuple[list[TensorQuant], list[TensorQuant]]:
    """The inputs and outputs of the first subgraph as ``TensorQuant`` values, parsed without native code.

    ``model``: the already read root table (from :func:`read_model`), to skip reading it again.

    Example:
        >>> inputs, outputs = read_io(open("m.tflite", "rb").read())     # doctest: +SKIP
        >>> inputs[0].dtype                                               # doctest: +SKIP
        'int8'
    """
    if model is None:
        model = read_model(content, name=name)
    dtypes = dtype_names()
    check_buffers(model, len(content), name=name)
    with guarded(name, "the input and output tensors"):
        graph = model.Subgraphs(0)
        n_tensors = graph.TensorsLength()

        def tensor(index: int) -> TensorQuant:
            if not 0 <= index < n_tensors:
                raise invalid(name, f"I/O tensor index {index} out of range ({n_tensors} tensors)")
            t = graph.Tensors(index)
            rank = t.ShapeLength()
            if rank > _MAX_RANK:
                raise invalid(name, f"I/O tensor {index} has rank {rank}")
            shape = tuple(int(t.Shape(i)) for i in range(rank))
            q = t.Quantization()
            scales: tuple = ()
            zero_points: tuple = ()
            if q is not None and 0 < q.ScaleLength() <= _MAX_CHANNELS:
                scales = tuple(float(q.Scale(i)) for i in range(q.ScaleLength()))
                zero_points = tuple(int(q.ZeroPoint(i)) for i in range(min(q.ZeroPointLength(), len(scales))))
                zero_points += (0,) * (len(scales) - len(zero_points))
            raw_name = t.Name()
            per_channel = len(scales) > 1
            return TensorQuant(
                name=raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{index}",
                shape=shape,
                dtype=dtypes.get(t.Type(), f"type{t.Type()}"),
                scale=scales[0] if scales else 0.0,
                zero_point=zero_points[0] if scales else 0,
                scales=scales if per_channel else (),
                zero_points=zero_points if per_channel else (),
                quantized_dimension=int(q.QuantizedDimension()) if per_channel else 0,
            )

        counts = (graph.InputsLength(), graph.OutputsLength())
        if any(c > _MAX_IO for c in counts):
            raise invalid(name, f"implausible I/O counts {counts}")
        inputs = [tensor(int(graph.Inputs(i))) for i in range(counts[0])]
        outputs = [tensor(int(graph.Outputs(i))) for i in range(counts[1])]
    return inputs, outputs


@dataclass(frozen=True)
class Operator:
    """One operator as stored: its builtin name (or custom code), its tensors and the constants it reads."""

    index: int
    subgraph: int
    op: str  # builtin name (FULLY_CONNECTED) or custom code
    custom: bool
    inputs: list  # [(shape, dtype)] of the input tensors; None for an omitted optional input
    outputs: list
    const_buffers: frozenset  # indices of the non-empty buffers of constant input tensors
    options: object = None  # the builtin options table (e.g. BatchMatMulOptions), or None


@dataclass(frozen=True)
class Graph:
    """All operators of all subgraphs, the size of every buffer and which buffers hold metadata."""

    operators: list
    buffer_sizes: list
    metadata_buffers: frozenset


def _builtin_options(graph_op, fb, option_names: dict):
    table = graph_op.BuiltinOptions()
    if table is None:
        return None
    klass = getattr(fb, option_names.get(graph_op.BuiltinOptionsType(), ""), None)
    if klass is None or not hasattr(klass, "Init"):
        return None
    options = klass()
    options.Init(table.Bytes, table.Pos)
    return options


def read_graph(content: bytes, *, name: str = "<bytes>", model=None) -> Graph:
    """Operators, buffer sizes and metadata buffers of a model (pure Python).

    Example:
        >>> [op.op for op in read_graph(artifact.content).operators]      # doctest: +SKIP
        ['FULLY_CONNECTED', 'FULLY_CONNECTED', 'SOFTMAX']
    """
    fb = schema()
    if model is None:
        model = read_model(content, name=name)
    op_names = enum_names(fb.BuiltinOperator)
    option_names = enum_names(fb.BuiltinOptions)
    dtypes = dtype_names()
    with guarded(name, "the operator codes"):
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = op_names.get(builtin) == "CUSTOM"
            label = (code.CustomCode() or b"?").decode("utf-8", "replace") if custom else op_names.get(builtin, f"BUILTIN_{builtin}")
            codes.append((label, custom))
    with guarded(name, "the buffers"):
        buffer_sizes = []
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            size = buffer.DataLength() or (buffer.Size() if buffer.Offset() > 1 else 0)
            buffer_sizes.append(int(size))
        metadata_buffers = frozenset(int(model.Metadata(i).Buffer()) for i in range(model.MetadataLength()))
    operators = []
    with guarded(name, "the subgraphs"):
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            n_tensors = graph.TensorsLength()

            def tensor(index: int, graph=graph, n_tensors=n_tensors):
                if index < 0:
                    return None, None  # an omitted optional input
                if index >= n_tensors:
                    raise ModelLoadError(f"model {name!r}: an operator uses tensor {index} of {n_tensors}; the file is corrupted")
                t = graph.Tensors(index)
                shape = tuple(int(t.Shape(k)) for k in range(t.ShapeLength()))
                buffer = int(t.Buffer())
                const = buffer if 0 < buffer < len(buffer_sizes) and buffer_sizes[buffer] > 0 else None
                return (shape, dtypes.get(t.Type(), str(t.Type()))), const

            for k in range(graph.OperatorsLength()):
                graph_op = graph.Operators(k)
                index = graph_op.OpcodeIndex()
                if index >= len(codes):
                    raise ModelLoadError(f"model {name!r}: operator {k} uses opcode {index} of {len(codes)}; the file is corrupted")
                label, custom = codes[index]
                inputs, consts = [], set()
                for j in range(graph_op.InputsLength()):
                    info, const = tensor(int(graph_op.Inputs(j)))
                    inputs.append(info)
                    if const is not None:
                        consts.add(const)
                outputs = [tensor(int(graph_op.Outputs(j)))[0] for j in range(graph_op.OutputsLength())]
                options = _builtin_options(graph_op, fb, option_names)
                operators.append(Operator(k, s, label, custom, inputs, outputs, frozenset(consts), options))
    return Graph(operators=operators, buffer_sizes=buffer_sizes, metadata_buffers=metadata_buffers)


def op_names(content: bytes, *, name: str = "<bytes>", model=None) -> list[str]:
    """The model's operator names in first-use order, each once.

    Example:
        >>> op_names(artifact.content)      # doctest: +SKIP
        ['FULLY_CONNECTED', 'SOFTMAX']
    """
    return list(dict.fromkeys(op.op for op in read_graph(content, name=name, model=model).operators))
