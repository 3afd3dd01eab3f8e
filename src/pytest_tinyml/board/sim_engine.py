"""The sim board's engine: real TFLite Micro kernels (the ``tflite-micro`` package) behind ENGINE_RPC.md.

``tinyml-host`` (the firmware's portable core, built for the host) forwards its engine calls -- load a model,
set an input, invoke, read outputs, arena -- to this process. The engine keeps the firmware's semantics, not
its own: ``set_input`` copies the bytes into the input tensor once, and ``invoke`` runs the interpreter on
whatever the arena holds, so an invoke sees what TFLite Micro's memory planner left in the input slot (as
on a board: the core must send ``set_input`` before every invoke, ENGINE_RPC.md).

It is :mod:`pytest_tinyml.runtime.tflm`'s TFLite Micro, not a second one: the model is checked by
:func:`pytest_tinyml.runtime.load`, its arena figure is :func:`pytest_tinyml.runtime.tflm.arena`
(``arena_bytes``, the same figure ``assert_budget`` reports, to the byte), the interpreter comes from
:func:`~pytest_tinyml.runtime.tflm.new_interpreter` with TFLite Micro's output captured. Arena figures are the
host's (64-bit pointers): an estimate of a 32-bit device's arena, labelled as such. Latency is measured on the
host around ``Invoke()``. There are no per-op times: the Python interpreter has no profiler hook.

Run as ``python -m pytest_tinyml.board.sim_engine``.
"""

from __future__ import annotations

import os
import time

from pytest_tinyml.board.status import Status

NO_PROFILER = "the tflite-micro Python interpreter has no per-op profiler, so the sim reports no per-op times"
_UNSUPPORTED_OP = ("Didn't find op for builtin opcode", "Failed to get registration from op code")


class EngineFailure(Exception):
    """An engine call failed; ``code`` is the protocol's error code (:class:`~pytest_tinyml.board.status.Status`)."""

    def __init__(self, code: Status, message: str) -> None:
        super().__init__(message)
        self.code = Status(code)


def _reason(error: Exception) -> str:
    """The last line TFLite Micro (or the model check) gave, for a one-line RPC reply."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip() and not ln.startswith(("---", "Hint:"))]
    return lines[-1] if lines else type(error).__name__


class TflmEngine:
    """One loaded model in the TFLite Micro interpreter, driven as the firmware drives its engine.

    Example:
        >>> engine = TflmEngine(arena_size=64 * 1024)
        >>> engine.load(open("model.tflite", "rb").read())  # doctest: +SKIP
    """

    def __init__(self, arena_size: int, delay_us: int = 0) -> None:
        self.arena_size = arena_size
        self.delay_us = delay_us
        self.interpreter = None
        self.arena = None  # runtime.tflm.ArenaReport of the loaded model
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.op_names: list[str] = []  # builtin op names of the model's operator codes (ENGINE_RPC op_names)
        self.last_invoke_us = 0.0

    def load(self, model: bytes):
        """Load ``model`` into an arena of ``arena_size`` bytes; return its ``runtime.tflm`` arena report."""
        from pytest_tinyml import runtime
        from pytest_tinyml.errors import ModelLoadError, RuntimeCrash
        from pytest_tinyml.runtime import tflm

        self.interpreter, self.arena, self.inputs, self.outputs, self.op_names = None, None, [], [], []
        try:
            artifact = runtime.load(bytes(model), name="uploaded model")
        except ModelLoadError as exc:
            raise EngineFailure(Status.BAD_MODEL, f"not a valid TFLite model: {_reason(exc)}") from None
        try:
            # Bisected in a child (a too-small arena can crash the wrapper), so the in-process load below,
            # with at least that much arena, is known to load and invoke.
            report = tflm.arena(artifact)
        except (ModelLoadError, RuntimeCrash) as exc:
            code = Status.UNSUPPORTED_OP if any(s in str(exc) for s in _UNSUPPORTED_OP) else Status.BAD_MODEL
            raise EngineFailure(code, f"TFLite Micro rejected the model: {_reason(exc)}") from None
        if report.arena_bytes > self.arena_size:
            raise EngineFailure(Status.ARENA_TOO_SMALL,
                                f"arena needs at least {report.arena_bytes} bytes, have {self.arena_size}")
        try:
            interpreter = tflm.new_interpreter(artifact.content, artifact.name, self.arena_size)
        except ModelLoadError as exc:
            raise EngineFailure(Status.BAD_MODEL, f"TFLite Micro rejected the model: {_reason(exc)}") from None
        self.inputs = [interpreter.get_input_details(i) for i in range(len(artifact.inputs))]
        self.outputs = [interpreter.get_output_details(i) for i in range(len(artifact.outputs))]
        from pytest_tinyml.tflite import schema

        self.op_names = schema.op_names(artifact.content, name=artifact.name)
        self.interpreter, self.arena = interpreter, report
        return report

    def _require(self):
        if self.interpreter is None:
            raise EngineFailure(Status.NO_MODEL, "no model loaded")
        return self.interpreter

    def _details(self, side: str, index: int) -> dict:
        self._require()
        tensors = self.inputs if side == "in" else self.outputs
        if not 0 <= index < len(tensors):
            raise EngineFailure(Status.BAD_ARGUMENT, f"no {side}put tensor {index}: the model has {len(tensors)}")
        return tensors[index]

    def set_input(self, index: int, data: bytes) -> None:
        """Copy raw bytes into input tensor ``index`` now (as the firmware's memcpy into the tensor)."""
        import numpy as np

        details = self._details("in", index)
        dtype, shape = np.dtype(details["dtype"]), tuple(int(d) for d in details["shape"])
        needed = int(np.prod(shape)) * dtype.itemsize
        if len(data) != needed:
            raise EngineFailure(Status.BAD_ARGUMENT, f"input is {len(data)} bytes, the model wants {needed}")
        self._require().set_input(np.frombuffer(data, dtype=dtype).reshape(shape), index)

    def invoke(self) -> float:
        """Run one inference on what the arena holds now; return microseconds around ``Invoke()`` only."""
        interpreter = self._require()
        start = time.perf_counter_ns()
        try:
            interpreter.invoke()
        except RuntimeError as exc:
            raise EngineFailure(Status.INVOKE_FAILED, f"invoke failed: {exc}") from None
        if self.delay_us:
            _spin(self.delay_us * 1000)
        self.last_invoke_us = (time.perf_counter_ns() - start) / 1000
        return self.last_invoke_us

    def output(self, index: int) -> bytes:
        """The bytes of output tensor ``index`` as the last invoke left them."""
        import numpy as np

        self._details("out", index)
        return np.ascontiguousarray(self._require().get_output(index)).tobytes()


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
        self.invoked = False

    def handle(self, line: str) -> str:
        verb, *args = line.split()
        try:
            handler = getattr(self, "do_" + verb, None) if verb.isidentifier() else None
            if handler is None:
                return f"err {Status.UNSUPPORTED.value} unknown request {verb}"
            return handler(*args)
        except EngineFailure as exc:
            return f"err {exc.code.value} {exc}".replace("\n", " ")
        except (TypeError, ValueError, IndexError) as exc:
            return f"err {Status.ENGINE.value} bad request {verb}: {exc}".replace("\n", " ")

    def do_hello(self, version: str) -> str:
        return "ok rpc=1 name=tflm-python"

    def do_info(self) -> str:
        from urllib.parse import quote

        from tflite_micro.python.tflite_micro import _version

        info = {"chip": "host-sim", "tflm": _version.__version__, "arena-note": "host-64-bit-estimate",
                "engine-timer": "host perf_counter around Invoke()", "engine-seed": str(self.seed),
                "engine-jitter-us": str(self.jitter_us), "arena-bytes": str(self.engine.arena_size),
                "arena-where": "host", "engine-profiler": "none"}
        return "ok " + " ".join(f"{k}={quote(v, safe='')}" for k, v in info.items())

    def do_load(self, hex_model: str) -> str:
        self.engine.load(bytes.fromhex(hex_model))
        self.invoked = False
        return f"ok inputs={len(self.engine.inputs)} outputs={len(self.engine.outputs)}"

    def do_tensor(self, side: str, index: str) -> str:
        if side not in ("in", "out"):
            raise EngineFailure(Status.BAD_ARGUMENT, f"tensor side must be in or out, not {side}")
        return _tensor_line(self.engine._details(side, int(index)))

    def do_set_input(self, index: str, hex_data: str) -> str:
        self.engine.set_input(int(index), bytes.fromhex(hex_data))
        return "ok"

    def do_invoke(self) -> str:
        us = self.engine.invoke()
        if self.jitter_us:
            extra = self.random.randint(0, self.jitter_us)
            _spin(extra * 1000)
            us += extra
        self.invoked = True
        return f"ok us={max(0, round(us))}"

    def do_output(self, index: str) -> str:
        if not self.invoked:
            self.engine._require()
            raise EngineFailure(Status.NO_RESULTS, "no invoke since the model was loaded")
        return "ok hex=" + self.engine.output(int(index)).hex()

    def do_arena(self) -> str:
        self.engine._require()
        report, size = self.engine.arena, self.engine.arena_size
        allocated = report.arena_allocated_bytes or 0
        # used= is RPC 1's name of arena_bytes, for a tinyml-host that predates arena_bytes=
        return (f"ok arena_bytes={report.arena_bytes} arena_allocated_bytes={allocated} size={size} "
                f"used={report.arena_bytes}")

    def do_op_names(self) -> str:
        return "ok names=" + ",".join(self.engine.op_names)

    def do_profile(self) -> str:
        return f"err {Status.UNSUPPORTED.value} {NO_PROFILER}"

    def do_heap(self) -> str:
        return f"err {Status.UNSUPPORTED.value} the host sim has no heap figures of a board"

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
    parser.add_argument("--cache-dir", default=None, help="keep arena figures there (pytest_tinyml.memo)")
    args = parser.parse_args(argv)
    if args.cache_dir:
        from pytest_tinyml import memo

        memo.set_root(args.cache_dir)
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
