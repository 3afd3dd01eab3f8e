"""``BenchClient``: the tinyml-bench commands as public verbs, over :class:`~pytest_tinyml.board.protocol.Client`.

One method per command of ``firmware/PROTOCOL.md`` (``tinyml-version``, ``-info``, ``-model``, ``-builtin``,
``-load``/``-chunk``, ``-infer``, ``-samples``, ``-outputs``, ``-ops``, ``-predict``, ``-predictions``) and the
two MLPerf Tiny commands a
pure MLPerf firmware answers (``db``, ``infer``). Each returns parsed values; ``Board`` and the benchmark
flow use only these.

Example:
    >>> client = BenchClient(open_port("/dev/ttyUSB0", 921600), port="/dev/ttyUSB0")  # doctest: +SKIP
    >>> client.upload("input", bytes(64), 0); client.infer(1, 0); client.output(0)[1][:4]  # doctest: +SKIP
    b'\\x80\\x80\\x81\\x80'
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from pytest_tinyml.board.framing import brackets, fields
from pytest_tinyml.board.protocol import Client
from pytest_tinyml.board.result import OpTiming
from pytest_tinyml.board.status import Status
from pytest_tinyml.errors import ProtocolError

CHUNK = 256  # bytes per tinyml-chunk: 512 hex digits, well inside the 1024-byte command limit
MLPERF_CHUNK = 32  # bytes per MLPerf `db <hex>%` line
_LAP = re.compile(r"^m-lap-us-(\d+)$")


@dataclass
class LoadedModel:
    """What the board says about the model it holds (``tinyml-model``)."""

    source: str
    sha256: str
    inputs: list = field(default_factory=list)  # TensorQuant per input tensor, as the board describes it
    outputs: list = field(default_factory=list)
    arena_bytes: int | None = None  # the one arena figure (smallest arena for which load + invoke succeed)
    arena_allocated_bytes: int | None = None  # TFLM's arena_used_bytes(): never compared with a budget
    arena_size: int | None = None


NO_MODEL = LoadedModel(source="none", sha256="")


@dataclass(frozen=True)
class MlperfRun:
    """An MLPerf Tiny ``infer N W%``: its lap timestamps (us) and the last ``m-results-`` values."""

    laps: tuple[int, ...]
    results: tuple[float, ...] | None


def tensor_quant(kind: str, index: str, text: str):
    """A board's tensor description (``type=int8,dims=1x64,scale=..,zero_point=..``) as the one TensorQuant."""
    from pytest_tinyml.tflite.quant import TensorQuant

    f = fields(text)
    shape = tuple(int(d) for d in f.get("dims", "").split("x") if d)
    return TensorQuant(f"{kind}{index}", shape, f.get("type", "int8"), float(f.get("scale", 0)),
                       int(f.get("zero_point", 0)))


def parse_model(reply) -> LoadedModel:
    """``model-``, ``tensor-`` and ``arena-`` lines of a reply (``tinyml-model``, an upload's last chunk)."""
    state = LoadedModel(source="none", sha256="")
    for body in (f.body for f in reply.framed):
        groups = brackets(body)
        if body.startswith("model-"):
            info = fields(groups[0])
            state.source, state.sha256 = info.get("source", "?"), info.get("sha256", "")
        elif body.startswith("tensor-") and len(groups) >= 3:
            side = state.inputs if groups[0] == "in" else state.outputs
            side.append(tensor_quant(groups[0], groups[1], groups[2]))
        elif body.startswith("arena-"):
            info = fields(groups[0])
            # protocol 1.0 calls arena_bytes `used`
            state.arena_bytes = int(info.get("arena_bytes", info.get("used", 0))) or None
            allocated = info.get("arena_allocated_bytes")
            state.arena_allocated_bytes = int(allocated) if allocated else None
            state.arena_size = int(info["size"]) if "size" in info else None
    return state


class BenchClient(Client):
    """The protocol's commands as methods (see the module docstring)."""

    def version(self) -> str:
        """The protocol version the firmware speaks (``"1.0"``)."""
        proto = (self.command("tinyml-version").bodies("protocol-") or ["protocol-[0]"])[0]
        return brackets(proto)[0]

    def info(self) -> dict[str, str]:
        """``tinyml-info`` as ``{key: value}`` (keys as the firmware names them: ``cpu-mhz``, ``build``...)."""
        info: dict[str, str] = {}
        for body in self.command("tinyml-info").bodies("info-"):
            key, _, rest = body[len("info-"):].partition("-[")
            info[key] = rest[: rest.rfind("]")] if "]" in rest else rest
        return info

    def model(self) -> LoadedModel:
        """The model the board holds (``NO_MODEL`` when it holds none)."""
        try:
            return parse_model(self.command("tinyml-model"))
        except ProtocolError as exc:
            if getattr(exc, "code", "") != Status.NO_MODEL:
                raise
            return LoadedModel(source="none", sha256="")

    def builtin(self) -> LoadedModel:
        """Load the firmware's built-in model."""
        return parse_model(self.command("tinyml-builtin"))

    def upload(self, target: str, data: bytes, index: int | None = None):
        """Upload ``data`` as the ``model`` or as ``input`` ``index``; returns the last chunk's reply."""
        crc = f"{zlib.crc32(data):08x}"
        suffix = f" {index}" if index is not None else ""
        reply = self.command(f"tinyml-load {target} {len(data)} {crc}{suffix}")
        for offset in range(0, len(data), CHUNK):
            part = data[offset: offset + CHUNK]
            reply = self.command(f"tinyml-chunk {offset} {part.hex()} {zlib.crc32(part):08x}")
        return reply

    def infer(self, runs: int, warmup: int) -> None:
        """``warmup`` untimed then ``runs`` timed invokes; checks the board ran what was asked."""
        body = self.command(f"tinyml-infer {runs} {warmup}").bodies("infer-")
        got = fields(brackets(body[0])[0]) if body else {}
        if got.get("runs") != str(runs) or got.get("warmup") != str(warmup):
            raise ProtocolError(f"{self.port} ran `{got}` for `tinyml-infer {runs} {warmup}`: the command was "
                                "garbled on the way to the board", port=self.port, log=self.log)

    def samples(self, runs: int) -> list[int]:
        """The per-run microseconds of the last ``infer`` (exactly ``runs`` of them)."""
        values: dict[int, list[int]] = {}
        for body in self.command("tinyml-samples").bodies("samples-"):
            start, numbers = brackets(body)[:2]
            values[int(start)] = [int(v) for v in numbers.split(",") if v]
        samples = [v for start in sorted(values) for v in values[start]]
        if len(samples) != runs:
            raise ProtocolError(f"{self.port} sent {len(samples)} samples for {runs} runs", port=self.port,
                                log=self.log)
        return samples

    def output(self, index: int = 0) -> tuple[object, bytes]:
        """Output tensor ``index`` after the last invoke: (its TensorQuant, its raw bytes).

        Read again when the reply came back corrupt, as :meth:`predictions` is (an output longer than the lines
        the board holds for resend cannot be re-asked line by line; ``tinyml-outputs`` changes nothing)."""
        reply = self._read_only(f"tinyml-outputs {index}")
        quant, data = None, {}
        for body in (f.body for f in reply.framed):
            groups = brackets(body)
            if body.startswith("output-data-"):
                data[int(groups[1])] = bytes.fromhex(groups[2])
            elif body.startswith("output-"):
                quant = tensor_quant("out", groups[0], groups[1])
        return quant, b"".join(data[k] for k in sorted(data))

    def predict(self, samples: int) -> dict[str, int]:
        """Run every sample of the staged batch (``tinyml-load batch``); the ``predict-[...]`` figures.

        Checks the board ran the ``samples`` it was sent (commands are not framed).
        """
        body = self.command("tinyml-predict").bodies("predict-")
        try:
            got = {k: int(v) for k, v in fields(brackets(body[0])[0]).items()} if body else {}
        except (IndexError, ValueError):
            raise ProtocolError(f"{self.port} answered tinyml-predict with {body[0]!r}, not "
                                "predict-[samples=N,total_us=N,...] (PROTOCOL.md): is the firmware this checkout's "
                                "tinyml-bench?", port=self.port, log=self.log) from None
        if got.get("samples") != samples:
            raise ProtocolError(f"{self.port} ran {got.get('samples')} samples of a batch of {samples}: the batch "
                                "upload was garbled on the way to the board", port=self.port, log=self.log)
        return got

    def predictions(self, start: int, count: int, out_bytes: int) -> list[bytes]:
        """Output 0 of batch samples ``start`` .. ``start + count - 1`` after ``predict``, ``out_bytes`` each.

        Each sample's lines must cover its bytes in order, once each (offset = the bytes before it).
        """
        parts: dict[int, dict[int, bytes]] = {}
        for body in self._read_only(f"tinyml-predictions {start} {count}").bodies("prediction-"):
            try:
                sample, offset, data = brackets(body)[:3]
                index, at, chunk = int(sample), int(offset), bytes.fromhex(data)
            except ValueError:
                raise ProtocolError(f"{self.port} sent {body!r}, not prediction-[SAMPLE]-[OFFSET]-[HEX] (PROTOCOL.md): "
                                    "is the firmware this checkout's tinyml-bench?", port=self.port,
                                    log=self.log) from None
            if at in parts.setdefault(index, {}):
                raise ProtocolError(f"{self.port} sent bytes {at}.. of sample {index} twice", port=self.port,
                                    log=self.log)
            parts[index][at] = chunk
        out = []
        for i in range(start, start + count):
            got, filled = parts.get(i, {}), b""
            for at in sorted(got):
                if at != len(filled):  # a gap (or overlap) would shift every byte after it
                    raise ProtocolError(f"{self.port} sent bytes {at}.. of sample {i} after {len(filled)} bytes",
                                        port=self.port, log=self.log)
                filled += got[at]
            out.append(filled)
        if any(len(o) != out_bytes for o in out):
            raise ProtocolError(f"{self.port} sent {[len(o) for o in out]} output bytes for samples {start}.."
                                f"{start + count - 1}, expected {out_bytes} each", port=self.port, log=self.log)
        return out

    def _read_only(self, command: str, tries: int = 3):
        """``command`` (one that changes nothing on the board) sent again when its reply came back corrupt: a
        sample's output longer than the 48 lines the board holds for resend cannot be re-asked line by line."""
        for attempt in range(tries):
            try:
                return self.command(command)
            except ProtocolError as exc:
                if not getattr(exc, "corrupt_reply", False) or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def ops(self) -> tuple[tuple[OpTiming, ...], str | None]:
        """One profiled invoke: (per-op times, None), or ((), the board's reason) when it cannot profile."""
        try:
            bodies = self.command("tinyml-ops").bodies("op-")
        except ProtocolError as exc:
            if getattr(exc, "code", "") == Status.UNSUPPORTED:
                return (), str(exc.args[0]).split("unsupported: ", 1)[-1]
            raise
        return tuple(OpTiming(int(i), name, float(us)) for i, name, us in (brackets(b)[:3] for b in bodies)), None

    # -- MLPerf Tiny commands (a pure MLPerf Tiny firmware answers only these) -------------------------------

    def mlperf_load(self, data: bytes) -> None:
        """``db load N%`` then ``db <hex>%`` lines: the input of the next ``infer``."""
        self._mlperf_check("db load", self.exchange(f"db load {len(data)}"))
        for offset in range(0, len(data), MLPERF_CHUNK):
            self._mlperf_check("db", self.exchange("db " + data[offset: offset + MLPERF_CHUNK].hex()))

    def mlperf_infer(self, runs: int, warmup: int) -> MlperfRun:
        """``infer N W%``: the lap timestamps and the results line."""
        lines = self.exchange(f"infer {runs} {warmup}")
        self._mlperf_check(f"infer {runs} {warmup}", lines)
        laps = tuple(int(m.group(1)) for m in map(_LAP.match, lines) if m)
        results = [ln for ln in lines if ln.startswith("m-results-[")]
        if len(laps) < 2:
            raise ProtocolError(f"{self.port} answered `infer {runs} {warmup}%` without two lap lines: "
                                f"{lines[-3:]}", port=self.port, log=self.log)
        values = None
        if results:
            values = tuple(float(v) for v in brackets(results[-1])[0].split(",") if v)
        return MlperfRun(laps, values)

    def _mlperf_check(self, command: str, lines: list[str]) -> None:
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise ProtocolError(f"{self.port} refused `{command}%`: {errors[0]}", port=self.port, log=self.log)
