"""The steps of ``Board.predict``: the model uploaded once, a data set slice streamed through the board in
batches, output 0 of every sample read back (as MLPerf Tiny's accuracy mode runs a data set on the device).

A protocol 1.2 firmware takes whole samples in one ``tinyml-load batch`` (at most its ``batch-max-bytes``,
outputs included), runs them with ``tinyml-predict`` and gives the outputs back with ``tinyml-predictions``,
read in ranges that stay inside the lines it holds for resend. The first batch is one sample; later ones are
sized from how long ``tinyml-predict`` took per sample (the wall time the host waited: invokes, input copies
and, on the sim, the engine's round trips) so that each command ends well inside the client's timeout. A batch
the board's free heap cannot hold beside the model (``no-room``) is halved until it fits. An older firmware,
or a sample larger than the batch buffer, goes one sample at a time (``tinyml-load input``,
``tinyml-infer 1 0``, ``tinyml-outputs``: :func:`pytest_tinyml.board.benchmark.outputs_one_by_one`).

Talks to the board only through the public verbs of :class:`~pytest_tinyml.board.client.BenchClient`.
"""

from __future__ import annotations

import hashlib
import time

from pytest_tinyml.board.benchmark import exchange, outputs_one_by_one
from pytest_tinyml.board.result import BoardPredictions
from pytest_tinyml.board.samples import as_samples, sample_bytes
from pytest_tinyml.board.status import Status
from pytest_tinyml.errors import ConfigError, ProtocolError

READBACK_LINES = 32  # framed lines per tinyml-predictions: inside the 48 the board holds for resend (a
# sample longer than that is read alone, and read again when a line of it comes back garbled)
OUTPUT_BYTES_PER_LINE = 64  # PROTOCOL.md, tinyml-predictions
FIRST_BATCH = 1  # samples in the first batch: a slow model (seconds per invoke) must not outrun the timeout
BATCH_SHARE = 0.25  # the share of the client's timeout one tinyml-predict may take


def _protocol_minor(info: dict) -> int:
    try:
        return int(str(info.get("protocol", "1.0")).split(".")[1])
    except (IndexError, ValueError):
        return 0


def batch_capacity(info: dict, in_bytes: int, out_bytes: int) -> int:
    """Samples one batch can hold on this board (0: the firmware has no batches, or one sample does not fit).

    Example:
        >>> batch_capacity({"protocol": "1.2", "batch-max-bytes": "16384"}, 64, 10)
        256
        >>> batch_capacity({"protocol": "1.1"}, 64, 10)
        0
    """
    if _protocol_minor(info) < 2:
        return 0
    try:
        limit = int(info.get("batch-max-bytes", 0))
    except ValueError:
        return 0
    return limit // max(in_bytes, out_bytes, 1)


def _stream(client, samples: list[bytes], capacity: int, batch_size: int | None, out_bytes: int):
    """Every sample through tinyml-load batch / tinyml-predict / tinyml-predictions: (outputs, batches, us)."""
    cap = min(capacity, batch_size or capacity)
    per_read = max(1, READBACK_LINES // max(1, -(-out_bytes // OUTPUT_BYTES_PER_LINE)))
    size = min(cap, FIRST_BATCH)
    outputs: list[bytes] = []
    batches: list[int] = []
    invoke_us = 0
    done = 0
    while done < len(samples):
        batch = samples[done: done + size]
        try:
            client.upload("batch", b"".join(batch))
        except ProtocolError as exc:
            # batch-max-bytes is the firmware's limit, not what its heap has free beside a large model: halve
            # the batch until it fits (the refusal leaves the board in sync, nothing staged).
            if getattr(exc, "code", "") != Status.NO_ROOM or len(batch) == 1:
                raise
            cap = size = len(batch) // 2
            continue
        started = time.monotonic()
        figures = client.predict(len(batch))
        waited = time.monotonic() - started
        for start in range(0, len(batch), per_read):
            outputs += client.predictions(start, min(per_read, len(batch) - start), out_bytes)
        done += len(batch)
        batches.append(len(batch))
        invoke_us += int(figures.get("total_us", 0))
        per_sample_s = max(figures.get("total_us", 0) / 1e6, waited) / len(batch)
        fit = int(client.timeout * BATCH_SHARE / per_sample_s) if per_sample_s > 0 else cap
        size = max(1, min(cap, fit))
    return outputs, tuple(batches), invoke_us


def run(board, model, x, batch_size: int | None = None) -> BoardPredictions:
    """Body of ``Board.predict`` (see there)."""
    import numpy as np

    from pytest_tinyml import runtime
    from pytest_tinyml.runtime.batching import refuse_fixed_batch

    if board.mlperf_only:
        raise ConfigError(f"{board.name} runs an MLPerf Tiny firmware without model upload or output read-back: "
                          "flash the tinyml-bench firmware to run a data set slice on it")
    artifact = runtime.load(model)
    if len(artifact.inputs) > 1:  # the batch carries input 0; the firmware would run the others on zeros
        raise ConfigError(f"Board.predict streams input tensor 0 only; model {artifact.name!r} has "
                          f"{len(artifact.inputs)} inputs, so its outputs would be of zeros in the others: run a "
                          "single-input model (e.g. the inputs concatenated into one tensor) on the board")
    if artifact.inputs:  # one invoke would take that many samples: the board's batch is of those
        refuse_fixed_batch(artifact.inputs[0], artifact.name, "Board.predict runs")
    with exchange(board) as client:
        state = board.load_model(artifact.content)
        if not state.inputs or not state.outputs:
            raise ProtocolError(f"{board.name} describes no input or output tensor for the model",
                                port=board.name, log=client.log)
        in_quant = artifact.inputs[0] if artifact.inputs else state.inputs[0]
        board_out = state.outputs[0]
        in_bytes, out_bytes = sample_bytes(state.inputs[0]), sample_bytes(board_out)
        samples = as_samples(x, in_quant, in_bytes)
        capacity = batch_capacity(board.info, in_bytes, out_bytes)
        invoke_us = None
        if capacity >= 1:
            data, batches, invoke_us = _stream(client, samples, capacity, batch_size, out_bytes)
            dtype = np.dtype(board_out.dtype)
            shape = tuple(board_out.shape[1:]) if len(board_out.shape) > 1 else (out_bytes // dtype.itemsize,)
            raw = [np.frombuffer(d, dtype=dtype).reshape(shape) for d in data]
        else:
            raw, _ = outputs_one_by_one(client, samples)
            batches = (1,) * len(samples)
    raw_outputs = np.stack(raw)
    out_quant = artifact.outputs[0] if artifact.outputs else board_out  # the artifact's quantization is the reference
    digest = hashlib.sha256(b"".join(samples)).hexdigest()
    info = dict(board.info)
    info.update(recipe=getattr(artifact, "recipe", "tflite"), model=getattr(artifact, "name", "model"),
                model_outputs=len(artifact.outputs))  # output 0 was read back: an assertion needs to know of others
    return BoardPredictions(outputs=out_quant.dequantize(raw_outputs), raw_outputs=raw_outputs, output_quant=out_quant,
                            input_quant=in_quant, inputs_sha256=digest, model_sha256=state.sha256 or artifact.sha256,
                            info=info, batches=batches, invoke_us=invoke_us, identity=board.identity,
                            log=client.log[-4000:])
