"""Why a quantized model strays from its float reference: the input range first, then layer by layer.

:func:`diagnose` answers the question a failed parity or accuracy check leaves open: *where* does int8 go
wrong? In this order:

1. **Input and calibration.** ``x`` quantized with the model's input scale: how many of the 256 int8 levels
   it uses and which share is clipped at qmin/qmax. A model calibrated on 0..255 and fed 0..1 uses 3 levels;
   that is the first line of the diagnosis, before anything else.
2. **Layer by layer.** Every Keras layer that has a counterpart tensor in the quantized graph: the float
   activation (a Keras sub-model that outputs every layer) against the dequantized int8 tensor (LiteRT with
   ``experimental_preserve_all_tensors=True`` on its reference kernels, which TFLite Micro's match bit for bit;
   ``engine="tflm"`` reads TFLite Micro's own ``kPreserveAllTensors`` instead). Per layer: SNR (dB) of the
   whole tensor and the median over channels, cosine, max error in quantization steps, share clipped at
   qmin/qmax, int8 levels used. The first layer where the error jumps is marked, by its Keras name.
3. **Known causes matched on evidence**: one outlier channel crushing a per-tensor activation scale,
   saturated calibration (values pinned at qmin/qmax, TF#52854), reference-vs-optimized rounding (1 LSB
   on MEAN/ADD, tflite-micro#3252).

**Mapping rule (float layer -> tflite tensor).** The converter names each op's output tensor after the Keras
ops it fused, ``<model>/<layer>_<n>/<op>`` joined by ``;`` (e.g. ``functional_1/dense_1/MatMul;...Relu``). A
layer maps to the last op output (graph order) whose name has a path component that is the layer's name plus
``_<n>`` (Keras 3's scope) or, failing that, the bare name (tf_keras), and whose shape (without batch) equals
the layer's output shape. The
model's outputs map to the graph's output tensors by position (the converter names those after the
signature). Limits: a layer fused into the next op's output (BatchNorm before ReLU, an activation folded into
Dense) maps to nothing, and so does an identity at inference (Dropout); a layer whose name is a component of
another layer's scope could match the wrong tensor when shapes agree too; a model whose tensors were renamed
(not converted from Keras) maps only its outputs. Every unmapped layer is listed with the reason.

A board result as the candidate is compared on the outputs only (host TFLite Micro kernels against the
device); the firmware protocol has no command to read intermediate tensors back, so per-layer on the device
is not done.

Example:
    >>> d = diagnose(float_model, int8_artifact, ds.x_test[:64])  # doctest: +SKIP
    >>> print(d.text())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from pytest_tinyml import metrics
from pytest_tinyml.errors import ConfigError

__all__ = ["Diagnosis", "LayerError", "diagnose"]

# A layer "diverges" when its SNR falls this far below the best seen before it (dB) and below LOW_DB;
# the first row (the input) when it starts below LOW_DB. A healthy int8 layer sits at 30..50 dB.
JUMP_DB = 10.0
LOW_DB = 20.0
# x uses fewer int8 input levels than this (and fewer than half its own distinct values): flagged.
FEW_LEVELS = 32
# Channel ranges this many times the median channel's: an outlier that sets the per-tensor scale.
OUTLIER_RATIO = 30.0
MAX_SAMPLES = 64
# Float activations of every layer are held at once: at most this many values (~160 MB of float64 in the
# comparison) however large the model, by comparing fewer samples.
MAX_ACTIVATION_VALUES = 20_000_000


@dataclass(frozen=True)
class LayerError:
    """The error of one quantized tensor against its float activation."""

    layer: str  # Keras layer name ("input" for the model input)
    tensor: str | None  # tflite tensor name, None when the layer has no counterpart
    snr_db: float | None = None  # whole tensor
    channel_snr_db: float | None = None  # median over channels (last axis), dead channels left out
    cosine: float | None = None
    max_error_steps: float | None = None
    clipped: float | None = None  # share of values the int8 range cut off at qmin/qmax
    levels: int | None = None  # distinct int8 values used, of 256
    outlier: str | None = None  # "channel 3 spans ±312, 280x the median channel": evidence, when present
    note: str = ""  # why there is no counterpart, or what is special

    @property
    def score(self) -> float | None:
        """The figure the jump is judged on: the median channel SNR (an outlier channel hides the others'
        error in the whole-tensor SNR), else the whole-tensor SNR."""
        return self.channel_snr_db if self.channel_snr_db is not None else self.snr_db


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


# ---------------------------------------------------------------------------------------------- input


def _input_findings(x: np.ndarray, spec) -> tuple[list, LayerError | None]:
    """The input row and, when x uses few levels or is clipped, the lines that lead the failure."""
    if spec is None or not spec.quantized:
        return [], None
    q = spec.quantize(x)
    info = np.iinfo(spec.dtype)
    low, high = (info.min - spec.zero_point) * spec.scale, (info.max - spec.zero_point) * spec.scale
    levels = int(np.unique(q).size)
    clipped = float(np.mean((x < low - spec.scale) | (x > high + spec.scale)))
    dequantized = spec.dequantize(q)
    row = LayerError("input", spec.name, snr_db=metrics.snr_db(x, dequantized), channel_snr_db=None,
                     cosine=metrics.cosine_similarity(x, dequantized),
                     max_error_steps=float(np.max(np.abs(x - dequantized)) / spec.scale), clipped=clipped,
                     levels=levels)
    lead = []
    distinct = int(np.unique(x).size)
    span = f"x is in {_num(float(x.min()))}..{_num(float(x.max()))}"
    calibrated = f"the model was calibrated on values in {_num(low)}..{_num(high)}"
    if levels < FEW_LEVELS and distinct >= 2 * levels:
        lead.append(f"x uses {levels} of {info.max - info.min + 1} input levels: {calibrated}, {span} "
                    f"(input step {spec.scale:.4g}); scale x like the representative data, or re-calibrate on data "
                    "scaled like x")
    if clipped > 0.01:
        lead.append(f"{clipped:.1%} of x lies outside the input's int8 range and is clipped at qmin/qmax: {calibrated}, "
                    f"{span}; scale x like the representative data")
    return lead, row


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


# ---------------------------------------------------------------------------------------------- layers


def _tensor_error(layer: str, name: str, f: np.ndarray, q: np.ndarray, spec) -> LayerError:
    d = spec.dequantize(q).astype(np.float64).reshape(f.shape)
    f = f.astype(np.float64)
    info = np.iinfo(spec.dtype)
    scale = spec.scale
    low, high = (info.min - spec.zero_point) * scale, (info.max - spec.zero_point) * scale
    # Beyond one step past the range: rounding alone never gets there (a softmax's 0.999 is not clipped).
    clipped = float(np.mean((f < low - scale) | (f > high + scale)))
    channels = f.reshape(-1, f.shape[-1]) if f.ndim >= 2 else f.reshape(-1, 1)
    dq = d.reshape(channels.shape)
    per_channel = []
    for c in range(channels.shape[1]):
        if float(np.sum(channels[:, c] ** 2)) > 0.0:  # a dead (all-zero) channel has no SNR
            per_channel.append(metrics.snr_db(channels[:, c], dq[:, c]))
    finite = [v for v in per_channel if not math.isinf(v)] or per_channel
    channel_snr = float(np.median(finite)) if finite else None
    outlier = None
    ranges = np.max(np.abs(channels), axis=0)
    live = ranges[ranges > 0]
    if live.size >= 4:
        median = float(np.median(live))
        top = int(np.argmax(ranges))
        if median > 0 and ranges[top] / median >= OUTLIER_RATIO:
            outlier = (f"channel {top} spans ±{_num(float(ranges[top]))}, {ranges[top] / median:.0f}x the median "
                       f"channel's ±{_num(median)}")
    return LayerError(layer, name, snr_db=metrics.snr_db(f, d), channel_snr_db=channel_snr,
                      cosine=metrics.cosine_similarity(f, d),
                      max_error_steps=float(np.max(np.abs(f - d))) / scale if scale else None,
                      clipped=clipped, levels=int(np.unique(q).size), outlier=outlier)


_SUFFIX = re.compile(r"_\d+$")


def map_layers(layers: list, ops: list, outputs: list) -> dict:
    """``{layer name: tensor index}`` by the rule in the module docstring.

    ``layers``: ``[(name, output shape without batch)]`` in model order; ``ops``: ``[(tensor index, name,
    shape without batch)]`` of op outputs in graph order; ``outputs``: ``[(layer name, tensor index)]`` for the
    model outputs. A name component ``dense_1`` is first read as Keras 3's scope of layer ``dense`` (the layer
    name plus ``_<n>``), then as layer ``dense_1`` itself (tf_keras keeps names bare); the first reading
    whose layer has the tensor's shape wins.

    Example:
        >>> map_layers([("dense", (32,)), ("dense_1", (16,))],
        ...            [(4, "sequential_1/dense_1/MatMul;sequential_1/dense_1/Relu", (32,)),
        ...             (5, "sequential_1/dense_1_2/MatMul;sequential_1/dense_1_2/Relu", (16,))], [])
        {'dense': 4, 'dense_1': 5}
    """
    shapes = {name: tuple(shape) for name, shape in layers}
    mapping = {}
    for index, tensor, shape in ops:
        for piece in tensor.split(";"):
            for part in piece.split("/"):
                stripped = _SUFFIX.sub("", part)
                for name in ((stripped, part) if stripped != part else (part,)):
                    if shapes.get(name) == tuple(shape):
                        mapping[name] = index
                        break
    for name, index in outputs:
        mapping[name] = index
    # A tensor named by several layers holds the last one's output (the others were fused into it).
    owner = {}
    for name, _ in layers:
        if name in mapping:
            owner[mapping[name]] = name
    return {name: mapping[name] for name, _ in layers if name in mapping and owner.get(mapping[name]) == name}


class _Graph:
    """The quantized graph on the host, every tensor kept: LiteRT reference kernels or TFLite Micro."""

    def __init__(self, artifact, engine: str):
        from pytest_tinyml.runtime import isolation

        self.artifact, self.engine = artifact, engine
        isolation.vet(artifact, "litert" if engine == "litert" else "tflm")
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # LiteRT always describes the graph (names, shapes, quantization); TFLite Micro may run it.
        self.lite = Interpreter(model_content=bytes(artifact.content), experimental_preserve_all_tensors=True,
                                experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self.lite.allocate_tensors()
        details = {d["index"]: d for d in self.lite.get_tensor_details()}
        from pytest_tinyml.tflite.quant import TensorQuant

        self.specs = {i: TensorQuant.from_details(d) for i, d in details.items()}
        self.input_index = self.lite.get_input_details()[0]["index"]
        self.output_indices = [d["index"] for d in self.lite.get_output_details()]
        self.ops = []
        for op in self.lite._get_ops_details():
            if op.get("op_name") == "DELEGATE":
                continue
            for index in op["outputs"]:
                spec = self.specs[index]
                self.ops.append((index, spec.name, tuple(spec.shape[1:]), op["op_name"]))
        self.tflm = None
        if engine == "tflm":
            from tflite_micro.python.tflite_micro import runtime

            from pytest_tinyml.runtime.tflm import DEFAULT_ARENA

            self.tflm = runtime.Interpreter.from_bytes(
                bytes(artifact.content), arena_size=max(DEFAULT_ARENA, 10 * artifact.size),
                intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)

    def run(self, x: np.ndarray, indices: list) -> dict:
        """Raw int8 values of ``indices`` for every sample of ``x`` (one invoke per sample)."""
        spec = self.specs[self.input_index]
        collected = {i: [] for i in indices}
        for sample in x:
            q = spec.quantize(sample.reshape(spec.shape))
            if self.tflm is not None:
                self.tflm.set_input(q, 0)
                self.tflm.invoke()
                for i in indices:
                    collected[i].append(np.asarray(self.tflm.GetTensor(i, 0)["tensor_data"]).reshape(self.specs[i].shape))
            else:
                self.lite.set_tensor(self.input_index, q)
                self.lite.invoke()
                for i in indices:
                    collected[i].append(self.lite.get_tensor(i).copy())
        return {i: np.concatenate(v, axis=0) for i, v in collected.items()}


def _keras_layers(model) -> list:
    """``[(layer, output shape without batch)]`` of layers with one tensor output, in model order."""
    result = []
    for layer in model.layers:
        output = getattr(layer, "output", None)
        if output is None or isinstance(output, (list, tuple, dict)) or type(layer).__name__ == "InputLayer":
            continue
        result.append((layer, tuple(int(d) for d in output.shape[1:])))
    return result


def _float_activations(model, layers: list, x: np.ndarray) -> list:
    import keras

    probe = keras.Model(model.inputs, [layer.output for layer, _ in layers])
    outputs = probe.predict(x, verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _per_layer(model, graph: _Graph, x: np.ndarray) -> tuple[list, list, int]:
    """LayerError rows (graph order) for the Keras layers, notes on what could not be compared, and how many
    samples were compared."""
    layers = _keras_layers(model)
    notes = []
    per_sample = sum(int(np.prod(shape)) for _, shape in layers) or 1
    if len(x) * per_sample > MAX_ACTIVATION_VALUES:
        keep = max(1, MAX_ACTIVATION_VALUES // per_sample)
        notes.append(f"per layer on the first {keep} of {len(x)} samples (the activations of all layers are held at once)")
        x = x[:keep]
    output_layers = []
    for i, tensor in enumerate(model.outputs[: len(graph.output_indices)]):
        owner = next((layer.name for layer, _ in layers if layer.output is tensor), None)
        if owner is not None:
            output_layers.append((owner, graph.output_indices[i]))
    mapping = map_layers([(layer.name, shape) for layer, shape in layers],
                         [(i, name, shape) for i, name, shape, _ in graph.ops], output_layers)
    indices = sorted(set(mapping.values()))
    raw = graph.run(x, indices)
    floats = _float_activations(model, layers, x)
    order = {index: k for k, (index, _, _, _) in enumerate(graph.ops)}
    rows = []
    for (layer, _), activation in zip(layers, floats, strict=True):
        index = mapping.get(layer.name)
        if index is None:
            kind = type(layer).__name__
            why = ("identity at inference" if kind in ("Dropout", "GaussianNoise", "SpatialDropout2D") else
                   "no counterpart: fused into a later op, or no tensor named after it")
            rows.append((math.inf, LayerError(layer.name, None, note=why)))
            continue
        spec = graph.specs[index]
        if not spec.quantized:
            rows.append((order.get(index, math.inf), LayerError(layer.name, spec.name, note=f"{spec.dtype} tensor")))
            continue
        error = _tensor_error(layer.name, spec.name, activation, raw[index], spec)
        rows.append((order.get(index, len(order)), error))
    # Graph order for the mapped rows; unmapped layers keep their model position after the last mapped one.
    mapped = sorted((r for r in rows if r[1].tensor is not None), key=lambda r: r[0])
    result, k = [], 0
    for position, row in rows:
        if row.tensor is None:
            result.append(row)
        else:
            result.append(mapped[k][1])
            k += 1
    return result, notes, len(x)


def _first_divergent(rows: list) -> str | None:
    best = None
    for row in rows:
        score = row.score
        if row.tensor is None or score is None:
            continue
        if best is None:
            if score < LOW_DB:
                return row.layer
            best = score
            continue
        if score < best - JUMP_DB and score < LOW_DB:
            return row.layer
        best = max(best, score) if not math.isinf(score) else best
    return None


# ---------------------------------------------------------------------------------------------- hints


def _hints(rows: list, first: str | None, graph: _Graph | None, x: np.ndarray) -> list:
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


def _rounding_hint(graph: _Graph, x: np.ndarray) -> str | None:
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
    graph = _Graph(quantized.artifact, engine) if quantized is not None else None
    if graph is not None:
        spec = graph.specs[graph.input_index]
        from pytest_tinyml.runtime.batching import fit_batch

        every = fit_batch(every, spec, quantized.name)
        inputs = every[: len(inputs)]
        result.lead, input_row = _input_findings(every, spec)
        if input_row is not None:
            result.layers.append(input_row)
    if device:
        result.notes.append(_device_note(ref, cand, inputs))
        if ref.kind == "tflite":
            result.hints += _esp_nn_hints(ref.artifact, cand.obj)
    elif ref.kind == "keras" and graph is not None:
        rows, notes, result.samples = _per_layer(ref.obj, graph, inputs)
        result.layers += rows
        result.notes += notes
    elif graph is not None:
        result.notes.append("per-layer comparison needs the float Keras model as the reference")
    result.first_divergent = _first_divergent(result.layers)
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
    return str(chip).lower().replace("-", "") if chip else None


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


# ---------------------------------------------------------------------------------------------- classes


def per_class_lines(labels, ref_out, cand_out, *, top: int = 5) -> list:
    """Per-class accuracy of both sides for the classes that moved most, and the confusions that grew.

    Example:
        >>> import numpy as np
        >>> lines = per_class_lines([0, 1, 1], np.eye(2)[[0, 1, 1]], np.eye(2)[[0, 0, 1]])
        >>> lines[0], lines[-1]
        ('  per class (the 1 that moved most):', '  newly confused: 1 -> 0 (1x)')
    """
    from pytest_tinyml._failure import table

    y = np.asarray(labels).reshape(-1).astype(np.int64)
    ref_top = metrics.predicted_classes(np.asarray(ref_out), "reference")
    cand_top = metrics.predicted_classes(np.asarray(cand_out), "candidate")
    classes = np.unique(y)
    stats = []
    for c in classes:
        mask = y == c
        r, k = float(np.mean(ref_top[mask] == c)), float(np.mean(cand_top[mask] == c))
        stats.append((k - r, int(c), r, k, int(mask.sum())))
    stats.sort()
    moved = [s for s in stats if s[0] != 0][:top] or stats[:top]
    rows = [[str(c), str(n), f"{r:.3f}", f"{k:.3f}", f"{d:+.3f}"] for d, c, r, k, n in moved]
    lines = [f"  per class (the {len(rows)} that moved most):",
             *table(["class", "samples", "reference", "candidate", "change"], rows)]
    confusions = {}
    for truth, a, b in zip(y, ref_top, cand_top, strict=True):
        if a == truth and b != truth:
            confusions[(int(truth), int(b))] = confusions.get((int(truth), int(b)), 0) + 1
    if confusions:
        worst = sorted(confusions.items(), key=lambda kv: -kv[1])[:3]
        lines.append("  newly confused: " + ", ".join(f"{t} -> {p} ({n}x)" for (t, p), n in worst))
    return lines
