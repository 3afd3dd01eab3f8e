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


def _options(graph_op, op: str, fb):
    table = graph_op.BuiltinOptions()
    if table is None:
        return None
    classes = {"BATCH_MATMUL": fb.BatchMatMulOptions, "UNIDIRECTIONAL_SEQUENCE_LSTM": fb.UnidirectionalSequenceLSTMOptions}
    if op not in classes:
        return None
    options = classes[op]()
    options.Init(table.Bytes, table.Pos)
    return options


def _read(artifact):
    """Ops and flash breakdown from the flatbuffer (pure Python)."""
    from pytest_tinyml.runtime import flatbuffer

    fb = flatbuffer.schema()
    name = artifact.name
    model = flatbuffer.read_model(artifact.content, name=name)
    op_names = flatbuffer.enum_names(fb.BuiltinOperator)
    dtype_names = {v: k.lower() for v, k in flatbuffer.enum_names(fb.TensorType).items()}
    with flatbuffer.guarded(name, "the operator codes"):
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = op_names.get(builtin) == "CUSTOM"
            label = (code.CustomCode() or b"?").decode("utf-8", "replace") if custom else op_names.get(builtin, f"BUILTIN_{builtin}")
            codes.append((label, custom))
    with flatbuffer.guarded(name, "the buffers"):
        buffer_sizes = []
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            size = buffer.DataLength() or (buffer.Size() if buffer.Offset() > 1 else 0)
            buffer_sizes.append(int(size))
        metadata_buffers = {int(model.Metadata(i).Buffer()) for i in range(model.MetadataLength())}
    ops, weight_buffers = [], set()
    with flatbuffer.guarded(name, "the subgraphs"):
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            n_tensors = graph.TensorsLength()

            def tensor(index: int, graph=graph, n_tensors=n_tensors):
                if index < 0:
                    return None, 0  # an omitted optional input
                if index >= n_tensors:
                    raise ModelLoadError(f"model {name!r}: an operator uses tensor {index} of {n_tensors}; the file is corrupted")
                t = graph.Tensors(index)
                shape = tuple(int(t.Shape(k)) for k in range(t.ShapeLength()))
                buffer = int(t.Buffer())
                const = buffer if 0 < buffer < len(buffer_sizes) and buffer_sizes[buffer] > 0 else None
                return (shape, dtype_names.get(t.Type(), str(t.Type()))), const

            for k in range(graph.OperatorsLength()):
                graph_op = graph.Operators(k)
                index = graph_op.OpcodeIndex()
                if index >= len(codes):
                    raise ModelLoadError(f"model {name!r}: operator {k} uses opcode {index} of {len(codes)}; the file is corrupted")
                label, custom = codes[index]
                inputs, consts = [], set()
                for j in range(graph_op.InputsLength()):
                    info, const = tensor(int(graph_op.Inputs(j)))
                    inputs.append(info)
                    if const is not None:
                        consts.add(const)
                outputs = [tensor(int(graph_op.Outputs(j)))[0] for j in range(graph_op.OutputsLength())]
                macs = _macs(label, inputs, outputs, _options(graph_op, label, fb))
                weight_buffers |= consts
                ops.append(OpInfo(k, s, label, custom, inputs, outputs, macs, sum(buffer_sizes[b] for b in consts)))
    weights = sum(buffer_sizes[b] for b in weight_buffers - metadata_buffers)
    metadata = sum(buffer_sizes[b] for b in metadata_buffers if 0 <= b < len(buffer_sizes))
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
    ops, _ = _read(artifact)
    found = microops.supported([op.op for op in ops])
    missing = sorted(op for op, ok in found.items() if not ok)
    load_error = None
    try:
        if isolation.is_trusted(artifact):
            from pytest_tinyml.runtime.tflm import DEFAULT_ARENA, new_interpreter, zero_inputs

            interpreter = new_interpreter(artifact.content, artifact.name, max(DEFAULT_ARENA, 10 * artifact.size))
            for index, value in enumerate(zero_inputs(interpreter, artifact.content)):
                interpreter.set_input(value, index)
            interpreter.invoke()
        else:
            isolation.vet(artifact, "tflm")
    except (ModelLoadError, RuntimeCrash) as exc:
        load_error = str(exc)
    except RuntimeError as exc:  # invoke() of a trusted model failed
        load_error = f"TFLite Micro failed to invoke model {artifact.name!r}: {exc}"
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
    ops, flash = _read(artifact)
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
