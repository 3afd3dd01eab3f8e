"""The steps of ``Board.benchmark``: resolve the model, quantize inputs, run per sample, time, dequantize."""

from __future__ import annotations

import re

from pytest_tinyml.board.protocol import brackets
from pytest_tinyml.board.result import BoardResult
from pytest_tinyml.errors import BoardError, BoardReset, ConfigError, ProtocolError
from pytest_tinyml.latency import LatencyStats


def _artifact(model):
    if model is None:
        return None
    from pytest_tinyml import runtime

    return runtime.load(model)


def _as_samples(inputs, quant, n_bytes: int):
    """``inputs`` -> list of raw byte strings, one per sample, in the input tensor's dtype."""
    import numpy as np

    per_sample = int(np.prod(quant.shape[1:])) if len(quant.shape) > 1 else int(np.prod(quant.shape))
    if inputs is None:
        zeros = quant.quantize(np.zeros(per_sample, dtype=np.float32)) if quant.quantized else None
        return [zeros.tobytes() if zeros is not None else bytes(n_bytes)]
    x = np.asarray(inputs)
    if x.size == per_sample:
        x = x.reshape(1, per_sample)
    if x.size % per_sample or x.shape[0] * per_sample != x.size:
        raise ConfigError(f"inputs of shape {x.shape} do not match the model's input {tuple(quant.shape)}: give "
                          f"an array whose first axis is the sample and whose other axes hold {per_sample} values")
    x = x.reshape(x.shape[0], per_sample)
    if np.issubdtype(x.dtype, np.floating):
        q = quant.quantize(x) if quant.quantized else x.astype(quant.dtype)
    elif x.dtype == np.dtype(quant.dtype):
        q = x
    else:
        raise ConfigError(f"inputs are {x.dtype}, the model's input tensor is {quant.dtype}: pass float values "
                          f"(they are quantized with scale {quant.scale}, zero point {quant.zero_point}) or "
                          f"{quant.dtype} values")
    out = [np.ascontiguousarray(row).tobytes() for row in q]
    if any(len(b) != n_bytes for b in out):
        raise ConfigError(f"an input sample is {len(out[0])} bytes, the board's input tensor takes {n_bytes}")
    return out


def run(board, model, inputs, runs: int, warmup: int) -> BoardResult:
    """Body of ``Board.benchmark`` (see there)."""
    import numpy as np

    if board.mlperf_only:
        return _run_mlperf(board, model, inputs, runs, warmup)
    artifact = _artifact(model)
    if board.needs_sync:  # a late reply to a command that timed out must not be taken for the next one's
        board.client.sync()
        board.forget_state()
        board.needs_sync = False
    try:
        state = board.load_model(None if artifact is None else artifact.content)
        if not state.inputs or not state.outputs:
            raise ProtocolError(f"{board.name} describes no input or output tensor for the model",
                                port=board.name, log=board.client.log)
        board_in = state.inputs[0]
        in_quant = artifact.inputs[0] if artifact is not None and artifact.inputs else board_in
        n_bytes = int(np.prod(board_in.shape)) * np.dtype(board_in.dtype).itemsize
        samples = _as_samples(inputs, in_quant, n_bytes)
        raw, out_quant = [], None
        for sample in samples:
            board._upload("input", sample, 0)
            board._infer(1, 0)
            out_quant, data = board._output(0)
            values = np.frombuffer(data, dtype=np.dtype(out_quant.dtype))
            shape = tuple(out_quant.shape[1:]) if len(out_quant.shape) > 1 else (values.size,)
            raw.append(values.reshape(shape) if int(np.prod(shape)) == values.size else values)
        times = _timed_runs(board, runs, warmup)
        ops = board._ops()
    except BoardReset:
        board.forget_state()
        raise
    except BoardError:
        board.needs_sync = True
        raise
    raw_outputs = np.stack(raw)
    if artifact is not None and artifact.outputs:  # the artifact's quantization is the reference
        out_quant = artifact.outputs[0]
    outputs = out_quant.dequantize(raw_outputs)
    info = dict(board.info)
    info.update(recipe=getattr(artifact, "recipe", "builtin"), model=getattr(artifact, "name", "builtin"))
    if info["where"] == "host-sim":
        info["arena_note"] = "host TFLite Micro arena (64-bit pointers): an estimate of the device arena"
    result = BoardResult(
        latency_us=LatencyStats.from_samples(times), arena_used_bytes=state.arena_used, info=info,
        model_sha256=state.sha256 or None, runs=runs, warmup=warmup, outputs=outputs, raw_outputs=raw_outputs,
        output_quant=out_quant, ops=ops, log=board.client.log[-4000:])
    board.record(result, artifact)
    return result


def _timed_runs(board, runs: int, warmup: int) -> list[int]:
    """Per-run samples; more runs than the firmware keeps (``max-runs``) go in several batches."""
    try:
        batch = max(1, int(board.info.get("max-runs", runs)))
    except ValueError:
        batch = runs
    times: list[int] = []
    while len(times) < runs:
        n = min(batch, runs - len(times))
        board._infer(n, warmup if not times else 0)
        times += board._samples(n)
    return times


_LAP = re.compile(r"^m-lap-us-(\d+)$")


def _run_mlperf(board, model, inputs, runs: int, warmup: int) -> BoardResult:
    """Time a pure MLPerf Tiny firmware's built-in model: one latency figure (lap difference / runs)."""
    import numpy as np

    if model is not None:
        raise ConfigError(f"{board.name} runs an MLPerf Tiny firmware without model upload: call "
                          "benchmark(None, ...) to time its built-in model, or flash the tinyml-bench firmware")
    client = board.client
    if inputs is not None:
        data = np.ascontiguousarray(np.asarray(inputs)).tobytes()
        client.send(f"db load {len(data)}")
        client._collect("db load")
        for offset in range(0, len(data), 32):
            client.send("db " + data[offset: offset + 32].hex())
            client._collect("db")
    client.send(f"infer {runs} {warmup}")
    lines, _ = client._collect(f"infer {runs} {warmup}")
    laps = [int(m.group(1)) for m in map(_LAP.match, lines) if m]
    results = [ln for ln in lines if ln.startswith("m-results-[")]
    errors = [ln for ln in lines if ln.startswith("e-[")]
    if errors or len(laps) < 2:
        raise ProtocolError(f"{board.name} answered `infer {runs} {warmup}%` with {errors or lines[-3:]}",
                            port=board.name, log=client.log)
    per_run = (laps[-1] - laps[0]) / runs
    outputs = None
    if results:
        outputs = np.array([[float(v) for v in brackets(results[-1])[0].split(",") if v]], dtype=np.float32)
    result = BoardResult(LatencyStats.from_samples([per_run]), None, dict(board.info), None, runs, warmup,
                         outputs=outputs, log=client.log[-4000:])
    board.record(result, None)
    return result
