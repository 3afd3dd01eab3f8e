"""The 32-bit device arena per target, from the host's (64-bit) TFLite Micro arena and the model's graph.

The device figure has the same definition as every arena figure (the smallest ``arena_size`` for which load,
``AllocateTensors`` and one ``Invoke`` pass), for the firmware's engine: TFLite Micro on a 32-bit chip with
esp-tflite-micro's ESP-NN kernels (``target="esp32"``, ``"esp32c3"``, ``"esp32s3"``) or with the reference
kernels (``target=None``). It is the largest of three needs, each the persistent tail plus what the arena's
head holds at that moment:

* ``activations``: the tail plus the memory plan (:mod:`pytest_tinyml.estimation.memory_plan`: TFLite
  Micro's greedy planner redone on the tensors' lifetimes and the scratch buffers the kernels request);
* ``planning``: while the plan is made, the scratch requests, one ``AllocationInfo`` per tensor and buffer
  and the planner's working arrays (40 bytes per planned buffer) sit above a tail that does not yet hold the
  input and output ``TfLiteTensor`` structs;
* ``prepare``: while each operator prepares, temporary ``TfLiteTensor`` structs (and quantization) for its
  tensors, above the tail allocated so far.

The persistent tail comes from the host's: its RecordingMicroAllocator counts the pointer-bearing structs
(:data:`STRUCT_BYTES`, exact sizes on both ABIs) and the kernels' op data (:data:`OP_DATA_DELTA`, bytes saved
per operator) and the allocator objects (:data:`TAIL_OBJECTS_DELTA`); the last two were fitted to a
``-m32`` build of esp-tflite-micro 1.4.0. ESP-NN's wrappers keep the reference op data plus one ``int``
(:data:`ESPNN_OP_DATA`), which the 16-byte alignment of persistent buffers absorbs on 32 bits; each scratch
buffer adds a 4-byte handle. The host's measured head (the reference-kernel plan, the same on both ABIs)
checks the Python plan on every model; a difference is carried to every target (``DeviceArena.plan_offset``).

``tests/data/arena32_espnn.json`` holds the measured minimum arenas of the zoo models, the suite's test models
and one-layer models for each esp32s3 scratch rule, with reference kernels and ESP-NN per chip;
``tests/test_estimate_arena.py`` checks the prediction on them (within 2%; the plan equals the head exactly).

Example:
    >>> from pytest_tinyml.estimation.arena import device_arena_of
    >>> device_arena_of(kws_int8, target="esp32s3")  # doctest: +SKIP
    35888
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tinyml.estimation.memory_plan import (
    ALIGN,
    MemoryGraph,
    Node,
    Tensor,
    plan_head,
    read_memory_graph,
    scratch_requests,
)

__all__ = ["DeviceArena", "MemoryGraph", "device_arena", "device_arena_of", "persistent_bytes",
           "plan_head", "read_memory_graph", "scratch_requests"]

# bytes on a 64-bit host -> bytes on a 32-bit device, per allocation of the RecordingMicroAllocator's category
STRUCT_BYTES = {
    "TfLiteEvalTensor data": (24, 12),
    "Persistent TfLiteTensor data": (64, 40),
    "Persistent TfLiteTensor quantization data": (16, 10),
    "NodeAndRegistration struct": (64, 32),
}
# Persistent op data: bytes saved per operator on 32 bits (conv and softmax: their op data structs, 16-byte
# aligned; FULLY_CONNECTED fitted).
OP_DATA_DELTA = {"FULLY_CONNECTED": 44, "SOFTMAX": 16, "CONV_2D": 16, "DEPTHWISE_CONV_2D": 16}
# SingleArenaBufferAllocator + MicroAllocator + GreedyMemoryPlanner in the tail, and the host's recording
# bookkeeping (the host measures through a RecordingMicroAllocator, the firmware uses a plain one). Fitted.
TAIL_OBJECTS_DELTA = 380

# esp-tflite-micro's ESP-NN wrappers keep the reference op data plus an int (the scratch buffer's index):
# (reference, ESP-NN) bytes on 32 bits. Persistent buffers are 16-byte aligned, so what the tail grows by is
# the aligned difference (0 for all three: 56 and 60 both take 64).
ESPNN_OP_DATA = {"CONV_2D": (56, 60), "DEPTHWISE_CONV_2D": (56, 60), "SOFTMAX": (56, 60)}

# 32-bit sizes of what the head holds while the model is prepared and planned (TFLite Micro 1.4.0).
TEMP_TENSOR = 40  # TfLiteTensor
AFFINE_QUANTIZATION = 12  # TfLiteAffineQuantization; + its zero-point TfLiteIntArray (4 + 4 per channel)
SCRATCH_REQUEST = 12  # internal::ScratchBufferRequest
REQUESTS_PER_OP = 12  # kMaxScratchBuffersPerOp: the head keeps room for that many more
ALLOCATION_INFO = 24  # AllocationInfo
PLANNER_PER_BUFFER = 40  # GreedyMemoryPlanner::per_buffer_size()
SCRATCH_HANDLE = 4  # ScratchBufferHandle, in the tail
# The interpreter's input / output TfLiteTensor* arrays: one 16-aligned persistent buffer each, 4 to 16 bytes
# of the tail depending on where it stands; the middle of that range.
POINTER_ARRAY = 10
SUBGRAPH_OFFSET = 4  # size_t per subgraph
HEAD_SLACK = 4  # the tail's alignment when the plan sets the size

def _up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ---------------------------------------------------------------------------------------------- the arena


@dataclass(frozen=True)
class DeviceArena:
    """The predicted 32-bit arena and its parts; ``bound`` names the need that sets it. ``plan_offset``: the
    host's measured head minus the Python plan of the same reference-kernel graph (0 when the plan is
    exact; otherwise the graph has something the plan does not know, and the offset is added to every head)."""

    arena_bytes: int
    target: str | None
    persistent: int
    head: int
    activations: int
    planning: int
    prepare: int
    scratch: tuple
    plan_offset: int = 0

    @property
    def bound(self) -> str:
        needs = {"activations": self.activations, "planning": self.planning, "prepare": self.prepare}
        return max(needs, key=needs.get)


def _quantization(tensor: Tensor) -> int:
    return AFFINE_QUANTIZATION + 4 + 4 * tensor.channels if tensor.channels else 0


def _prepare_persistent(graph: MemoryGraph, node: Node) -> int:
    """Persistent bytes a reference kernel allocates in Prepare (per-channel multipliers and shifts)."""
    if node.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(node.inputs) > 1:
        shape = graph.tensors[node.inputs[1]].shape
        channels = shape[0] if node.op == "CONV_2D" else shape[-1]
        return 2 * _up(4 * channels, ALIGN)
    if node.op == "FULLY_CONNECTED" and len(node.inputs) > 1 and graph.tensors[node.inputs[1]].channels > 1:
        return 2 * _up(4 * graph.tensors[node.inputs[1]].channels, ALIGN)
    return 0


def device_arena(graph: MemoryGraph, *, persistent: int, target: str | None = None,
                 host_head: int | None = None) -> DeviceArena:
    """The 32-bit arena of ``graph`` with reference kernels (``target=None``) or ESP-NN on ``target``.

    ``persistent``: the 32-bit tail with reference kernels (:func:`persistent_bytes`). ``host_head``: the
    host's measured head (the reference-kernel plan, the same on both ABIs), a check on the Python plan:
    a difference (an op whose scratch requests or aliasing the plan does not model) is carried over.

    Example:
        >>> device_arena(read_memory_graph(cnn_int8), persistent=1372, target="esp32s3").arena_bytes  # doctest: +SKIP
        2552
    """
    reference = scratch_requests(graph)
    scratch = scratch_requests(graph, target) if target else reference
    extra = len(scratch) - len(reference)
    tail = persistent + SCRATCH_HANDLE * extra
    if target:
        tail += sum(_up(espnn, ALIGN) - _up(ref, ALIGN) for node in graph.nodes
                    for ref, espnn in [ESPNN_OP_DATA.get(node.op, (0, 0))])
    offset = 0 if host_head is None else host_head - plan_head(graph, reference)
    head = plan_head(graph, scratch) + offset
    planned = sum(t.planned for t in graph.tensors) + len(scratch)
    io_structs = 2 * POINTER_ARRAY + sum(TEMP_TENSOR + _quantization(graph.tensors[t])
                                         for t in (*graph.inputs, *graph.outputs))
    # Before planning, the scratch handles (4-byte aligned) go below a 16-aligned tail (the kernels' persistent
    # buffers are 16-aligned); the planner's space ends at the 16-aligned address under them.
    tail_before_handles = tail - io_structs - SCRATCH_HANDLE * len(scratch)
    tail_at_planning = tail_before_handles + _up(SCRATCH_HANDLE * len(scratch), ALIGN)
    requests = _up((len(scratch) + REQUESTS_PER_OP) * SCRATCH_REQUEST, 4)
    # The planner's arrays take the 16-aligned space between the allocation infos and the tail.
    planning = (tail_at_planning + _up(PLANNER_PER_BUFFER * planned, ALIGN)
                + _up(requests + SUBGRAPH_OFFSET + ALLOCATION_INFO * (len(graph.tensors) + len(scratch)), ALIGN))
    later = sum(_prepare_persistent(graph, n) for n in graph.nodes)
    prepare, requested = 0, 0
    for index, node in enumerate(graph.nodes):
        later -= _prepare_persistent(graph, node)
        temporaries = sum(TEMP_TENSOR + _quantization(graph.tensors[t]) for t in (*node.inputs, *node.outputs) if t >= 0)
        held = _up((requested + REQUESTS_PER_OP) * SCRATCH_REQUEST, 4)
        prepare = max(prepare, tail_before_handles - later + held + temporaries)
        requested += sum(1 for s in scratch if s.node == index)
    activations = tail + head + HEAD_SLACK
    return DeviceArena(max(activations, planning, prepare), target, tail, head, activations, planning, prepare,
                       tuple(scratch), offset)


def persistent_bytes(*, tail: int, breakdown: dict, ops: dict, scratch_buffers: int = 0) -> int:
    """The 32-bit tail with reference kernels from the host's: ``tail`` bytes, ``breakdown`` category ->
    (used, requested, count) as the host's RecordingMicroAllocator reports, ``ops`` operator -> count,
    ``scratch_buffers`` the reference kernels' scratch requests (their 8-byte handles are 4 bytes on 32 bits).

    Example:
        >>> persistent_bytes(tail=1496, ops={"FULLY_CONNECTED": 2, "SOFTMAX": 1},
        ...                  breakdown={"TfLiteEvalTensor data": (192, 192, 8), "NodeAndRegistration struct": (192, 192, 3),
        ...                             "Persistent TfLiteTensor data": (128, 128, 2),
        ...                             "Persistent TfLiteTensor quantization data": (64, 64, 4)})
        748
    """
    saved = 0
    for category, (_host_size, device_size) in STRUCT_BYTES.items():
        used, _requested, count = breakdown.get(category, (0, 0, 0))
        saved += used - device_size * count
    saved += sum(OP_DATA_DELTA.get(op, 0) * n for op, n in ops.items())
    return tail - saved - TAIL_OBJECTS_DELTA - (8 - SCRATCH_HANDLE) * scratch_buffers


def device_arena_of(model_like, target: str | None = None) -> int:
    """The 32-bit arena of a model on ``target`` (``None``: reference kernels), from the host's measured arena
    report (:func:`pytest_tinyml.runtime.tflm.arena`) and the model's graph.

    Example:
        >>> device_arena_of(int8_artifact, target="esp32s3")  # doctest: +SKIP
        35888
    """
    from collections import Counter

    from pytest_tinyml.runtime import load, tflm

    artifact = load(model_like)
    report = tflm.arena(artifact)
    graph = read_memory_graph(artifact)
    breakdown = {k: (v.used, v.requested, v.count) for k, v in report.breakdown.items()}
    persistent = persistent_bytes(tail=report.allocated_tail_bytes or 0, breakdown=breakdown,
                                  ops=dict(Counter(n.op for n in graph.nodes)),
                                  scratch_buffers=len(scratch_requests(graph)))
    return device_arena(graph, persistent=persistent, target=target,
                        host_head=report.allocated_head_bytes).arena_bytes
