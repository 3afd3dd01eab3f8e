"""Device figures without a board: the 32-bit arena and a per-chip latency estimate.

``estimate(model, target="esp32s3")`` returns an :class:`Estimate`: ``arena_bytes`` (the 32-bit device arena on
that target, from the host's measured arena and the model's graph, :mod:`pytest_tinyml.estimation.arena`),
``latency_ms`` with an honest ``latency_ms_range`` (0.7x to 1.4x the estimate: it holds every held-out
published figure) and ``per_op`` (op, output shape, MACs, estimated ms, kernel path on that chip), from the
per-op cost model of :mod:`pytest_tinyml.estimation.latency`. Every figure is labelled ``where = "estimate"``:
reports and history never mix it with a measurement. ``benchmarks/estimate.py`` prints how good it is.

The arena is the firmware's: TFLite Micro with esp-tflite-micro's ESP-NN kernels for that chip, including the
scratch buffers they request in Prepare (esp32s3's conv and depthwise conv stage filters and padded inputs
there; every chip's int8 softmax asks for 4 bytes per row element; esp32 and esp32c3 run the same generic C
code, so they get the same figure).

Example:
    >>> est = estimate(int8_artifact, target="esp32s3")  # doctest: +SKIP
    >>> est.arena_bytes, round(est.latency_ms, 1), est.where  # doctest: +SKIP
    (35888, 6.3, 'estimate')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_tinyml.errors import ConfigError

__all__ = ["TARGETS", "Estimate", "OpEstimate", "chip_of", "estimate"]

WHERE = "estimate"
TARGETS = ("esp32", "esp32s3", "esp32c3")


@dataclass(frozen=True)
class OpEstimate:
    """One operator's estimate: ``kernel`` is its path on the chip (``esp-nn optimized``, ``tflm reference``...)."""

    index: int
    op: str
    shape: tuple
    macs: int
    ms: float
    kernel: str


@dataclass(frozen=True)
class Estimate:
    """Estimated device figures of one model on one chip (``where`` is always ``"estimate"``)."""

    model: str
    target: str
    cpu_mhz: float
    arena_bytes: int
    latency_ms: float
    latency_ms_range: tuple
    per_op: list = field(default_factory=list)
    where: str = WHERE
    calibration: str | None = None  # "calibrated from N board runs ..." when a calibration file scaled it

    @property
    def arena_kb(self) -> float:
        return self.arena_bytes / 1024

    def summary(self) -> str:
        """A table a user reads.

        Example:
            >>> print(Estimate("m", "esp32s3", 240, 1128, 0.5, (0.35, 0.7)).summary().splitlines()[0])
            estimate of 'm' on esp32s3 at 240 MHz: arena 1128 bytes (32-bit), latency 0.50 ms (0.35 - 0.70) [where=estimate]
        """
        from pytest_tinyml._failure import table

        low, high = self.latency_ms_range
        head = (f"estimate of {self.model!r} on {self.target} at {self.cpu_mhz:g} MHz: arena {self.arena_bytes} bytes "
                f"(32-bit), latency {self.latency_ms:.2f} ms ({low:.2f} - {high:.2f}) [where={self.where}]")
        if self.calibration:
            head += f"\n{self.calibration}"
        rows = [[str(o.index), o.op, "x".join(map(str, o.shape)), f"{o.macs:,}", f"{o.ms:.3f}", o.kernel]
                for o in self.per_op]
        return "\n".join([head, *table(["#", "op", "output", "MACs", "ms", "kernel"], rows)]) if rows else head

    def as_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "per_op"}
        data["latency_ms_range"] = list(self.latency_ms_range)
        data["per_op"] = [vars(o) | {"shape": list(o.shape)} for o in self.per_op]
        return data


def _kernel_key(op, path: str, chip: str) -> str:
    """The cost model's key: ESP-NN's S3 SIMD convolution (input channels a multiple of 8) apart.

    ``CONV_2D/1x1`` is timed by the S3 rows of a 1x1, stride-1 convolution over 64 channels (ESP-NN's
    ``esp_nn_conv_s8_mult8_1x1_esp32s3``). Other convolutions over a multiple of 8 channels run ESP-NN's
    aligned SIMD path (``esp_nn_conv_s8_filter_aligned_input_padded_esp32s3`` in 1.2.3) and take the same
    per-MAC rate: an assumption, no published row times that path. Fewer or unaligned channels take the
    rate of the 3x3, 3-channel row (the im2col path in 1.2.3).
    """
    from pytest_tinyml.espnn import OPTIMIZED

    filt = op.inputs[1][0] if op.op == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] else None
    if chip == "esp32s3" and path == OPTIMIZED and filt is not None and len(filt) == 4:
        if filt[3] % 8 == 0:
            return "CONV_2D/1x1"
    return op.op


def _count(shape: tuple) -> int:
    count = 1
    for d in shape:
        count *= max(d, 1)
    return count


# Ops that only convert between the model's I/O type and int8 (float32 or uint8 I/O of an int8 model).
_IO_CASTS = ("QUANTIZE", "DEQUANTIZE")


def _refuse_non_int8(name: str, ops) -> None:
    """Every published figure the latency model is calibrated on times int8 kernels: refuse anything else.

    A float32, float16, int16x8 or hybrid op has no calibrated cost (ESP-NN has no such kernels and TFLite
    Micro's reference float kernels were never timed in the sources), so a figure for it would be a guess
    presented as an estimate.
    """
    for op in ops:
        if op.op in _IO_CASTS:
            continue
        types = {t[1] for t in (op.inputs[:1] + op.outputs) if t}
        if types - {"int8", "int32"}:
            raise ConfigError(
                f"estimate() covers int8 models only: model {name!r} op #{op.index} {op.op} computes in "
                f"{'/'.join(sorted(types - {'int8', 'int32'}))} (the latency model is calibrated on published int8 "
                "kernel timings only); convert with the int8 recipe (tinyml.convert(model, 'int8', "
                "representative=x)), or use assert_budget() without target= for the host's arena figure")


def chip_of(target) -> str:
    """The chip a ``target`` names, as boards report it (``"ESP32-S3"`` -> ``"esp32s3"``); ``ConfigError`` for a
    chip the estimate does not know. ``assert_budget`` matches a board's chip against it, so one spelling of a
    target never measures on the board while another falls back to the estimate.

    Example:
        >>> chip_of("ESP32-S3")
        'esp32s3'
    """
    from pytest_tinyml.board.identity import chip_name

    chip = chip_name(target)
    if chip not in TARGETS:
        raise ConfigError(f"no latency model for target {target!r}: estimate() knows {', '.join(TARGETS)} "
                          "(calibrated on published figures for those chips)")
    return chip


def estimate(model, target: str = "esp32s3", cpu_mhz: float | None = None, calibration="auto") -> Estimate:
    """Estimate the 32-bit arena and the latency of a model on an Espressif chip, without a board.

    ``model``: a ``TFLiteArtifact``, bytes or a ``.tflite`` path (an int8 TFLite Micro model). ``target``: one of
    :data:`TARGETS`. ``cpu_mhz``: the chip's clock (default: 240 for esp32 and esp32s3, 160 for esp32c3).
    ``calibration``: ``"auto"`` applies ``<cache dir>/calibration.json`` when it has the chip (written by
    ``pytest-tinyml estimate calibrate`` from your board runs; ``Estimate.calibration`` then says so), a path
    applies that file, ``None`` gives the uncalibrated model (:mod:`pytest_tinyml.estimation.calibration`).

    Example:
        >>> print(estimate("kws_int8.tflite", target="esp32c3").summary())  # doctest: +SKIP
    """
    from pytest_tinyml import analyze, espnn
    from pytest_tinyml.estimation import arena, latency
    from pytest_tinyml.runtime import load

    chip = chip_of(target)
    mhz = latency.CHIP_MHZ[chip] if cpu_mhz is None else cpu_mhz
    if not isinstance(mhz, (int, float)) or isinstance(mhz, bool) or not 1 <= mhz <= 1000:
        raise ConfigError(f"cpu_mhz={cpu_mhz!r} is not a CPU clock in MHz; give a number such as 240")
    artifact = load(model)
    ops = analyze.read_ops(artifact)[0]
    _refuse_non_int8(artifact.name, ops)
    paths = {p.index: p.path for p in espnn.esp_nn_paths(artifact, chip).ops}
    per_op = []
    for op in ops:
        path = paths.get(op.index, espnn.REFERENCE)
        shape = tuple(int(d) for d in (op.outputs[0][0] if op.outputs and op.outputs[0] else ()))
        in_shape = tuple(int(d) for d in (op.inputs[0][0] if op.inputs and op.inputs[0] else ()))
        elements = latency.work_elements(op.op, _count(in_shape), _count(shape))
        cycles = latency.op_cycles(_kernel_key(op, path, chip), op.macs, elements, chip, path)
        per_op.append(OpEstimate(op.index, op.op, shape, op.macs, cycles / (mhz * 1000), path))
    total = sum(o.ms for o in per_op)
    band = (total * latency.RANGE[0], total * latency.RANGE[1])
    result = Estimate(artifact.name, chip, float(mhz), arena.device_arena_of(artifact, chip), total, band, per_op)
    from pytest_tinyml.estimation import calibration as calibrations

    return calibrations.apply(result, calibrations.lookup(chip, calibration))
