"""Layer by layer: each Keras layer's float activation against its tensor in the int8 graph.

The float side is a Keras sub-model that outputs every layer; the int8 side is LiteRT with
``experimental_preserve_all_tensors=True`` on its reference kernels (bit-exact with TFLite Micro), or TFLite
Micro's own ``kPreserveAllTensors``. Per layer: SNR (dB) of the whole tensor and the median over channels,
cosine, max error in quantization steps, share clipped at qmin/qmax, int8 levels used.

**Mapping rule (float layer -> tflite tensor).** The converter names each op's output tensor after the Keras
ops it fused, ``<model>/<layer>_<n>/<op>`` joined by ``;`` (e.g. ``functional_1/dense_1/MatMul;...Relu``). A
layer maps to the last op output (graph order) whose name has a path component that is the layer's name plus
``_<n>`` (Keras 3's scope) or, failing that, the bare name (tf_keras), and whose shape (without batch) equals
the layer's output shape. The
model's outputs map to the graph's output tensors by position (the converter names those after the
signature). Limits: a layer fused into the next op's output (BatchNorm before ReLU, an activation folded into
Dense) maps to nothing, and so does an identity at inference (Dropout); a layer whose name is a component of
another layer's scope could match the wrong tensor when shapes agree too; a model whose tensors were renamed
(not converted from Keras) maps only its outputs. Every unmapped layer is listed with the reason: "fused into
'X''s tensor" when a mapped tensor also names it, "identity at inference", or no counterpart.

Example:
    >>> map_layers([("dense", (16,))], [(5, "functional_1/dense_1/MatMul;functional_1/dense_1/Relu", (16,))], [])
    {'dense': 5}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from pytest_tinyml import metrics

__all__ = ["LayerError", "QuantizedGraph", "first_divergent", "input_findings", "map_layers", "per_layer"]

# A layer "diverges" when its SNR falls this far below the best seen before it (dB) and below LOW_DB;
# the first row (the input) when it starts below LOW_DB. A healthy int8 layer sits at 30..50 dB.
JUMP_DB = 10.0
LOW_DB = 20.0
# x uses fewer int8 input levels than this (and fewer than half its own distinct values): flagged.
FEW_LEVELS = 32
# Channel ranges this many times the median channel's: an outlier that sets the per-tensor scale.
OUTLIER_RATIO = 30.0
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


# ---------------------------------------------------------------------------------------------- input


def input_findings(x: np.ndarray, spec) -> tuple[list, LayerError | None]:
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


def tensor_error(layer: str, name: str, f: np.ndarray, q: np.ndarray, spec) -> LayerError:
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


def _mentions(tensor_name: str, layer_name: str) -> bool:
    parts = [part for piece in tensor_name.split(";") for part in piece.split("/")]
    return any(part == layer_name or _SUFFIX.sub("", part) == layer_name for part in parts)


def _fused_into(layer_name: str, ops: list, mapping: dict) -> str | None:
    """The mapped layer whose tensor also names ``layer_name`` (e.g. a BatchNormalization folded into the
    ReLU after it), or None."""
    owners = {index: name for name, index in mapping.items()}
    for index, tensor, *_ in ops:
        if index in owners and _mentions(tensor, layer_name):
            return owners[index]
    return None


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


class QuantizedGraph:
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
        # The int8 grid x lands on: the input itself, or the QUANTIZE right after a float input.
        self.quantized_input = self.specs[self.input_index]
        for op in self.lite._get_ops_details():
            if op.get("op_name") == "DELEGATE":
                continue
            if (op["op_name"] == "QUANTIZE" and not self.quantized_input.quantized
                    and self.input_index in list(op["inputs"])):
                self.quantized_input = self.specs[op["outputs"][0]]
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


def keras_layers(model) -> list:
    """``[(layer, output shape without batch)]`` of layers with one tensor output, in model order."""
    result = []
    for layer in model.layers:
        output = getattr(layer, "output", None)
        if output is None or isinstance(output, (list, tuple, dict)) or type(layer).__name__ == "InputLayer":
            continue
        result.append((layer, tuple(int(d) for d in output.shape[1:])))
    return result


def float_activations(model, layers: list, x: np.ndarray) -> list:
    import keras

    probe = keras.Model(model.inputs, [layer.output for layer, _ in layers])
    outputs = probe.predict(x, verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def per_layer(model, graph: QuantizedGraph, x: np.ndarray) -> tuple[list, list, int]:
    """LayerError rows (graph order) for the Keras layers, notes on what could not be compared, and how many
    samples were compared."""
    layers = keras_layers(model)
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
    floats = float_activations(model, layers, x)
    order = {index: k for k, (index, _, _, _) in enumerate(graph.ops)}
    rows = []
    for (layer, _), activation in zip(layers, floats, strict=True):
        index = mapping.get(layer.name)
        if index is None:
            kind = type(layer).__name__
            owner = _fused_into(layer.name, graph.ops, mapping)
            why = ("identity at inference" if kind in ("Dropout", "GaussianNoise", "SpatialDropout2D") else
                   f"fused into {owner!r}'s tensor" if owner else
                   "no counterpart: no tensor of its shape is named after it (folded into weights?)")
            rows.append((math.inf, LayerError(layer.name, None, note=why)))
            continue
        spec = graph.specs[index]
        if not spec.quantized:
            rows.append((order.get(index, math.inf), LayerError(layer.name, spec.name, note=f"{spec.dtype} tensor")))
            continue
        error = tensor_error(layer.name, spec.name, activation, raw[index], spec)
        rows.append((order.get(index, len(order)), error))
    # Graph order for the mapped rows; unmapped layers keep their model position after the last mapped one.
    mapped = sorted((r for r in rows if r[1].tensor is not None), key=lambda r: r[0])
    result, k = [], 0
    for _, row in rows:
        if row.tensor is None:
            result.append(row)
        else:
            result.append(mapped[k][1])
            k += 1
    return result, notes, len(x)


def first_divergent(rows: list) -> str | None:
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
