"""What is inside a TFLite model: ops, MACs, flash, I/O quantization, TFLite Micro compatibility.

:func:`analyze` reads the flatbuffer in pure Python (the TFLite schema shipped with ``tflite-micro``), so a
malformed file raises :class:`~pytest_tinyml.errors.ModelLoadError` and never crashes the process. TFLite
Micro compatibility comes from the real runtime: each operator is looked up in the micro op resolver (see
:mod:`pytest_tinyml.runtime.microops`), and the whole model is loaded and invoked once in TFLite Micro.

For the firmware, :func:`export_c_array` writes ``model_data.cc``/``model_data.h`` and
:func:`op_resolver_snippet` the ``tflite::MicroMutableOpResolver<N>`` with exactly the ``Add...()`` calls
the model needs (both in :mod:`pytest_tinyml.c_export`).

Example:
    >>> from pytest_tinyml.analyze import analyze
    >>> info = analyze("build/mlp_int8.tflite")        # doctest: +SKIP
    >>> info.op_counts, info.macs_total, info.tflm.compatible      # doctest: +SKIP
    ({'FULLY_CONNECTED': 2, 'SOFTMAX': 1}, 2368, True)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from pytest_tinyml.c_export import export_c_array, op_resolver_snippet
from pytest_tinyml.errors import ModelLoadError, RuntimeCrash

__all__ = ["Analysis", "FlashBreakdown", "OpInfo", "TFLMCompat", "analyze", "export_c_array", "op_resolver_snippet"]


@dataclass(frozen=True)
class OpInfo:
    """One operator of the graph."""

    index: int
    subgraph: int
    op: str  # builtin name (FULLY_CONNECTED) or custom code
    custom: bool
    inputs: list  # [(shape, dtype)] of the operator's input tensors (None for omitted optional inputs)
    outputs: list
    macs: int  # multiply-accumulates per inference (batch as stored in the model, usually 1)
    weight_bytes: int  # bytes of constant tensors this operator reads


@dataclass(frozen=True)
class FlashBreakdown:
    """Where the flatbuffer's bytes go: constant tensor data, metadata, and the graph (everything else)."""

    total: int
    weights: int
    metadata: int
    graph: int

    @property
    def total_kb(self) -> float:
        return self.total / 1024


@dataclass(frozen=True)
class TFLMCompat:
    """TFLite Micro compatibility, as the runtime itself reported it."""

    compatible: bool
    missing_ops: list = field(default_factory=list)  # ops the micro op resolver lacks
    load_error: str | None = None  # why loading + one invoke failed, if it did

    def summary(self) -> str:
        if self.compatible:
            return "TFLite Micro: compatible (loaded and invoked with the micro kernels)"
        text = "TFLite Micro: NOT compatible"
        if self.missing_ops:
            text += f"; the micro op resolver lacks {', '.join(self.missing_ops)}"
        if self.load_error:
            text += f"; loading failed: {self.load_error.splitlines()[0]}"
        return text


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyze` found out about one model."""

    name: str
    sha256: str
    ops: list
    op_counts: dict
    macs_total: int
    flash: FlashBreakdown
    inputs: list  # TensorQuant(name, shape, dtype, scale, zero_point)
    outputs: list
    tflm: TFLMCompat | None

    @property
    def macs_by_op(self) -> dict:
        """Total MACs per operator type."""
        totals: Counter = Counter()
        for op in self.ops:
            totals[op.op] += op.macs
        return dict(totals)

    def to_dict(self) -> dict:
        """JSON-able view (for reports)."""
        data = asdict(self)
        data["inputs"] = [t._asdict() for t in self.inputs]
        data["outputs"] = [t._asdict() for t in self.outputs]
        return data

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [
            f"model {self.name!r} ({self.flash.total} bytes: weights {self.flash.weights}, graph {self.flash.graph}, "
            f"metadata {self.flash.metadata})",
            f"{'op':<28}{'count':>6}{'MACs':>12}",
        ]
        by_op = self.macs_by_op
        for op, count in sorted(self.op_counts.items(), key=lambda kv: -by_op.get(kv[0], 0)):
            lines.append(f"{op:<28}{count:>6}{by_op.get(op, 0):>12,}")
        lines.append(f"{'total':<28}{sum(self.op_counts.values()):>6}{self.macs_total:>12,}")
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                lines.append(f"{kind} {t.name}: {t.dtype}{list(t.shape)} scale={t.scale:g} zero_point={t.zero_point}")
        if self.tflm is not None:
            lines.append(self.tflm.summary())
        return "\n".join(lines)


def _prod(values) -> int:
    result = 1
    for v in values:
        result *= max(int(v), 1)  # -1 (dynamic batch) counts as one sample
    return result


def _macs(op: str, inputs: list, outputs: list, options) -> int:
    """Multiply-accumulates of one operator from its tensor shapes; 0 for ops without MACs (element-wise,
    pooling, reshapes)."""
    shape = [t[0] if t else None for t in inputs]
    out = outputs[0][0] if outputs and outputs[0] else None
    if out is None:
        return 0
    if op == "CONV_2D" and len(shape) > 1 and shape[1] and len(shape[1]) == 4:
        _, kh, kw, cin_per_group = shape[1]
        return _prod(out) * kh * kw * cin_per_group
    if op == "DEPTHWISE_CONV_2D" and len(shape) > 1 and shape[1] and len(shape[1]) == 4:
        _, kh, kw, _ = shape[1]
        return _prod(out) * kh * kw
    if op == "FULLY_CONNECTED" and len(shape) > 1 and shape[1] and len(shape[1]) == 2:
        return _prod(out) * shape[1][1]
    if op == "TRANSPOSE_CONV" and len(shape) > 2 and shape[1] and shape[2] and len(shape[1]) == 4:
        cout, kh, kw, _ = shape[1]
        return _prod(shape[2]) * kh * kw * cout
    if op == "BATCH_MATMUL" and shape and shape[0]:
        adj_x = bool(options.AdjX()) if options is not None else False
        depth = shape[0][-2] if adj_x and len(shape[0]) >= 2 else shape[0][-1]
        return _prod(out) * depth
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and shape and shape[0] and len(shape[0]) == 3:
        batch, steps = (shape[0][1], shape[0][0]) if options is not None and options.TimeMajor() else shape[0][:2]
        weights = sum(_prod(s) for s in shape[1:9] if s)  # input-to-gate and recurrent-to-gate matrices
        return _prod([batch, steps]) * weights
    return 0


def read_ops(model_like) -> tuple[list[OpInfo], FlashBreakdown]:
    """Operators with their MACs, and the flash breakdown, of a model (pure Python, no TFLite Micro).

    Example:
        >>> ops, flash = read_ops(artifact)            # doctest: +SKIP
        >>> [op.op for op in ops], flash.weights        # doctest: +SKIP
        (['FULLY_CONNECTED', 'FULLY_CONNECTED', 'SOFTMAX'], 2688)
    """
    from pytest_tinyml.runtime import load
    from pytest_tinyml.tflite import schema

    artifact = load(model_like)
    graph = schema.read_graph(artifact.content, name=artifact.name, model=artifact.model)
    sizes = graph.buffer_sizes
    ops = [
        OpInfo(o.index, o.subgraph, o.op, o.custom, o.inputs, o.outputs, _macs(o.op, o.inputs, o.outputs, o.options),
               sum(sizes[b] for b in o.const_buffers))
        for o in graph.operators
    ]
    weight_buffers = set().union(*(o.const_buffers for o in graph.operators))
    weights = sum(sizes[b] for b in weight_buffers - graph.metadata_buffers)
    metadata = sum(sizes[b] for b in graph.metadata_buffers if 0 <= b < len(sizes))
    total = artifact.size
    return ops, FlashBreakdown(total=total, weights=weights, metadata=metadata, graph=total - weights - metadata)


def tflm_compatibility(model_like) -> TFLMCompat:
    """Ask TFLite Micro itself: which ops its resolver lacks, and whether the model loads and runs.

    Example:
        >>> tflm_compatibility(artifact).compatible    # doctest: +SKIP
        True
    """
    from pytest_tinyml.runtime import isolation, load, microops

    artifact = load(model_like)
    ops, _ = read_ops(artifact)
    found = microops.supported([op.op for op in ops])
    missing = sorted(op for op, ok in found.items() if not ok)
    load_error = None
    try:
        if isolation.is_trusted(artifact):
            from pytest_tinyml.runtime import cstdio
            from pytest_tinyml.runtime.tflm import DEFAULT_ARENA, micro_error, new_interpreter, zero_inputs

            interpreter = new_interpreter(artifact.content, artifact.name, max(DEFAULT_ARENA, 10 * artifact.size))
            with cstdio.capture() as captured:
                try:
                    for index, value in enumerate(zero_inputs(interpreter, len(artifact.inputs))):
                        interpreter.set_input(value, index)
                    interpreter.invoke()
                    failure = None
                except RuntimeError as exc:  # invoke() of a trusted model failed
                    failure = exc
            if failure is not None:
                load_error = micro_error(f"TFLite Micro failed to invoke model {artifact.name!r}", failure,
                                         captured.text)
        else:
            isolation.vet(artifact, "tflm")
    except (ModelLoadError, RuntimeCrash) as exc:
        load_error = str(exc)
    return TFLMCompat(compatible=not missing and load_error is None, missing_ops=missing, load_error=load_error)


def analyze(model_like, *, tflm: bool = True) -> Analysis:
    """Ops with counts, MACs per op and in total, flash breakdown, I/O quantization and (``tflm=True``)
    TFLite Micro compatibility of a model (artifact, bytes, ``.tflite`` path or Keras model).

    Example:
        >>> report = analyze(int8_artifact)             # doctest: +SKIP
        >>> print(report.summary())                      # doctest: +SKIP
    """
    from pytest_tinyml.runtime import load

    artifact = load(model_like)
    ops, flash = read_ops(artifact)
    return Analysis(
        name=artifact.name,
        sha256=artifact.sha256,
        ops=ops,
        op_counts=dict(Counter(op.op for op in ops)),
        macs_total=sum(op.macs for op in ops),
        flash=flash,
        inputs=list(artifact.inputs),
        outputs=list(artifact.outputs),
        tflm=tflm_compatibility(artifact) if tflm else None,
    )
