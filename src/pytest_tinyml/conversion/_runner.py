"""Run the conversion worker in a child process and turn a crash, a hang or an exception into a report."""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pytest_tinyml.conversion._child import EXIT_EXCEPTION
from pytest_tinyml.errors import ConversionError

STDERR_TAIL_LINES = 25
# `python -m` puts the working directory first on sys.path: a project's keras.py must not shadow Keras there.
NEUTRAL_CWD = tempfile.gettempdir()
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
    # The child runs from a neutral directory: make sure it imports this very pytest_tinyml, and that
    # relative PYTHONPATH entries still point where they did.
    package_root = str(Path(__file__).resolve().parents[2])
    entries = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([package_root, *[p for p in entries if p != package_root]])
    env["PYTHONWARNINGS"] = "ignore"  # a user's PYTHONWARNINGS=error must not fail TF's own warnings
    return env


def run_child(job_dir: Path, job: dict, *, timeout: float, label: str) -> dict:
    """Run one conversion job; returns ``result.json`` (the flatbuffer is ``job_dir/model.tflite``).

    ``label`` is how the error names the model and recipe, e.g. ``model 'mlp', recipe 'int8'``. Jobs go
    to a long-lived worker process (set ``PYTEST_TINYML_CONVERT_REUSE=0`` for a fresh process per job).
    """
    (job_dir / "job.json").write_text(json.dumps(job))
    for name in ("stdout.txt", "stderr.txt"):
        (job_dir / name).touch()
    started = time.monotonic()
    if os.environ.get("PYTEST_TINYML_CONVERT_REUSE", "1") == "0":
        returncode = _run_fresh(job_dir, timeout)
    else:
        returncode = _WORKER.run(job_dir, timeout)
    if returncode is None:
        raise ConversionError(
            _report(job_dir, job, label, f"hung: no result after {timeout:g} s (timeout), killed",
                    suggestion=_timeout_advice(job))
        )
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


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_tinyml.conversion._child", *args]


def _run_fresh(job_dir: Path, timeout: float) -> int | None:
    """One process for one job: its exit code, or None when it was killed at the timeout."""
    with open(job_dir / "stdout.txt", "ab") as out, open(job_dir / "stderr.txt", "ab") as err:
        proc = subprocess.Popen(_command(str(job_dir)), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=child_env(), cwd=NEUTRAL_CWD,
                                start_new_session=True)  # own group: a hang is killed whole
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return None
        except BaseException:  # KeyboardInterrupt and friends: never leave a converter running
            _kill_group(proc)
            raise


class _Worker:
    """A long-lived ``_child --serve`` process, restarted after a crash, a hang or ``MAX_JOBS`` jobs."""

    MAX_JOBS = 50  # bounds whatever TF leaks between conversions

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.jobs = 0
        self.lock = threading.Lock()
        self.pid = None

    def _start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(
            _command("--serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=child_env(), cwd=NEUTRAL_CWD, start_new_session=True,
        )
        self.jobs, self.pid = 0, os.getpid()
        return self.proc

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                _kill_group(proc)
            _close_pipes(proc)

    def run(self, job_dir: Path, timeout: float) -> int | None:
        with self.lock:
            proc = self.proc
            # A forked parent (pytest-xdist uses exec, but others fork) must not share its parent's worker.
            if proc is None or proc.poll() is not None or self.pid != os.getpid() or self.jobs >= self.MAX_JOBS:
                if proc is not None and self.pid == os.getpid():
                    self.stop()
                proc = self._start()
            self.jobs += 1
            try:
                proc.stdin.write(f"{job_dir}\n".encode())
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                if not ready:
                    self.stop()
                    return None
                line = proc.stdout.readline()
            except BrokenPipeError:
                line = b""
            except BaseException:
                self.stop()
                raise
            if line.strip():
                return int(line)
            # End of file: the worker died during this job. Its exit status says how.
            returncode = proc.wait()
            _close_pipes(proc)
            self.proc = None
            return returncode if returncode != 0 else 1


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:  # a broken pipe to a dead worker: nothing left to flush
            pass


_WORKER = _Worker()
atexit.register(_WORKER.stop)


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


def _report(job_dir: Path, job: dict, label: str, what: str, *, suggestion: str) -> str:
    tail = _stderr_tail(job_dir)
    text = f"TFLite conversion of {label} {what}.\nFix: {suggestion}."
    if tail:
        text += f"\n--- last lines of the converter's stderr ---\n{tail}"
    return text
