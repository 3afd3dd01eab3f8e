"""The sim board's engine: real TFLite Micro kernels (the ``tflite-micro`` package) behind ENGINE_RPC.md.

``tinyml-host`` (the firmware's portable core, built for the host) forwards its engine calls -- load a model,
invoke, read outputs, arena -- to this process. Arena figures are the host's (64-bit pointers): an estimate
of a 32-bit device's arena, labelled as such. Latency is measured on the host around ``Invoke()``.

Run as ``python -m pytest_tinyml.board.sim_engine``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
import time

# Large enough for any model the sim accepts; only used to learn how much arena a model needs.
_PROBE_ARENA = 64 * 1024 * 1024
_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")
_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def _capture_c_output():
    """Capture what C code writes to fds 1 and 2 (TFLM's allocation report and errors) into ``box[0]``."""
    box = [b""]
    _libc.fflush(None)
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield box
        finally:
            _libc.fflush(None)
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            box[0] = sink.read()


class EngineFailure(Exception):
    """An engine call failed; ``code`` is the short error name the firmware reports (e.g. ``arena``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TflmEngine:
    """One loaded model in the TFLite Micro interpreter.

    Example:
        >>> engine = TflmEngine(arena_size=64 * 1024)
        >>> engine.load(open("model.tflite", "rb").read())  # doctest: +SKIP
    """

    def __init__(self, arena_size: int, delay_us: int = 0) -> None:
        self.arena_size = arena_size
        self.delay_us = delay_us
        self.interpreter = None
        self.arena_used = 0
        self.last_invoke_us = 0.0

    def _interpreter(self, model: bytes, arena: int):
        from tflite_micro.python.tflite_micro import runtime

        if len(model) < 16 or model[4:8] != b"TFL3":
            return None, ValueError("not a TFLite flatbuffer (no TFL3 identifier)"), b""
        with _capture_c_output() as log:
            try:
                interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
            except Exception as exc:  # RuntimeError from TFLM, struct.error/IndexError from a bad flatbuffer
                interp, error = None, exc
            else:
                error = None
        return interp, error, log[0]

    def arena_needed(self, model: bytes) -> int | None:
        """Bytes of arena the model needs, from TFLM's recording allocator with a roomy arena."""
        interp, _, _ = self._interpreter(model, _PROBE_ARENA)
        return None if interp is None else self._allocations(interp)

    def _allocations(self, interp) -> int:
        with _capture_c_output() as log:
            interp.print_allocations()
        match = _TOTAL.search(log[0])
        return int(match.group(1)) if match else 0

    def load(self, model: bytes) -> int:
        """Load ``model`` into an arena of ``arena_size`` bytes; return the arena bytes it uses."""
        self.interpreter = None
        interp, error, log = self._interpreter(model, self.arena_size)
        if interp is None:
            text = log.decode(errors="replace").strip().splitlines()
            needed = self.arena_needed(model) if b"allocate" in log or "allocate" in str(error) else None
            if needed is not None and needed > self.arena_size:
                raise EngineFailure("arena", f"arena too small: model needs {needed} bytes, arena has {self.arena_size}")
            detail = text[-1] if text else str(error)
            raise EngineFailure("model", f"model rejected by TFLite Micro: {detail}")
        self.interpreter = interp
        self.arena_used = self._allocations(interp)
        return self.arena_used

    def input_details(self) -> dict:
        return self._require().get_input_details(0)

    def output_details(self) -> dict:
        return self._require().get_output_details(0)

    def _require(self):
        if self.interpreter is None:
            raise EngineFailure("state", "no model loaded")
        return self.interpreter

    def invoke(self, data: bytes) -> bytes:
        """Run one inference on the raw input bytes; return the raw output bytes. Times ``Invoke()`` only."""
        import numpy as np

        interp = self._require()
        details = interp.get_input_details(0)
        dtype, shape = np.dtype(details["dtype"]), tuple(int(d) for d in details["shape"])
        needed = int(np.prod(shape)) * dtype.itemsize
        if len(data) != needed:
            raise EngineFailure("input", f"input is {len(data)} bytes, the model wants {needed}")
        interp.set_input(np.frombuffer(data, dtype=dtype).reshape(shape), 0)
        start = time.perf_counter_ns()
        try:
            interp.invoke()
        except RuntimeError as exc:
            raise EngineFailure("invoke", f"invoke failed: {exc}") from None
        if self.delay_us:
            _spin(self.delay_us * 1000)
        self.last_invoke_us = (time.perf_counter_ns() - start) / 1000
        return np.ascontiguousarray(interp.get_output(0)).tobytes()


def _spin(ns: int) -> None:
    """Busy-wait: a sleep's granularity would blur a debug delay of a few hundred microseconds."""
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass
