"""``Board``: benchmark a model on a board (or the sim) over the tinyml-bench protocol.

``Board.benchmark(model, inputs, runs, warmup)`` uploads the model only when the board holds another one
(compared by sha256), feeds each input sample, reads back its outputs, then times ``runs`` invokes after
``warmup`` untimed ones and returns a :class:`~pytest_tinyml.board.result.BoardResult`. The board does not
write reports or history: whoever opened it may set ``on_result`` (the ``tinyml_board`` fixture does).
Opening boards is :mod:`pytest_tinyml.board.connect`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable

from pytest_tinyml.board.client import NO_MODEL, BenchClient, LoadedModel
from pytest_tinyml.board.identity import BoardIdentity
from pytest_tinyml.board.protocol import SUPPORTED_MAJOR
from pytest_tinyml.board.result import BoardPredictions, BoardResult
from pytest_tinyml.board.status import Status
from pytest_tinyml.errors import ConfigError, ProtocolError

__all__ = ["Board", "LoadedModel"]


class Board:
    """One open board.

    ``where`` is ``"device"`` for a serial board and ``"sim"`` for the host simulator; ``identity`` is the
    :class:`~pytest_tinyml.board.identity.BoardIdentity` built at :meth:`connect`; ``on_result(result,
    artifact)`` is called with every benchmark's result (None: nobody is told).

    Example:
        >>> result = board.benchmark(int8_model, inputs=x_test[:4], runs=20)  # doctest: +SKIP
        >>> result.latency_us.median, result.where  # doctest: +SKIP
        (1210.0, 'device')
    """

    def __init__(self, client: BenchClient, *, name: str, closer=None, where: str = "device",
                 on_result: Callable[[BoardResult, object], None] | None = None) -> None:
        self.client = client
        self.name = name
        self.where = where
        self.on_result = on_result
        self._closer = closer
        self._info: dict | None = None
        self.identity: BoardIdentity | None = None
        self._model: LoadedModel | None = None
        self.mlperf_only = False
        self.needs_sync = False  # set after a failed exchange: resynchronise before the next benchmark

    # -- connection --------------------------------------------------------------------------------------

    def connect(self) -> dict:
        """Resynchronise, check the protocol version, read the board info and build its identity."""
        self.client.sync()
        try:
            version = self.client.version()
        except ProtocolError as exc:
            # our firmware always knows tinyml-version: any refusal means an MLPerf Tiny firmware (whose errors
            # are `e-[<text>]` without a code)
            if getattr(exc, "code", "") in (Status.UNKNOWN_COMMAND, "error"):
                self.mlperf_only = True  # a pure MLPerf Tiny firmware: time its built-in model only
                self._info = {"protocol": "mlperf-tiny", "where": self.where, "chip": "unknown"}
                self.identity = BoardIdentity(where=self.where)
                return self._info
            raise
        if version.split(".")[0] != str(SUPPORTED_MAJOR):
            raise ProtocolError(
                f"{self.name} speaks protocol {version}, this pytest-tinyml speaks {SUPPORTED_MAJOR}.x: "
                "update pytest-tinyml or reflash the firmware that ships with it", port=self.name, log=self.client.log)
        info = self.client.info()
        self.identity = BoardIdentity.from_info(info, where=self.where)
        self._info = {**info, "where": self.where, "port": self.name}
        return self._info

    @property
    def info(self) -> dict:
        """Board info (``tinyml-info``, the firmware's key names) plus ``where`` and ``port``."""
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

    # -- model -------------------------------------------------------------------------------------------

    def loaded_model(self) -> LoadedModel:
        """The model the board holds now (asks the board the first time, and after a reset)."""
        if self._model is None:
            self._model = self.client.model()
        return self._model

    def load_model(self, content: bytes | None) -> LoadedModel:
        """Make the board hold ``content`` (None: its built-in model); uploads only when the sha256 differs."""
        try:
            current = self.loaded_model()
        except ProtocolError:
            self._model, current = None, NO_MODEL
        if content is None:
            if current.source != "builtin":
                self._model = None
                self._model = self.client.builtin()
            return self._model
        sha = hashlib.sha256(content).hexdigest()
        if current.sha256 == sha:
            return current
        self._model = None  # a failed upload leaves no model on the board
        from pytest_tinyml.board.client import parse_model

        self._model = parse_model(self.client.upload("model", content))
        if self._model.sha256 and self._model.sha256 != sha:
            raise ProtocolError(f"{self.name} reports model sha256 {self._model.sha256[:16]} after upload, expected "
                                f"{sha[:16]}", port=self.name, log=self.client.log)
        return self._model

    def forget_state(self) -> None:
        """After a reset the board holds no model: ask again next time."""
        self._model = None

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

        result, artifact = flow.run(self, model, inputs, runs, warmup)
        # The latency gate may time the same benchmark again before it calls a change (nothing recorded then).
        result = dataclasses.replace(result, remeasure=functools.partial(self.remeasure, model, inputs, runs, warmup))
        if self.on_result is not None:
            self.on_result(result, artifact)
        return result

    def predict(self, model, x, *, batch_size: int | None = None) -> BoardPredictions:
        """Run every sample of ``x`` on the board and read back output 0 of each: a data set slice on the device.

        ``model``: a ``TFLiteArtifact``, flatbuffer bytes or a ``.tflite`` path; uploaded only when the board
        holds another one. Float samples are quantized with the model's input TensorQuant. The slice streams in
        batches (``tinyml-load batch``, ``tinyml-predict``; at most ``batch_size`` samples, and at most what the
        board's ``batch-max-bytes`` holds); a firmware before protocol 1.2 gets one sample at a time. A board
        that resets or goes away mid-stream raises ``BoardReset`` / ``BoardDisconnected``, one that stops
        answering ``BoardTimeout`` (one ``--tinyml-timeout``). Nothing is recorded (``on_result`` is for timings).

        Example:
            >>> p = board.predict(int8_model, x_test[:500])  # doctest: +SKIP
            >>> p.outputs.shape, p.where, p.batches[:2]  # doctest: +SKIP
            ((500, 10), 'sim', (16, 240))
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ConfigError(f"batch_size must be a whole number >= 1 (samples per batch), got {batch_size!r}")
        if model is None:
            raise ConfigError("predict needs the model to run: give the int8 TFLiteArtifact, its bytes or a path")
        from pytest_tinyml.board import predict as flow

        return flow.run(self, model, x, batch_size)

    def remeasure(self, model, inputs, runs: int, warmup: int) -> list[float]:
        """Time the same benchmark again and return its per-run samples (us); ``on_result`` is not called.

        Example:
            >>> board.remeasure(artifact, x_test[:4], 20, 3)[:2]  # doctest: +SKIP
            [1210.0, 1208.0]
        """
        from pytest_tinyml.board import benchmark as flow

        result, _ = flow.run(self, model, inputs, runs, warmup)
        return list(result.latency_us.samples)
