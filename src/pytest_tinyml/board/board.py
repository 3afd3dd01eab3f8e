"""``Board``: benchmark a model on a board (or the sim) over the tinyml-bench protocol.

``Board.benchmark(model, inputs, runs, warmup)`` uploads the model only when the board holds another one
(compared by sha256), feeds each input sample, reads back its outputs, then times ``runs`` invokes after
``warmup`` untimed ones and returns a :class:`~pytest_tinyml.board.result.BoardResult`.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

from pytest_tinyml import report
from pytest_tinyml.board.protocol import SUPPORTED_MAJOR, Client, brackets, fields
from pytest_tinyml.board.result import BoardResult, OpTiming
from pytest_tinyml.errors import ConfigError, ProtocolError

CHUNK = 256  # bytes per tinyml-chunk: 512 hex digits, well inside the 1024-byte command limit


@dataclass
class LoadedModel:
    """What the board says about the model it holds (``tinyml-model``)."""

    source: str
    sha256: str
    inputs: list = field(default_factory=list)  # TensorQuant per input tensor, as the board describes it
    outputs: list = field(default_factory=list)
    arena_used: int | None = None
    arena_size: int | None = None


def _tensor(kind: str, index: str, text: str):
    from pytest_tinyml.tflite.quant import TensorQuant

    f = fields(text)
    shape = tuple(int(d) for d in f.get("dims", "").split("x") if d)
    return TensorQuant(f"{kind}{index}", shape, f.get("type", "int8"), float(f.get("scale", 0)),
                       int(f.get("zero_point", 0)))


def _parse_model(reply) -> LoadedModel:
    state = LoadedModel(source="none", sha256="")
    for body in (f.body for f in reply.framed):
        groups = brackets(body)
        if body.startswith("model-"):
            info = fields(groups[0])
            state.source, state.sha256 = info.get("source", "?"), info.get("sha256", "")
        elif body.startswith("tensor-") and len(groups) >= 3:
            side = state.inputs if groups[0] == "in" else state.outputs
            side.append(_tensor(groups[0], groups[1], groups[2]))
        elif body.startswith("arena-"):
            info = fields(groups[0])
            state.arena_used, state.arena_size = int(info["used"]), int(info["size"])
    return state


class Board:
    """One open board.

    Example:
        >>> result = board.benchmark(int8_model, inputs=x_test[:4], runs=20)  # doctest: +SKIP
        >>> result.latency_us.median, result.info["where"]  # doctest: +SKIP
        (1210.0, 'device')
    """

    def __init__(self, client: Client, *, name: str, closer=None) -> None:
        self.client = client
        self.name = name
        self._closer = closer
        self._info: dict | None = None
        self._model: LoadedModel | None = None
        self.mlperf_only = False
        self.needs_sync = False  # set after a failed exchange: resynchronise before the next benchmark
        # Record figures for the test report and feed the latency history (off for library-level use).
        self.recording = True

    # -- connection --------------------------------------------------------------------------------------

    def connect(self) -> dict:
        """Resynchronise, check the protocol version and read the board info."""
        self.client.sync()
        try:
            version = self.client.command("tinyml-version")
        except ProtocolError as exc:
            # our firmware always knows tinyml-version: any refusal means an MLPerf Tiny firmware (whose errors
            # are `e-[<text>]` without a code)
            if getattr(exc, "code", "") in ("unknown-command", "error"):
                self.mlperf_only = True  # a pure MLPerf Tiny firmware: time its built-in model only
                self._info = {"protocol": "mlperf-tiny", "where": "device", "chip": "unknown"}
                return self._info
            raise
        proto = (version.bodies("protocol-") or ["protocol-[0]"])[0]
        major = brackets(proto)[0].split(".")[0]
        if major != str(SUPPORTED_MAJOR):
            raise ProtocolError(
                f"{self.name} speaks protocol {brackets(proto)[0]}, this pytest-tinyml speaks {SUPPORTED_MAJOR}.x: "
                "update pytest-tinyml or reflash the firmware that ships with it", port=self.name, log=self.client.log)
        self._info = self._read_info()
        return self._info

    def _read_info(self) -> dict:
        info: dict = {}
        for body in self.client.command("tinyml-info").bodies("info-"):
            key, _, rest = body[len("info-"):].partition("-[")
            info[key] = rest[: rest.rfind("]")] if "]" in rest else rest
        info["where"] = "host-sim" if info.get("chip") == "host-sim" else "device"
        info["port"] = self.name
        return info

    @property
    def info(self) -> dict:
        """Board info (``tinyml-info``): chip, build, cpu-mhz, versions... plus ``where`` and ``port``."""
        if self._info is None:
            self.connect()
        return self._info

    def close(self) -> None:
        closer, self._closer = self._closer, None
        try:
            self.client.link.close()
        finally:
            if closer is not None:
                closer()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model and data ----------------------------------------------------------------------------------

    def loaded_model(self) -> LoadedModel:
        """The model the board holds now (asks the board the first time, and after a reset)."""
        if self._model is None:
            try:
                self._model = _parse_model(self.client.command("tinyml-model"))
            except ProtocolError as exc:
                if getattr(exc, "code", "") != "no-model":
                    raise
                self._model = LoadedModel(source="none", sha256="")
        return self._model

    def _upload(self, target: str, data: bytes, index: int | None = None):
        crc = f"{zlib.crc32(data):08x}"
        suffix = f" {index}" if index is not None else ""
        self.client.command(f"tinyml-load {target} {len(data)} {crc}{suffix}")
        reply = None
        for offset in range(0, len(data), CHUNK):
            part = data[offset: offset + CHUNK]
            reply = self.client.command(f"tinyml-chunk {offset} {part.hex()} {zlib.crc32(part):08x}")
        return reply

    def load_model(self, content: bytes | None) -> LoadedModel:
        """Make the board hold ``content`` (None: its built-in model); uploads only when the sha256 differs."""
        current = self._safe_current()
        if content is None:
            if current.source != "builtin":
                self._model = None
                self._model = _parse_model(self.client.command("tinyml-builtin"))
            return self._model
        sha = hashlib.sha256(content).hexdigest()
        if current.sha256 == sha:
            return current
        self._model = None  # a failed upload leaves no model on the board
        self._model = _parse_model(self._upload("model", content))
        if self._model.sha256 and self._model.sha256 != sha:
            raise ProtocolError(f"{self.name} reports model sha256 {self._model.sha256[:16]} after upload, expected "
                                f"{sha[:16]}", port=self.name, log=self.client.log)
        return self._model

    def _safe_current(self) -> LoadedModel:
        try:
            return self.loaded_model()
        except ProtocolError:
            self._model = None
            return LoadedModel(source="none", sha256="")

    def _infer(self, runs: int, warmup: int) -> None:
        body = self.client.command(f"tinyml-infer {runs} {warmup}").bodies("infer-")
        got = fields(brackets(body[0])[0]) if body else {}
        if got.get("runs") != str(runs) or got.get("warmup") != str(warmup):
            raise ProtocolError(f"{self.name} ran `{got}` for `tinyml-infer {runs} {warmup}`: the command was "
                                "garbled on the way to the board", port=self.name, log=self.client.log)

    def _samples(self, runs: int) -> list[int]:
        values: dict[int, list[int]] = {}
        for body in self.client.command("tinyml-samples").bodies("samples-"):
            start, numbers = brackets(body)[:2]
            values[int(start)] = [int(v) for v in numbers.split(",") if v]
        samples = [v for start in sorted(values) for v in values[start]]
        if len(samples) != runs:
            raise ProtocolError(f"{self.name} sent {len(samples)} samples for {runs} runs", port=self.name,
                                log=self.client.log)
        return samples

    def _output(self, index: int = 0) -> tuple[object, bytes]:
        reply = self.client.command(f"tinyml-outputs {index}")
        quant, data = None, {}
        for body in (f.body for f in reply.framed):
            groups = brackets(body)
            if body.startswith("output-data-"):
                data[int(groups[1])] = bytes.fromhex(groups[2])
            elif body.startswith("output-"):
                quant = _tensor("out", groups[0], groups[1])
        return quant, b"".join(data[k] for k in sorted(data))

    def _ops(self) -> tuple[OpTiming, ...]:
        try:
            bodies = self.client.command("tinyml-ops").bodies("op-")
        except ProtocolError as exc:
            if getattr(exc, "code", "") == "unsupported":
                return ()
            raise
        return tuple(OpTiming(int(i), name, float(us)) for i, name, us in (brackets(b)[:3] for b in bodies))

    # -- benchmark ---------------------------------------------------------------------------------------

    def benchmark(self, model=None, inputs=None, runs: int = 20, warmup: int = 3) -> BoardResult:
        """Time ``model`` on the board and read its outputs for ``inputs`` (first axis = sample).

        ``model``: a ``TFLiteArtifact``, flatbuffer bytes, a ``.tflite`` path, or None for the firmware's
        built-in model (how a pure MLPerf Tiny firmware is timed). Float inputs are quantized with the
        model's input scale and zero point; ``inputs=None`` feeds zeros.

        Example:
            >>> r = board.benchmark(artifact, inputs=x_test[:4], runs=20)  # doctest: +SKIP
            >>> r.outputs.shape  # doctest: +SKIP
            (4, 10)
        """
        if runs < 1 or warmup < 0:
            raise ConfigError(f"benchmark needs runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
        from pytest_tinyml.board import benchmark as flow

        return flow.run(self, model, inputs, runs, warmup)

    def forget_state(self) -> None:
        """After a reset the board holds no model: ask again next time."""
        self._model = None

    def record(self, result: BoardResult, artifact) -> None:
        """Figures to the running test's report; latency samples to the history (when it offers observe)."""
        if not self.recording:
            return
        report.record(latency_median_us=result.latency_us.median,
                      arena_kb=result.arena_kb, where=result.where)
        try:  # the latency history may not offer observe() (yet)
            from pytest_tinyml import history

            observe = history.observe
        except (ImportError, AttributeError):
            return
        info = result.info
        board = {"chip": info.get("chip"), "revision": info.get("revision"), "cpu_mhz": info.get("cpu-mhz"),
                 "firmware_hash": info.get("build"), "idf_version": info.get("idf"), "tflm_version": info.get("tflm"),
                 "esp_nn_version": info.get("esp-nn"), "build_flags": info.get("cflags"), "where": result.where}
        context = {"board": {k: v for k, v in board.items() if v is not None}, "info": dict(info),
                   "model_sha256": result.model_sha256, "recipe": getattr(artifact, "recipe", None),
                   "model": getattr(artifact, "name", None), "runs": result.runs, "warmup": result.warmup}
        observe(kind="board", samples_us=list(result.latency_us.samples), context=context)


# --- opening boards ---------------------------------------------------------------------------------------


def open_board(spec, *, baud: int = 921600, timeout: float = 30.0, skip_flash: bool = False,
               firmware_dir: str | None = None, cache_dir: str = ".tinyml_cache", target: str | None = None,
               sim_options: dict | None = None) -> Board:
    """Open the board a ``BoardSpec`` names, make sure it runs the current firmware, and connect.

    A device whose firmware build differs from the sources is rebuilt (idf.py) and flashed (esptool), unless
    ``skip_flash``: then it is a ``FirmwareError``. ``sim`` starts the host simulator.

    Example:
        >>> from pytest_tinyml.options import parse_board
        >>> with open_board(parse_board("sim")) as board:  # doctest: +SKIP
        ...     board.info["where"]
        'host-sim'
    """
    from pytest_tinyml.board import flash

    if spec.is_sim:
        from pytest_tinyml.board.simboard import open_sim

        return open_sim(spec, timeout=timeout, skip_flash=skip_flash, firmware_dir=firmware_dir,
                        cache_dir=cache_dir, **(sim_options or {}))
    from pytest_tinyml.board.transport import open_port

    port = spec.text

    def connect() -> Board:
        board = Board(Client(open_port(port, baud), port=port, timeout=timeout, baud=baud), name=port)
        try:
            board.connect()
        except BaseException:
            board.close()
            raise
        return board

    board = connect()
    fw_dir = flash.locate_firmware_dir(firmware_dir)
    expected = flash.device_build_id(fw_dir)
    reported = None if board.mlperf_only else board.info.get("build")
    if board.mlperf_only and skip_flash:
        return board  # an MLPerf Tiny firmware flashed by hand: benchmark(None) times its built-in model
    try:
        stale = flash.check_current(reported, expected, port=port, skip_flash=skip_flash, log=board.client.log,
                                    by_hand=flash.by_hand_command(fw_dir, expected))
    except BaseException:
        board.close()
        raise
    if not stale:
        return board
    chip = target or board.info.get("chip")
    board.close()
    if not chip or chip == "unknown":
        raise flash.FirmwareError(f"cannot tell which chip is on {port} to build the firmware for: pass "
                                  "--tinyml-target (e.g. esp32s3)", port=port)
    flash.flash(port, flash.build(fw_dir, chip, cache_dir, expected))
    board = connect()
    if not flash.same_build_hash(board.info.get("build") or "", expected):
        board.close()
        raise flash.FirmwareError(f"{port} still reports build {board.info.get('build')} after flashing {expected}: "
                                  "the firmware does not embed TINYML_BUILD_ID; check firmware/main/CMakeLists.txt",
                                  port=port)
    return board
