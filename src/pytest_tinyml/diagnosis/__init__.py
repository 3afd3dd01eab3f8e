"""Why a quantized model strays from its float reference: the input range first, then layer by layer.

:func:`diagnose` answers the question a failed parity or accuracy check leaves open: *where* does int8 go
wrong? In this order:

1. **Input and calibration.** ``x`` quantized with the model's input scale: how many of the 256 int8 levels
   it uses and which share is clipped at qmin/qmax (for a float-input model, on the grid of the QUANTIZE
   after the input). A model calibrated on 0..255 and fed 0..1 uses 2 or 3 levels; that is the first line
   of the diagnosis, before anything else.
2. **Layer by layer.** Every Keras layer that has a counterpart tensor in the quantized graph: the float
   activation (a Keras sub-model that outputs every layer) against the dequantized int8 tensor (LiteRT with
   ``experimental_preserve_all_tensors=True`` on its reference kernels, which TFLite Micro's match bit for bit;
   ``engine="tflm"`` reads TFLite Micro's own ``kPreserveAllTensors`` instead). Per layer: SNR (dB) of the
   whole tensor and the median over channels, cosine, max error in quantization steps, share clipped at
   qmin/qmax, int8 levels used. The first layer where the error jumps is marked, by its Keras name: the
   first whose median channel SNR is under 20 dB and 10 dB below the best before it (the input row: under
   20 dB). The median over channels, not the whole tensor, because one outlier channel's energy hides the
   others' error in the whole-tensor SNR.
3. **Known causes matched on evidence**: one outlier channel crushing a per-tensor activation scale,
   saturated calibration (values pinned at qmin/qmax, TF#52854), reference-vs-optimized rounding (1 LSB
   on MEAN/ADD, tflite-micro#3252).

The mapping rule from Keras layers to tflite tensors and its limits: :mod:`pytest_tinyml.diagnosis.layers`.

A board result as the candidate is compared on the outputs only (host TFLite Micro kernels against the
device); the firmware protocol has no command to read intermediate tensors back, so per-layer on the device
is not done. On an Espressif chip the ESP-NN lint (:mod:`pytest_tinyml.espnn`) adds which ops ESP-NN runs and
the shapes that hit a known ESP-NN bug.

Example:
    >>> d = diagnose(float_model, int8_artifact, ds.x_test[:64])  # doctest: +SKIP
    >>> print(d.text())  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pytest_tinyml.diagnosis.classes import per_class_lines
from pytest_tinyml.diagnosis.layers import (
    LayerError,
    QuantizedGraph,
    first_divergent,
    input_findings,
    map_layers,
    per_layer,
)
from pytest_tinyml.errors import ConfigError

__all__ = ["Diagnosis", "LayerError", "diagnose", "failure_lines", "map_layers", "per_class_lines"]

MAX_SAMPLES = 64


@dataclass
class Diagnosis:
    """What :func:`diagnose` found. ``lead`` lines go first in a failure, ``text()`` is the full report."""

    reference: str
    candidate: str
    samples: int
    engine: str = "LiteRT reference kernels"
    lead: list = field(default_factory=list)  # input / calibration findings: the first lines of a failure
    layers: list = field(default_factory=list)  # LayerError in graph order, input first
    first_divergent: str | None = None
    hints: list = field(default_factory=list)  # known causes matched on evidence
    notes: list = field(default_factory=list)  # scope: what was not compared, and why

    def table(self) -> list:
        from pytest_tinyml._failure import fmt, table

        rows = []
        for e in self.layers:
            if e.tensor is None:
                rows.append(["", e.layer, "-", "-", "-", "-", "-", "-", e.note])
                continue
            mark = ">>" if e.layer == self.first_divergent else ""
            rows.append([mark, e.layer, fmt(e.snr_db, "{:.1f}"), fmt(e.channel_snr_db, "{:.1f}"),
                         fmt(e.cosine, "{:.4f}"), fmt(e.max_error_steps, "{:.1f}"), fmt(e.clipped, "{:.1%}"),
                         f"{e.levels}/256" if e.levels is not None else "-", e.note])
        headings = ["", "layer", "SNR dB", "ch SNR dB", "cosine", "max err steps", "clipped", "levels", "note"]
        if not any(r[-1] for r in rows):
            headings, rows = headings[:-1], [r[:-1] for r in rows]
        return table(headings, rows)

    def short(self) -> list:
        """The lines an assertion puts into its failure: first divergent layer, the per-layer table, scope."""
        lines = []
        if self.first_divergent is not None:
            row = next(e for e in self.layers if e.layer == self.first_divergent)
            lines.append(f"  first divergent layer: {self.first_divergent!r} (median channel SNR "
                         f"{_db(row.score)} dB{', ' + row.outlier if row.outlier else ''})")
        elif any(e.tensor for e in self.layers[1:]):
            lines.append("  no single layer stands out: the error grows gradually through the graph")
        if self.layers:
            lines += ["  per layer (float activation vs dequantized int8 tensor from "
                      f"{self.engine}, {self.samples} samples; >> marks the first divergent):", *self.table()]
        lines += [f"  {note}" for note in self.notes]
        return lines

    def __str__(self) -> str:
        return self.text()

    def text(self) -> str:
        """The whole diagnosis as a user reads it."""
        lines = [*self.lead, f"diagnosis of {self.candidate} against {self.reference}", *self.short()]
        if self.hints:
            lines += ["likely causes:"] + [f"  - {h}" for h in self.hints]
        return "\n".join(lines)


def _db(value) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.1f}"


# ---------------------------------------------------------------------------------------------- hints


def _hints(rows: list, first: str | None, graph: QuantizedGraph | None, x: np.ndarray) -> list:
    hints = []
    row = next((r for r in rows if r.layer == first), None)
    if row is not None and row.outlier:
        hints.append(
            f"per-tensor activations crushed by an outlier channel: in {first!r} {row.outlier}; one int8 scale "
            f"serves every channel, so the others get few levels ({row.levels}/256 used in all). Bound the "
            "activation (BatchNormalization, ReLU6 or an activity regularizer), or train with QAT")
    # A cause sits upstream of the first divergent layer (or anywhere when none stands out).
    upstream = rows[: rows.index(row) + 1] if row is not None else rows
    saturated = [r for r in upstream if r.tensor is not None and r.layer != "input" and (r.clipped or 0) > 0.01]
    if saturated:
        worst = max(saturated, key=lambda r: r.clipped)
        hints.append(
            f"saturated calibration (TF#52854): {worst.clipped:.1%} of {worst.layer!r}'s float values lie outside "
            "its calibrated int8 range and are pinned at qmin/qmax; calibrate on more, and more varied, "
            "representative samples drawn like x")
    if graph is not None:
        rounding = _rounding_hint(graph, x)
        if rounding:
            hints.append(rounding)
    return hints


def _rounding_hint(graph: QuantizedGraph, x: np.ndarray) -> str | None:
    """LiteRT's default (optimized) kernels against the reference kernels on the outputs: 1-2 LSB apart on a
    graph with MEAN or ADD is rounding, not a bug (tflite-micro#3252)."""
    ops = {op for _, _, _, op in graph.ops}
    if not ops & {"MEAN", "ADD"}:
        return None
    from pytest_tinyml.runtime.litert import LiteRTRunner

    optimized = LiteRTRunner(graph.artifact).predict_raw(x)
    reference = LiteRTRunner(graph.artifact, reference_kernels=True).predict_raw(x)
    optimized = optimized[0] if isinstance(optimized, list) else optimized
    reference = reference[0] if isinstance(reference, list) else reference
    diff = np.abs(np.asarray(optimized, np.int64) - np.asarray(reference, np.int64))
    if diff.max() == 0:
        return None
    where = "/".join(sorted(ops & {"MEAN", "ADD"}))
    return (f"reference-vs-optimized rounding: LiteRT's optimized kernels and the reference kernels (TFLite "
            f"Micro's) differ by up to {int(diff.max())} LSB on {diff.astype(bool).mean():.1%} of the outputs "
            f"({where} in the graph; tflite-micro#3252): compare a board with reference kernels, and budget "
            "max_error_steps >= 1 for such graphs")


# ---------------------------------------------------------------------------------------------- entry


def diagnose(reference, candidate, x, *, engine: str = "litert", max_samples: int = MAX_SAMPLES) -> Diagnosis:
    """Where the candidate's int8 graph strays from the float reference on ``x``.

    ``reference``: the float Keras model (per-layer comparison needs it; a TFLite reference gives the input
    findings and the output comparison). ``candidate``: the int8 TFLite model (artifact, bytes, path) or a
    board result. ``engine``: ``"litert"`` (reference kernels, bit-exact with TFLite Micro) or ``"tflm"``
    (TFLite Micro itself) for the intermediate tensors. The first ``max_samples`` samples of ``x`` are used.

    Example:
        >>> print(diagnose(float_model, int8_artifact, ds.x_test).text())  # doctest: +SKIP
        x uses 3 of 256 input levels: the model was calibrated on values in 0..255, x is in 0..1 ...
    """
    from pytest_tinyml import _model_io

    if engine not in ("litert", "tflm"):
        raise ConfigError(f"engine must be 'litert' or 'tflm', got {engine!r}")
    ref = _model_io.resolve(reference, "reference")
    cand = _model_io.resolve(candidate, "candidate", device_ok=True)
    inputs = _model_io.as_inputs(x)
    device = cand.kind == "device"
    quantized = cand if cand.kind == "tflite" else (ref if ref.kind == "tflite" else None)
    every = inputs
    if not device:
        inputs = inputs[: max(1, int(max_samples))]
    result = Diagnosis(ref.describe(), cand.describe(), len(inputs),
                       engine="LiteRT reference kernels" if engine == "litert" else "TFLite Micro")
    graph = QuantizedGraph(quantized.artifact, engine) if quantized is not None else None
    if graph is not None:
        spec = graph.specs[graph.input_index]
        from pytest_tinyml.runtime.batching import fit_batch

        every = fit_batch(every, spec, quantized.name)
        inputs = every[: len(inputs)]
        result.lead, input_row = input_findings(every, graph.quantized_input)
        if input_row is not None:
            result.layers.append(input_row)
    if device:
        result.notes.append(_device_note(ref, cand, inputs))
        if ref.kind == "tflite":
            result.hints += _esp_nn_hints(ref.artifact, cand.obj)
    elif ref.kind == "keras" and graph is not None:
        rows, notes, result.samples = per_layer(ref.obj, graph, inputs)
        result.layers += rows
        result.notes += notes
    elif graph is not None:
        result.notes.append("per-layer comparison needs the float Keras model as the reference")
    result.first_divergent = first_divergent(result.layers)
    result.hints = _hints(result.layers, result.first_divergent, graph if not device else None, inputs) + result.hints
    return result


def _device_note(ref, cand, inputs) -> str:
    """Host TFLite Micro kernels (LiteRT reference kernels, bit-exact) against the board, on the outputs."""
    from pytest_tinyml import _model_io

    text = ("board result: compared on the outputs only (host reference kernels vs device); the firmware "
            "protocol has no command to read intermediate tensors back, so per-layer on the device is not done")
    if ref.kind != "tflite":
        return text
    host = _model_io.raw_outputs_of(ref, inputs, reference_kernels=True)
    board = _model_io.raw_outputs_of(cand, inputs)
    if host is None or board is None or np.size(host) != np.size(board):
        return text
    diff = np.abs(np.asarray(host, np.int64).reshape(-1) - np.asarray(board, np.int64).reshape(-1))
    return text + (f"; outputs differ by up to {int(diff.max())} LSB on {diff.astype(bool).mean():.1%} of the values"
                   if diff.max() else "; outputs are bit-identical")


def _board_chip(result) -> str | None:
    identity = getattr(result, "identity", None)
    chip = getattr(identity, "chip", None) or (getattr(result, "info", None) or {}).get("chip")
    from pytest_tinyml.board.identity import chip_name

    return chip_name(chip) if chip else None


def _esp_nn_hints(artifact, result) -> list:
    """On an Espressif chip: ops whose shape hits a known ESP-NN bug, matched by the ESP-NN lint."""
    from pytest_tinyml import espnn

    chip = _board_chip(result)
    if chip not in espnn.CHIPS:
        return []
    plan = espnn.esp_nn_paths(artifact, chip)
    hints = [f"op #{o.index} {o.op} ({o.reason}) on {chip} hits {', '.join(o.bugs)}: "
             + "; ".join(espnn.KNOWN_BUGS[b] for b in o.bugs) for o in plan.bugs]
    built = getattr(getattr(result, "identity", None), "esp_nn_version", None)
    read = espnn.SOURCES["esp-nn"]["version"].split()[0]
    if built and str(built).lstrip("v").split("~")[0] != read:
        hints.append(f"the board's firmware links esp-nn {built}; the lint's rules were read from esp-nn {read}: "
                     "kernel choices and bugs may differ")
    optimized = sorted({o.op for o in plan.ops if o.path == espnn.OPTIMIZED})
    if optimized:
        hints.append(f"on {chip} ESP-NN runs {', '.join(optimized)}; its kernels match the reference bit for bit "
                     "unless the firmware sets CONFIG_NN_SKIP_NUDGE (then +-1 LSB); "
                     f"tinyml.esp_nn_paths(model, {chip!r}).summary() lists every op's kernel")
    return hints


def failure_lines(reference, candidate, x) -> tuple[list, list, list]:
    """``(lead, context, hints)`` for an assertion's failure text; a diagnosis that cannot run says why in
    one context line instead of hiding the failure it was asked to explain."""
    try:
        d = diagnose(reference, candidate, x)
    except Exception as exc:  # the diagnosis must never mask the failure itself
        return [], [f"  (diagnosis unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:160]})"], []
    return d.lead, d.short(), d.hints
