"""Structural checks of a TFLite flatbuffer that run before any C++ sees the bytes.

:func:`check` (size, ``TFL3`` identifier, root table inside the buffer; from :mod:`~pytest_tinyml.tflite.schema`,
which needs it to read anything) runs in microseconds. :func:`check_tensors` reads every table and checks
what the C++ runtimes take on trust. Passing both does not make a model safe (op options and tensor
contents are not verified); :mod:`pytest_tinyml.runtime.isolation` covers the rest by loading unknown
models in a child process first.

Example:
    >>> check(b"\\x00" * 64, name="zeros")
    Traceback (most recent call last):
    ...
    pytest_tinyml.errors.ModelLoadError: model 'zeros' is not a valid TFLite flatbuffer: ...
"""

from __future__ import annotations

from pytest_tinyml.tflite.schema import check, enum_names, guarded, invalid, read_model, schema

__all__ = ["check", "check_tensors", "guarded"]

# Bytes per element of the fixed-size tensor types (packed INT4/INT2, strings and resources are skipped).
_ITEM_SIZE = {
    "FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "FLOAT64": 8, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2,
    "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8, "BOOL": 1, "COMPLEX64": 8, "COMPLEX128": 16,
}
_MAX_ELEMENTS = 2**31 - 1


def check_tensors(content: bytes, *, name: str = "<bytes>", model=None) -> None:
    """Check what the C++ runtimes take on trust: every index (opcode, tensor, buffer) in range, shapes
    non-negative, and each constant tensor's data exactly as large as its shape and type say.

    TFLite Micro reads a constant tensor's data in place for as many elements as the shape declares, so a
    shape or buffer index that does not match the data makes it read past the model, which may crash the
    process or only later, depending on what lies behind it. Sparse tensors and packed types are skipped.

    Example:
        >>> check_tensors(artifact.content, name=artifact.name)  # doctest: +SKIP
    """
    if model is None:  # an already read root table (TFLiteArtifact.model) skips reading it again
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
                    raise invalid(name, f"{label} has a negative dimension in its shape {shape}")
                elements = 1
                for d in shape:
                    elements *= d
                if elements > _MAX_ELEMENTS:
                    raise invalid(name, f"{label} has an implausible shape {shape}")
                buffer_index = int(tensor.Buffer())
                if buffer_index >= n_buffers:
                    raise invalid(name, f"{label} points at buffer {buffer_index}, but there are {n_buffers}")
                data = model.Buffers(buffer_index).DataLength() if buffer_index else 0
                size = _ITEM_SIZE.get(type_names.get(tensor.Type(), ""))
                if data and size and tensor.Sparsity() is None and data != elements * size:
                    raise invalid(
                        name,
                        f"{label} declares shape {shape} of {type_names.get(tensor.Type())} "
                        f"({elements * size} bytes) but its buffer {buffer_index} holds {data} bytes",
                    )
            for k in range(graph.OperatorsLength()):
                operator = graph.Operators(k)
                if operator.OpcodeIndex() >= n_codes:
                    raise invalid(name, f"operator {k} of subgraph {s} uses opcode {operator.OpcodeIndex()} of {n_codes}")
                for kind, length, getter in (("input", operator.InputsLength(), operator.Inputs),
                                             ("output", operator.OutputsLength(), operator.Outputs)):
                    for j in range(length):
                        index = int(getter(j))
                        if not -1 <= index < n_tensors:
                            raise invalid(name, f"operator {k} of subgraph {s} has {kind} tensor {index} of {n_tensors}")
            for kind, length, getter in (("input", graph.InputsLength(), graph.Inputs),
                                         ("output", graph.OutputsLength(), graph.Outputs)):
                for j in range(length):
                    if not 0 <= int(getter(j)) < n_tensors:
                        raise invalid(name, f"subgraph {s} {kind} {j} is tensor {int(getter(j))} of {n_tensors}")
