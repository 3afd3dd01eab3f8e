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
                raise EngineFailure("arena-too-small", f"arena needs at least {needed} bytes, have {self.arena_size}")
            detail = text[-1] if text else str(error)
            raise EngineFailure("bad-model", f"TFLite Micro rejected the model: {detail}")
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


# --- ENGINE_RPC.md server ----------------------------------------------------------------------------------

_TYPES = {"int8": "int8", "uint8": "uint8", "int16": "int16", "int32": "int32", "float32": "float32",
          "int64": "int64", "float16": "float16", "bool": "bool"}


def _tensor_line(details: dict) -> str:
    import numpy as np

    dtype = np.dtype(details["dtype"])
    shape = [int(d) for d in details["shape"]]
    quant = details.get("quantization_parameters") or {}
    scales, zeros = list(quant.get("scales", [])), list(quant.get("zero_points", []))
    scale = float(scales[0]) if len(scales) == 1 else 0.0  # per-axis quantization is not a tensor-level scale
    zero = int(zeros[0]) if len(scales) == 1 else 0
    nbytes = int(np.prod(shape)) * dtype.itemsize
    kind = _TYPES.get(dtype.name, dtype.name)
    return f"ok type={kind} bytes={nbytes} dims={'x'.join(map(str, shape))} scale={scale!r} zero_point={zero}"


class RpcServer:
    """Answers ENGINE_RPC.md requests with a :class:`TflmEngine`; one request, one reply line."""

    def __init__(self, engine: TflmEngine, jitter_us: int = 0, seed: int = 0) -> None:
        import random

        self.engine = engine
        self.jitter_us = jitter_us
        self.random = random.Random(seed)
        self.seed = seed
        self.outputs: list[bytes] = []
        self._pending_input: bytes | None = None

    def handle(self, line: str) -> str:
        verb, *args = line.split()
        try:
            handler = getattr(self, "do_" + verb, None) if verb.isidentifier() else None
            if handler is None:
                return f"err unsupported unknown request {verb}"
            return handler(*args)
        except EngineFailure as exc:
            return f"err {exc.code} {exc}"
        except (TypeError, ValueError, IndexError) as exc:
            return f"err engine bad request {verb}: {exc}".replace("\n", " ")

    def do_hello(self, version: str) -> str:
        return "ok rpc=1 name=tflm-python"

    def do_info(self) -> str:
        from urllib.parse import quote

        from tflite_micro.python.tflite_micro import _version

        info = {"chip": "host-sim", "tflm": _version.__version__, "arena-note": "host-64-bit-estimate",
                "engine-timer": "host perf_counter around Invoke()", "engine-seed": str(self.seed),
                "engine-jitter-us": str(self.jitter_us), "arena-bytes": str(self.engine.arena_size),
                "arena-where": "host"}
        return "ok " + " ".join(f"{k}={quote(v, safe='')}" for k, v in info.items())

    def do_load(self, hex_model: str) -> str:
        model = bytes.fromhex(hex_model)
        self.engine.load(model)
        self.outputs, self._pending_input = [], None
        from tflite_micro.python.tflite_micro import runtime

        graph = runtime.convert_bytearray_to_object(model).subgraphs[0]
        counts = [len(graph.inputs), len(graph.outputs)]
        return f"ok inputs={counts[0]} outputs={counts[1]}"

    def do_tensor(self, side: str, index: str) -> str:
        interp = self.engine._require()
        getter = interp.get_input_details if side == "in" else interp.get_output_details
        try:
            details = getter(int(index))
        except Exception:
            raise EngineFailure("bad-argument", f"no {side}put tensor {index}") from None
        return _tensor_line(details)

    def do_set_input(self, index: str, hex_data: str) -> str:
        if int(index) != 0:
            raise EngineFailure("unsupported", "the sim engine feeds input tensor 0 only")
        self._pending_input = bytes.fromhex(hex_data)
        return "ok"

    def do_invoke(self) -> str:
        data = self._pending_input
        if data is None:
            details = self.engine.input_details()
            import numpy as np

            data = bytes(int(np.prod(details["shape"])) * np.dtype(details["dtype"]).itemsize)
        out = self.engine.invoke(data)
        us = self.engine.last_invoke_us
        if self.jitter_us:
            extra = self.random.randint(0, self.jitter_us)
            _spin(extra * 1000)
            us += extra
        self.outputs = [out]
        return f"ok us={max(0, round(us))}"

    def do_output(self, index: str) -> str:
        if int(index) != 0:
            raise EngineFailure("unsupported", "the sim engine reads output tensor 0 only")
        if not self.outputs:
            raise EngineFailure("no-results", "no invoke yet")
        return "ok hex=" + self.outputs[0].hex()

    def do_arena(self) -> str:
        self.engine._require()
        return f"ok used={self.engine.arena_used} size={self.engine.arena_size}"

    def do_profile(self) -> str:
        return "err unsupported the tflite-micro Python interpreter has no per-op profiler"

    def do_heap(self) -> str:
        return "err unsupported the host sim has no heap figures of a board"

    def do_bye(self) -> str:
        return "ok"


def main(argv: list[str] | None = None) -> int:
    """Serve ENGINE_RPC.md on the fds ``tinyml-host`` passes (``TINYML_RPC_IN``/``TINYML_RPC_OUT``).

    Example:
        tinyml-host --engine-cmd "python -m pytest_tinyml.board.sim_engine --arena-size 131072"
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_tinyml.board.sim_engine")
    parser.add_argument("--arena-size", type=int, default=131072)
    parser.add_argument("--jitter-us", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rpc_in = os.fdopen(int(os.environ.get("TINYML_RPC_IN", "3")), "rb", buffering=0)
    rpc_out = os.fdopen(int(os.environ.get("TINYML_RPC_OUT", "4")), "wb", buffering=0)
    server = RpcServer(TflmEngine(args.arena_size), jitter_us=args.jitter_us, seed=args.seed)
    reader = _lines(rpc_in)
    for raw in reader:
        line = raw.decode("ascii", errors="replace").strip()
        if not line:
            continue
        reply = server.handle(line)
        rpc_out.write(reply.encode("ascii", errors="replace") + b"\n")
        if line == "bye":
            break
    return 0


def _lines(stream):
    """Lines of an unbuffered binary stream, read in large blocks (a model arrives as one long hex line)."""
    pending = b""
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line


if __name__ == "__main__":
    raise SystemExit(main())
