"""The 32-bit device arena, derived from the host's (64-bit) TFLite Micro arena and its allocation breakdown.

TFLite Micro lays out the same arena on a 32-bit microcontroller as on a 64-bit host, except for the
structures that hold pointers. The host's RecordingMicroAllocator counts them, so the device figure is the
host's ``arena_bytes`` (:func:`pytest_tinyml.runtime.tflm.arena`, the one arena figure) minus:

* the exact size difference of the fixed structs, per allocation counted: ``TfLiteEvalTensor`` (24 -> 12
  bytes), ``TfLiteTensor`` (64 -> 40), its quantization data (16 -> 10), ``NodeAndRegistration`` (64 -> 32);
* each kernel's persistent op data (:data:`OP_DATA_DELTA`, bytes per operator, alignment included);
* the allocator objects in the tail, and the host's RecordingMicroAllocator bookkeeping
  (:data:`TAIL_OBJECTS_DELTA`);
* when temporaries of AllocateTensors, not the planned activations, set the arena's high-water mark: the
  ``AllocationInfo`` array of the memory planner (8 bytes less per tensor, :data:`TEMP_DELTA_PER_TENSOR`).

Struct sizes are the C layouts on both ABIs; the op-data and tail figures were fitted to, and are checked
against, a 32-bit (``-m32``) build of esp-tflite-micro 1.4.0 (``tests/test_estimate_arena.py`` pins the
measured minimum arenas of the zoo models).

Example:
    >>> from pytest_tinyml.estimation.arena import device_arena_of
    >>> device_arena_of(kws_int8)  # doctest: +SKIP
    23152
"""

from __future__ import annotations

# bytes on a 64-bit host -> bytes on a 32-bit device, per allocation of the RecordingMicroAllocator's category
STRUCT_BYTES = {
    "TfLiteEvalTensor data": (24, 12),
    "Persistent TfLiteTensor data": (64, 40),
    "Persistent TfLiteTensor quantization data": (16, 10),
    "NodeAndRegistration struct": (64, 32),
}
# Persistent op data: bytes saved per operator on 32 bits (pointers in OpDataConv, OpDataFullyConnected, ...).
OP_DATA_DELTA = {"FULLY_CONNECTED": 32, "SOFTMAX": 24, "CONV_2D": 16, "DEPTHWISE_CONV_2D": 16, "MAX_POOL_2D": 8}
# SingleArenaBufferAllocator + MicroAllocator + GreedyMemoryPlanner in the tail, and the host's recording
# bookkeeping (the host measures through a RecordingMicroAllocator, the firmware uses a plain one).
TAIL_OBJECTS_DELTA = 392
# AllocationInfo (size_t, void**, 3 ints, bool: 32 -> 24 bytes) per tensor, less a fixed 32.
TEMP_DELTA_PER_TENSOR = 8
TEMP_DELTA_FIXED = 32
# A 32-bit arena whose planned activations set its size needs 4 bytes over head + tail (tail alignment).
HEAD_SLACK = 4


def device_arena(*, host_arena: int, head: int, tail: int, breakdown: dict, ops: dict) -> int:
    """The 32-bit arena in bytes from the host's figures.

    ``breakdown``: category -> (used, requested, count) as the host's RecordingMicroAllocator reports;
    ``ops``: operator name -> count.

    Example:
        >>> device_arena(host_arena=1896, head=32, tail=1496, ops={"FULLY_CONNECTED": 2, "SOFTMAX": 1},
        ...              breakdown={"TfLiteEvalTensor data": (192, 192, 8), "NodeAndRegistration struct": (192, 192, 3),
        ...                         "Persistent TfLiteTensor data": (128, 128, 2),
        ...                         "Persistent TfLiteTensor quantization data": (64, 64, 4)})
        1120
    """
    saved = 0
    tensors = 0
    for category, (_host_size, device_size) in STRUCT_BYTES.items():
        used, _requested, count = breakdown.get(category, (0, 0, 0))
        saved += used - device_size * count
        if category == "TfLiteEvalTensor data":
            tensors = count
    saved += sum(OP_DATA_DELTA.get(op, 0) * n for op, n in ops.items())
    persistent = tail - saved - TAIL_OBJECTS_DELTA
    temporaries = host_arena - tail - max(0, TEMP_DELTA_PER_TENSOR * tensors - TEMP_DELTA_FIXED)
    return persistent + max(head + HEAD_SLACK, temporaries)


def device_arena_of(model_like) -> int:
    """The 32-bit arena of a model: :func:`device_arena` on the host's measured arena report.

    Example:
        >>> device_arena_of(int8_artifact)  # doctest: +SKIP
        23152
    """
    from collections import Counter

    from pytest_tinyml import analyze
    from pytest_tinyml.runtime import tflm

    report = tflm.arena(model_like)
    ops = Counter(op.op for op in analyze.read_ops(model_like)[0])
    breakdown = {k: (v.used, v.requested, v.count) for k, v in report.breakdown.items()}
    return device_arena(host_arena=report.arena_bytes, head=report.allocated_head_bytes or 0,
                        tail=report.allocated_tail_bytes or 0, breakdown=breakdown, ops=dict(ops))
