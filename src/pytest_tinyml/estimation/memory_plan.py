"""The arena's graph and memory plan: what TFLite Micro's planner places and where, redone in Python.

:func:`read_memory_graph` reads the tensors (bytes, whether the arena holds them, quantization channels) and
operators (tensor indices, convolution options) of a model's first subgraph with the one flatbuffer reader;
:func:`scratch_requests` lists the scratch buffers kernels request in Prepare (TFLite Micro's reduce kernels,
and esp-tflite-micro's ESP-NN wrappers on a chip, sized by :mod:`pytest_tinyml.espnn`'s rules);
:func:`plan_head` is TFLite Micro's greedy memory plan over tensor lifetimes and those buffers: the arena's
head, which it reproduces to the byte on the measured models (``tests/test_estimate_arena.py``).

Example:
    >>> graph = read_memory_graph("kws_int8.tflite")  # doctest: +SKIP
    >>> plan_head(graph, scratch_requests(graph, "esp32s3"))  # doctest: +SKIP
    28688
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["MemoryGraph", "Node", "Scratch", "Tensor", "plan_head", "read_memory_graph", "scratch_requests"]

ALIGN = 16  # MicroArenaBufferAlignment(): every planned buffer's size is rounded up to it
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "uint32": 4, "uint8": 1, "int8": 1,
                "int16": 2, "uint16": 2, "int64": 8, "uint64": 8, "float64": 8, "bool": 1, "complex64": 8,
                "complex128": 16}


def _up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ---------------------------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Tensor:
    """A tensor as TFLite Micro's allocator sees it: ``planned`` if the arena holds it (not constant, not a
    variable, not empty); ``channels``: quantization scales (0 when not quantized)."""

    shape: tuple
    dtype: str
    bytes: int
    planned: bool
    channels: int


@dataclass(frozen=True)
class Node:
    """One operator: its name, tensor indices (-1: omitted input) and the options the rules read."""

    op: str
    inputs: tuple
    outputs: tuple
    options: dict


@dataclass(frozen=True)
class MemoryGraph:
    """The first subgraph's tensors, operators and I/O tensor indices. ``as_dict``/``from_dict`` round-trip
    it through JSON (the test data keeps the measured models' graphs this way)."""

    tensors: tuple
    nodes: tuple
    inputs: tuple
    outputs: tuple

    def as_dict(self) -> dict:
        return {"tensors": [asdict(t) | {"shape": list(t.shape)} for t in self.tensors],
                "nodes": [asdict(n) | {"inputs": list(n.inputs), "outputs": list(n.outputs)} for n in self.nodes],
                "inputs": list(self.inputs), "outputs": list(self.outputs)}

    @classmethod
    def from_dict(cls, data: dict) -> MemoryGraph:
        return cls(tuple(Tensor(**(t | {"shape": tuple(t["shape"])})) for t in data["tensors"]),
                   tuple(Node(n["op"], tuple(n["inputs"]), tuple(n["outputs"]), dict(n["options"]))
                         for n in data["nodes"]),
                   tuple(data["inputs"]), tuple(data["outputs"]))


def read_memory_graph(model_like) -> MemoryGraph:
    """The graph the arena depends on, read with the one flatbuffer reader (:mod:`pytest_tinyml.tflite.schema`).

    Example:
        >>> graph = read_memory_graph("kws_int8.tflite")  # doctest: +SKIP
        >>> [n.op for n in graph.nodes][:2]  # doctest: +SKIP
        ['CONV_2D', 'DEPTHWISE_CONV_2D']
    """
    from pytest_tinyml.runtime import load
    from pytest_tinyml.tflite import schema

    artifact = load(model_like)
    fb = schema.schema()
    model = schema.read_model(artifact.content, name=artifact.name)
    op_names = schema.enum_names(fb.BuiltinOperator)
    dtypes = schema.dtype_names()
    paddings = schema.enum_names(fb.Padding)
    with schema.guarded(artifact.name, "the tensors and operators"):
        graph = model.Subgraphs(0)
        buffers = model.BuffersLength()
        tensors = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            shape = tuple(int(t.Shape(k)) for k in range(t.ShapeLength()))
            dtype = dtypes.get(t.Type(), "?")
            elements = 1
            for d in shape:
                elements *= max(d, 0)
            buffer = int(t.Buffer())
            data = model.Buffers(buffer) if 0 < buffer < buffers else None
            constant = data is not None and (data.DataLength() > 0 or data.Offset() > 1)
            nbytes = elements * _DTYPE_BYTES.get(dtype, 1)
            quant = t.Quantization()
            channels = quant.ScaleLength() if quant is not None and quant.ZeroPointLength() > 0 else 0
            tensors.append(Tensor(shape, dtype, nbytes, not constant and not t.IsVariable() and nbytes > 0,
                                  int(channels)))
        codes = [op_names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "?")
                 for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
        nodes = []
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            name = codes[op.OpcodeIndex()]
            options = {}
            kind = {"CONV_2D": fb.Conv2DOptions, "DEPTHWISE_CONV_2D": fb.DepthwiseConv2DOptions}.get(name)
            table = op.BuiltinOptions()
            if kind is not None and table is not None:
                parsed = kind()
                parsed.Init(table.Bytes, table.Pos)
                options = {"stride": [int(parsed.StrideH()), int(parsed.StrideW())],
                           "dilation": [int(parsed.DilationHFactor()), int(parsed.DilationWFactor())],
                           "padding": paddings.get(parsed.Padding(), "?")}
                if name == "DEPTHWISE_CONV_2D":
                    options["depth_multiplier"] = int(parsed.DepthMultiplier())
            nodes.append(Node(name, tuple(int(op.Inputs(j)) for j in range(op.InputsLength())),
                              tuple(int(op.Outputs(j)) for j in range(op.OutputsLength())), options))
        return MemoryGraph(tuple(tensors), tuple(nodes), tuple(int(graph.Inputs(i)) for i in range(graph.InputsLength())),
                           tuple(int(graph.Outputs(i)) for i in range(graph.OutputsLength())))


# ---------------------------------------------------------------------------------------------- scratch


@dataclass(frozen=True)
class Scratch:
    """One scratch buffer a kernel requests in Prepare: the operator's index, the bytes and who asks."""

    node: int
    bytes: int
    source: str


def _leading_padding(graph: MemoryGraph, node: Node) -> tuple:
    """TFLite Micro's computed leading padding (height, width) of a convolution: half the total for SAME."""
    if node.options.get("padding") != "SAME":
        return 0, 0
    (_, in_h, in_w, _), (_, out_h, out_w, _) = graph.tensors[node.inputs[0]].shape, graph.tensors[node.outputs[0]].shape
    f_h, f_w = graph.tensors[node.inputs[1]].shape[1:3]
    (s_h, s_w), (d_h, d_w) = node.options["stride"], node.options["dilation"]
    pad_h = max((out_h - 1) * s_h + (f_h - 1) * d_h + 1 - in_h, 0) // 2
    pad_w = max((out_w - 1) * s_w + (f_w - 1) * d_w + 1 - in_w, 0) // 2
    return pad_h, pad_w


def _espnn_scratch(graph: MemoryGraph, index: int, node: Node, chip: str) -> int:
    """What esp-tflite-micro's wrapper of this op requests on ``chip`` (0: nothing)."""
    from pytest_tinyml import espnn

    first = graph.tensors[node.inputs[0]] if node.inputs and node.inputs[0] >= 0 else None
    if first is None or first.dtype != "int8":
        return 0
    if node.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(first.shape) == 4:
        # The wrappers request for any int8 input (dilated ones too: Eval then runs the reference kernel).
        out = graph.tensors[node.outputs[0]].shape
        f_h, f_w = graph.tensors[node.inputs[1]].shape[1:3]
        common = {"input_hwc": tuple(first.shape[1:4]), "filter_hw": (f_h, f_w),
                  "stride_hw": tuple(node.options["stride"]), "padding_hw": _leading_padding(graph, node)}
        if node.op == "CONV_2D":
            return espnn.conv_scratch_bytes(chip, output_hwc=tuple(out[1:4]), **common)
        return espnn.depthwise_scratch_bytes(chip, output_hw=tuple(out[1:3]),
                                             multiplier=node.options.get("depth_multiplier", 1), **common)
    if node.op == "SOFTMAX" and graph.tensors[node.outputs[0]].dtype == "int8":
        # The wrapper reads dims[1] as the width; a rank-1 input has none (read as its only dimension here).
        shape = first.shape
        return espnn.softmax_scratch_bytes(chip, width=shape[1] if len(shape) > 1 else shape[0])
    return 0


def _reference_scratch(graph: MemoryGraph, node: Node) -> list:
    """Scratch buffers of TFLite Micro's own reduce kernels (the others the zoo uses request none)."""
    if node.op not in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") or len(node.inputs) < 2:
        return []
    data, axis, out = (graph.tensors[i] for i in (node.inputs[0], node.inputs[1], node.outputs[0]))
    axes, outputs = 1, 1
    for d in axis.shape:
        axes *= max(d, 0)
    for d in out.shape:
        outputs *= max(d, 0)
    sizes = []
    if node.op in ("MEAN", "SUM") and data.dtype in ("int8", "int16"):
        sizes.append(4 * outputs)  # the accumulator
    sizes += [4 * len(data.shape), 4 * axes]  # index iterator, resolved axes
    return [s for s in sizes if s > 0]


def scratch_requests(graph: MemoryGraph, target: str | None = None) -> list:
    """Every scratch buffer requested in Prepare, in request order: TFLite Micro's reference kernels', and with
    ``target`` ESP-NN's (esp-tflite-micro's wrappers, :func:`pytest_tinyml.espnn.conv_scratch_bytes` ...).

    Example:
        >>> [s.bytes for s in scratch_requests(read_memory_graph(cnn_int8), "esp32s3")]  # doctest: +SKIP
        [848, 960]
    """
    from pytest_tinyml import espnn

    chip = None if target is None else espnn.scratch_chip(target)
    requests = []
    for index, node in enumerate(graph.nodes):
        requests += [Scratch(index, size, f"tflm {node.op.lower()}") for size in _reference_scratch(graph, node)]
        size = _espnn_scratch(graph, index, node, chip) if chip else 0
        if size > 0:
            requests.append(Scratch(index, size, f"esp-nn {node.op.lower()} ({chip})"))
    return requests


# ---------------------------------------------------------------------------------------------- the plan


def _buffers(graph: MemoryGraph, scratch: list) -> list:
    """(aligned size, first use, last use) of every buffer the planner places, tensors first then scratch."""
    first = [-1] * len(graph.tensors)
    last = [-1] * len(graph.tensors)
    for t in graph.inputs:
        first[t] = 0 if first[t] == -1 else first[t]
        last[t] = 0
    for step, node in enumerate(graph.nodes, start=1):
        for t in node.outputs:
            first[t] = step if first[t] == -1 else first[t]
        for t in (*node.inputs, *node.outputs):
            if t >= 0:
                last[t] = step
    end = len(graph.nodes)
    for t in graph.outputs:
        first[t] = end if first[t] == -1 else first[t]
        last[t] = end
    buffers = [(_up(t.bytes, ALIGN), first[i], last[i]) for i, t in enumerate(graph.tensors) if t.planned]
    return buffers + [(_up(s.bytes, ALIGN), s.node + 1, s.node + 1) for s in scratch]


def plan_head(graph: MemoryGraph, scratch: list = ()) -> int:
    """The memory plan's size: TFLite Micro's greedy planner (largest buffer first, ties in reverse order of
    addition; each at the lowest offset clear of every buffer alive at the same time).

    Example:
        >>> plan_head(read_memory_graph("kws_int8.tflite"))  # doctest: +SKIP
        16000
    """
    buffers = _buffers(graph, list(scratch))
    order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i][0])  # stable, as its bubble sort
    placed = []  # (offset, buffer index), by offset
    for i in order:
        size, first, last = buffers[i]
        offset = 0
        for other_offset, j in placed:
            other_size, other_first, other_last = buffers[j]
            if other_first > last or first > other_last:
                continue
            if other_offset - offset >= size:
                break
            offset = max(offset, other_offset + other_size)
        placed.append((offset, i))
        placed.sort(key=lambda p: p[0])
    return max((offset + buffers[i][0] for offset, i in placed), default=0)
