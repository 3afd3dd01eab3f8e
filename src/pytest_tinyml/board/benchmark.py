"""The steps of ``Board.benchmark``: resolve the model, quantize inputs, run per sample, time, dequantize.

Talks to the board only through the public verbs of :class:`~pytest_tinyml.board.client.BenchClient`.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

from pytest_tinyml.board.result import BoardResult
from pytest_tinyml.board.samples import as_samples
from pytest_tinyml.errors import BoardError, BoardReset, ConfigError, ProtocolError
from pytest_tinyml.latency import LatencyStats


def _artifact(model):
    if model is None:
        return None
    from pytest_tinyml import runtime

    return runtime.load(model)


@contextmanager
def exchange(board):
    """One verb's exchange with ``board``, yielding its client: the host's view of the board stays true.

    First a resync when the last command timed out (its late reply must not be taken for the next one's); then a
    reset forgets the model the board had, and any other board error asks for a resync before the next verb.
    """
    client = board.client
    if board.needs_sync:
        client.sync()
        board.forget_state()
        board.needs_sync = False
    try:
        yield client
    except BoardReset:
        board.forget_state()
        raise
    except BoardError:
        board.needs_sync = True
        raise


def outputs_one_by_one(client, samples: list[bytes]):
    """Each sample's output 0 through ``tinyml-load input``, ``tinyml-infer 1 0``, ``tinyml-outputs 0``:
    (list of raw arrays shaped like one sample's output, the board's output TensorQuant)."""
    import numpy as np

    raw, out_quant = [], None
    for sample in samples:
        client.upload("input", sample, 0)
        client.infer(1, 0)
        out_quant, data = client.output(0)
        values = np.frombuffer(data, dtype=np.dtype(out_quant.dtype))
        shape = tuple(out_quant.shape[1:]) if len(out_quant.shape) > 1 else (values.size,)
        raw.append(values.reshape(shape) if int(np.prod(shape)) == values.size else values)
    return raw, out_quant


def run(board, model, inputs, runs: int, warmup: int):
    """Body of ``Board.benchmark`` (see there): returns ``(BoardResult, artifact or None)``."""
    import numpy as np

    if board.mlperf_only:
        return _run_mlperf(board, model, inputs, runs, warmup), None
    artifact = _artifact(model)
    with exchange(board) as client:
        state = board.load_model(None if artifact is None else artifact.content)
        if not state.inputs or not state.outputs:
            raise ProtocolError(f"{board.name} describes no input or output tensor for the model",
                                port=board.name, log=client.log)
        board_in = state.inputs[0]
        in_quant = artifact.inputs[0] if artifact is not None and artifact.inputs else board_in
        n_bytes = int(np.prod(board_in.shape)) * np.dtype(board_in.dtype).itemsize
        samples = as_samples(inputs, in_quant, n_bytes)
        raw, out_quant = outputs_one_by_one(client, samples)
        times = _timed_runs(board, runs, warmup)
        ops, ops_reason = client.ops()
    raw_outputs = np.stack(raw)
    if artifact is not None and artifact.outputs:  # the artifact's quantization is the reference
        out_quant = artifact.outputs[0]
    outputs = out_quant.dequantize(raw_outputs)
    info = dict(board.info)
    info.update(recipe=getattr(artifact, "recipe", "builtin"), model=getattr(artifact, "name", "builtin"),
                model_outputs=len(artifact.outputs) if artifact is not None else len(state.outputs))
    if board.where == "sim":
        info["arena_note"] = "host TFLite Micro arena (64-bit pointers): an estimate of the device arena"
    result = BoardResult(
        latency_us=LatencyStats.from_samples(times), arena_bytes=state.arena_bytes, info=info,
        model_sha256=state.sha256 or None, runs=runs, warmup=warmup, outputs=outputs, raw_outputs=raw_outputs,
        output_quant=out_quant, ops=ops, log=client.log[-4000:], identity=board.identity, ops_reason=ops_reason,
        inputs_sha256=hashlib.sha256(b"".join(samples)).hexdigest(), input_quant=in_quant)
    return result, artifact


def _timed_runs(board, runs: int, warmup: int) -> list[int]:
    """Per-run samples; more runs than the firmware keeps (``max-runs``) go in several batches."""
    try:
        batch = max(1, int(board.info.get("max-runs", runs)))
    except ValueError:
        batch = runs
    times: list[int] = []
    while len(times) < runs:
        n = min(batch, runs - len(times))
        board.client.infer(n, warmup if not times else 0)
        times += board.client.samples(n)
    return times


def _run_mlperf(board, model, inputs, runs: int, warmup: int) -> BoardResult:
    """Time a pure MLPerf Tiny firmware's built-in model: one latency figure (lap difference / runs)."""
    import numpy as np

    if model is not None:
        raise ConfigError(f"{board.name} runs an MLPerf Tiny firmware without model upload: call "
                          "benchmark(None, ...) to time its built-in model, or flash the tinyml-bench firmware")
    client = board.client
    if inputs is not None:
        client.mlperf_load(np.ascontiguousarray(np.asarray(inputs)).tobytes())
    run = client.mlperf_infer(runs, warmup)
    per_run = (run.laps[-1] - run.laps[0]) / runs
    outputs = None if run.results is None else np.array([run.results], dtype=np.float32)
    return BoardResult(LatencyStats.from_samples([per_run]), None, dict(board.info), None, runs, warmup,
                       outputs=outputs, log=client.log[-4000:], identity=board.identity,
                       ops_reason="an MLPerf Tiny firmware reports no per-op times")
