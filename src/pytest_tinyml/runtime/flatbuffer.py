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
    pytest_tinyml.errors.ModelLoadError: model 'm.tflite' is not a TFLite flatbuffer: ...
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
    return ModelLoadError(f"model {name!r} is not a TFLite flatbuffer: {problem}; {_FIX}")


def check(content: bytes, *, name: str = "<bytes>") -> None:
    """Raise :class:`ModelLoadError` unless ``content`` looks like a TFLite flatbuffer.

    Checks the size bounds, the ``TFL3`` file identifier at bytes 4..8, and that the root table and its
    vtable lie inside the buffer. Runs in microseconds and never touches C++.

    Example:
        >>> check(b"\\x00" * 64, name="zeros")
        Traceback (most recent call last):
        ...
        pytest_tinyml.errors.ModelLoadError: model 'zeros' is not a TFLite flatbuffer: ...
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
