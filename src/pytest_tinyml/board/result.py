"""`BoardResult`: what one ``Board.benchmark`` call measured, as a plain object.

It carries everything a test asserts on (latency samples, arena, dequantized outputs) and everything a report
or the history needs to say *where* the figures come from (board info, model sha256, runs, warm-up).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_tinyml.latency import LatencyStats


@dataclass(frozen=True)
class OpTiming:
    """Time spent in one operator during one invoke (mean over the timed runs when the board averages).

    Example:
        >>> OpTiming(index=0, name="FULLY_CONNECTED", us=41.0).name
        'FULLY_CONNECTED'
    """

    index: int
    name: str
    us: float


def where_of(identity, info: dict) -> str:
    """Where a board's figures come from: its identity's ``where``, else the info it sent (``"device"``)."""
    if identity is not None:
        return identity.where
    return str(info.get("where", "device"))


@dataclass(frozen=True)
class BoardResult:
    """Figures from one on-board (or host-sim) benchmark.

    ``outputs`` is a float numpy array whose first axis is the input sample, dequantized with the model's
    output scale and zero point; ``raw_outputs`` holds the integers the board sent. ``where`` is
    ``"device"`` for a real board and ``"sim"`` for the simulator; ``identity`` says which board it was.
    ``ops`` holds per-operator times when the board can profile; otherwise it is empty and ``ops_reason``
    says why (the sim: the Python TFLite Micro interpreter has no per-op profiler).

    Example:
        >>> from pytest_tinyml.latency import LatencyStats
        >>> r = BoardResult(latency_us=LatencyStats.from_samples([90, 100, 110]), arena_bytes=3440,
        ...                 info={"where": "sim"}, model_sha256="ab" * 32, runs=3, warmup=1)
        >>> r.where, r.latency_us.median, r.arena_kb
        ('sim', 100.0, 3.359375)
    """

    latency_us: LatencyStats
    arena_bytes: int | None  # the one arena figure: smallest arena for which load + invoke succeed
    info: dict[str, Any]
    model_sha256: str | None
    runs: int
    warmup: int
    outputs: Any = None  # numpy.ndarray (float32), first axis = input sample
    raw_outputs: Any = None  # numpy.ndarray of the integers the board sent
    output_quant: Any = None  # TensorQuant (name, shape, dtype, scale, zero_point) or None
    ops: tuple[OpTiming, ...] = ()
    log: str = field(default="", repr=False)
    identity: Any = None  # BoardIdentity of the board that measured, built at connect
    ops_reason: str | None = None  # why ``ops`` is empty, when the board cannot time operators (the sim)
    # Times the same benchmark again (samples in us, nothing recorded): the latency gate's re-measurement.
    remeasure: Callable[[], list[float]] | None = field(default=None, repr=False, compare=False)
    # sha256 of the input bytes the board was given and the TensorQuant they were quantized with (None: an
    # MLPerf Tiny run), so the outputs can be matched to an ``x`` (:meth:`ran_on`), as BoardPredictions' are.
    inputs_sha256: str | None = None
    input_quant: Any = None
    # One id per benchmark run: the history counts a result judged by several assert_budget calls once.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12], compare=False)

    def ran_on(self, x) -> bool | None:
        """Whether ``outputs`` are of inputs ``x``; ``None`` when the result does not say (MLPerf Tiny)."""
        if self.inputs_sha256 is None or self.input_quant is None:
            return None
        from pytest_tinyml.board.samples import inputs_fingerprint

        try:
            return inputs_fingerprint(x, self.input_quant) == self.inputs_sha256
        except Exception:  # inputs that cannot even be quantized like these are not these inputs
            return False

    @property
    def where(self) -> str:
        """``"device"`` (a real board) or ``"sim"`` (the host simulator)."""
        return where_of(self.identity, self.info)

    @property
    def arena_kb(self) -> float | None:
        return None if self.arena_bytes is None else self.arena_bytes / 1024

    def summary(self) -> str:
        """One line for logs and failure messages.

        Example:
            >>> from pytest_tinyml.latency import LatencyStats
            >>> BoardResult(LatencyStats.from_samples([5.0]), 100, {"where": "device", "chip": "esp32s3"},
            ...             None, 1, 0).summary()
            'esp32s3 (device): median 5 us over 1 runs (p90 5, max 5), arena 100 B'
        """
        chip = self.info.get("chip", "board")
        lat = self.latency_us
        arena = "?" if self.arena_bytes is None else f"{self.arena_bytes} B"
        return (
            f"{chip} ({self.where}): median {lat.median:.0f} us over {lat.n} runs "
            f"(p90 {lat.p90:.0f}, max {lat.max:.0f}), arena {arena}"
        )


@dataclass(frozen=True)
class BoardPredictions:
    """What one ``Board.predict`` call read back: output 0 of every input sample, as the board computed it.

    ``outputs`` is a float numpy array (first axis = input sample) dequantized with the model's output
    :class:`~pytest_tinyml.tflite.quant.TensorQuant` (``output_quant``); ``raw_outputs`` holds the integers the
    board sent. ``inputs_sha256`` fingerprints the quantized input bytes the board was given, so a check can
    tell whether these are the outputs of a given ``x`` (:meth:`ran_on`). ``batches`` lists the samples per
    batch (``tinyml-load batch`` + ``tinyml-predict``; one per sample on a firmware older than protocol 1.2).
    ``where`` is ``"device"`` or ``"sim"``; ``identity`` says which board it was.

    Example:
        >>> p = BoardPredictions(outputs=None, raw_outputs=None, output_quant=None, input_quant=None,
        ...                      inputs_sha256="", model_sha256="ab" * 32, info={"where": "sim"}, batches=(256, 44))
        >>> p.where, p.samples
        ('sim', 300)
    """

    outputs: Any
    raw_outputs: Any
    output_quant: Any
    input_quant: Any  # TensorQuant the float inputs were quantized with
    inputs_sha256: str
    model_sha256: str | None
    info: dict[str, Any]
    batches: tuple[int, ...] = ()
    invoke_us: int | None = None  # sum of the invokes' own times (the board's timer), None when not reported
    identity: Any = None
    log: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        """``"device"`` (a real board) or ``"sim"`` (the host simulator)."""
        return where_of(self.identity, self.info)

    @property
    def samples(self) -> int:
        return sum(self.batches)

    def ran_on(self, x) -> bool:
        """Whether these are the outputs of inputs ``x`` (float: quantized as they were; or the tensor's dtype).

        Example:
            >>> predictions.ran_on(x_test[:300])  # doctest: +SKIP
            True
        """
        from pytest_tinyml.board.samples import inputs_fingerprint

        try:
            return inputs_fingerprint(x, self.input_quant) == self.inputs_sha256
        except Exception:  # inputs that cannot even be quantized like these are not these inputs
            return False
