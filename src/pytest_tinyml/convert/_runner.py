"""Run the conversion worker in a child process and turn a crash, a hang or an exception into a report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest_tinyml.convert._child import EXIT_EXCEPTION
from pytest_tinyml.errors import ConversionError

STDERR_TAIL_LINES = 25
RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "LSTMCell", "GRUCell"}
MCU_ADVICE = "use the float32 or dynamic_range recipe, or an MCU-friendly architecture such as gesture_cnn"


def child_env() -> dict:
    """The worker's environment: TensorFlow backend, quiet TF logs, no GPU probing, unbuffered stderr."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env.pop("TF_USE_LEGACY_KERAS", None)  # the worker picks keras or tf_keras itself, per source
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_child(job_dir: Path, job: dict, *, timeout: float, label: str) -> dict:
    """Run one conversion job; returns ``result.json`` (the flatbuffer is ``job_dir/model.tflite``).

    ``label`` is how the error names the model and recipe, e.g. ``model 'mlp', recipe 'int8'``.
    """
    (job_dir / "job.json").write_text(json.dumps(job))
    stdout_path, stderr_path = job_dir / "stdout.txt", job_dir / "stderr.txt"
    started = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_tinyml.convert._child", str(job_dir)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            start_new_session=True,  # its own process group: a hang is killed whole
        )
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ConversionError(
                _report(job_dir, job, label, f"hung: no result after {timeout:.0f} s (timeout), killed",
                        suggestion=_timeout_advice(job))
            ) from None
        except BaseException:  # KeyboardInterrupt and friends: never leave a converter running
            _kill_group(proc)
            raise
    elapsed = time.monotonic() - started
    if returncode == 0 and (job_dir / "result.json").exists() and (job_dir / "model.tflite").exists():
        result = json.loads((job_dir / "result.json").read_text())
        result["seconds"] = round(elapsed, 3)
        return result
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        what = f"crashed with {sig} in TF's converter"
    elif returncode == EXIT_EXCEPTION and (job_dir / "error.json").exists():
        error = json.loads((job_dir / "error.json").read_text())
        first = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
        what = f"failed: {error['type']}: {first[:500]}"
    else:
        what = f"exited with code {returncode} without a result"
    raise ConversionError(_report(job_dir, job, label, what, suggestion=_advice(job_dir, job, returncode)))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _stderr_tail(job_dir: Path) -> str:
    try:
        text = (job_dir / "stderr.txt").read_text(errors="replace")
    except OSError:
        return ""
    # TF's C++ log lines (W0000/I0000 ...) and absl preambles drown the useful part.
    lines = [
        line[:300]
        for line in text.splitlines()
        if line.strip() and not line.startswith(("W0000", "I0000", "WARNING: All log messages"))
    ]
    return "\n".join(lines[-STDERR_TAIL_LINES:])


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


def _report(job_dir: Path, job: dict, label: str, what: str, *, suggestion: str) -> str:
    tail = _stderr_tail(job_dir)
    text = f"TFLite conversion of {label} {what}.\nFix: {suggestion}."
    if tail:
        text += f"\n--- last lines of the converter's stderr ---\n{tail}"
    return text
