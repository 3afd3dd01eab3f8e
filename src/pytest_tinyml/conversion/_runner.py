"""Run the conversion worker in a child process and turn a crash, a hang or an exception into a report."""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

from pytest_tinyml import child
from pytest_tinyml.conversion._child import EXIT_EXCEPTION
from pytest_tinyml.errors import ConversionError, ConversionTimeout

STDERR_TAIL_LINES = 25
RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "LSTMCell", "GRUCell"}
MCU_ADVICE = "use the float32 or dynamic_range recipe, or an MCU-friendly architecture such as gesture_cnn"
WORKER_MODULE = "pytest_tinyml.conversion._child"
# The worker's environment on top of pytest_tinyml.child's quiet TF defaults.
WORKER_ENV = {"KERAS_BACKEND": "tensorflow", "TF_USE_LEGACY_KERAS": None}  # it picks keras or tf_keras per source


def run_child(job_dir: Path, job: dict, *, timeout: float, label: str) -> dict:
    """Run one conversion job; returns ``result.json`` (the flatbuffer is ``job_dir/model.tflite``).

    ``label`` is how the error names the model and recipe, e.g. ``model 'mlp', recipe 'int8'``. Jobs go
    to a long-lived worker process (set ``PYTEST_TINYML_CONVERT_REUSE=0`` for a fresh process per job); both
    are started by :mod:`pytest_tinyml.child` (safe ``sys.path``, private directory, group kill).
    """
    (job_dir / "job.json").write_text(json.dumps(job))
    for name in ("stdout.txt", "stderr.txt"):
        (job_dir / name).touch()
    started = time.monotonic()
    worker_stderr = ""
    if os.environ.get("PYTEST_TINYML_CONVERT_REUSE", "1") == "0":
        done = child.run(WORKER_MODULE, [job_dir], workdir=job_dir, timeout=timeout, env=WORKER_ENV,
                         stdout_path=job_dir / "stdout.txt", stderr_path=job_dir / "stderr.txt")
        returncode = done.returncode
    else:
        reply = _WORKER.ask(str(job_dir), timeout)
        returncode = int(reply.line) if reply.line is not None else reply.returncode
        worker_stderr = reply.stderr  # what the worker printed outside a job (e.g. a failed start-up)
    if returncode is None:
        raise ConversionTimeout(
            _report(job_dir, job, label, f"hung: no result after {timeout:g} s (timeout), killed",
                    suggestion=_timeout_advice(job), extra=worker_stderr)
        )
    elapsed = time.monotonic() - started
    if returncode == 0 and (job_dir / "result.json").exists() and (job_dir / "model.tflite").exists():
        result = json.loads((job_dir / "result.json").read_text())
        result["seconds"] = round(elapsed, 3)
        return result
    if returncode < 0:
        what = f"crashed with {child.signal_name(returncode)} in TF's converter"
    elif returncode == EXIT_EXCEPTION and (job_dir / "error.json").exists():
        error = json.loads((job_dir / "error.json").read_text())
        if error.get("tinyml"):  # our own check in the worker (recipe verification, data validation): as raised
            from pytest_tinyml import errors

            raise getattr(errors, error["type"], ConversionError)(error["message"])
        first = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
        what = f"failed: {error['type']}: {first[:500]}"
    else:
        what = f"exited with code {returncode} without a result"
    raise ConversionError(_report(job_dir, job, label, what, suggestion=_advice(job_dir, job, returncode),
                                  extra=worker_stderr))


_WORKER = child.Worker(WORKER_MODULE, ["--serve"], env=WORKER_ENV, max_jobs=50)  # max_jobs bounds TF's leaks
atexit.register(_WORKER.stop)


def _stderr_tail(job_dir: Path, extra: str = "") -> str:
    return child.tail_of(child.read_text(job_dir / "stderr.txt") + "\n" + extra, STDERR_TAIL_LINES)


def _model_info(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "model_info.json").read_text())
    except (OSError, ValueError):
        return {}


def _advice(job_dir: Path, job: dict, returncode: int) -> str:
    classes = set(_model_info(job_dir).get("layer_classes") or job.get("layer_classes") or [])
    recurrent = sorted(classes & RECURRENT)
    error_text = ""
    if (job_dir / "error.json").exists():
        error_text = (job_dir / "error.json").read_text(errors="replace")
    full_integer = job["recipe"] in {"int8", "int16x8"}
    if recurrent and full_integer:
        return (
            f"full-integer calibration of recurrent layers ({', '.join(recurrent)}) is not supported by TF's "
            f"converter: {MCU_ADVICE}"
        )
    if "tensor list" in error_text.lower() or "TensorList" in error_text:
        return (
            "the model has a dynamic-length recurrent loop (TensorList ops) that TFLite builtins cannot express: "
            "give the input a fixed batch size (keras.Input(shape, batch_size=1)) or unroll the RNN "
            "(unroll=True); for target='litert' only, select_tf_ops=True keeps them as TF ops"
        )
    if "Could not locate" in error_text or "Unknown layer" in error_text or "custom_objects" in error_text:
        return (
            "the conversion process cannot import a custom layer or function: register it with "
            "keras.saving.register_keras_serializable in a module the child can import, or export a "
            "SavedModel yourself (model.export(dir)) and convert that directory"
        )
    if "representative_dataset" in error_text or "representative dataset" in error_text:
        return "pass representative=x_train (a few hundred samples, batch axis first)"
    if "flex" in error_text.lower() or "not supported" in error_text.lower() or "legalize" in error_text:
        return (
            "an op is not a TFLite builtin: replace that layer with a TFLite Micro-friendly one "
            "(Dense/Conv/DepthwiseConv/Pool/ReLU); for target='litert' only, select_tf_ops=True keeps it as a TF op"
        )
    if returncode < 0:
        return f"TF's converter crashed natively; {MCU_ADVICE}"
    return "see the converter output above; try the float32 recipe to tell a model problem from a quantization one"


def _timeout_advice(job: dict) -> str:
    return (
        "raise timeout=, or calibrate on fewer samples (max_calibration_samples=200); "
        "a converter that hangs on one recipe often converts with float32 or dynamic_range"
    )


def _report(job_dir: Path, job: dict, label: str, what: str, *, suggestion: str, extra: str = "") -> str:
    tail = _stderr_tail(job_dir, extra)
    text = f"TFLite conversion of {label} {what}.\nFix: {suggestion}."
    if tail:
        text += f"\n--- last lines of the converter's stderr ---\n{tail}"
    return text
