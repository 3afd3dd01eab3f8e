"""The one way pytest-tinyml starts a Python child process (conversion, vetting, arena search, op probes).

Native code (TF's converter, TFLite Micro, LiteRT) can crash or hang on a bad model; in a child that costs
only the child. Every child started here gets the same treatment:

* **a safe ``sys.path``**: ``python -I`` (no current or script directory, no ``PYTHON*`` variables), then an
  explicit path: the directory that holds this very ``pytest_tinyml`` (so a worktree or an editable install
  runs its own code), the absolute entries of ``PYTHONPATH``, and the user site-packages when the parent
  uses them. A ``json.py`` in ``TMPDIR`` or in the working directory is never imported.
* **a fresh private working directory** (``tempfile.mkdtemp``: mode 0700), removed afterwards;
* **its own process group**, killed whole at the timeout (and on ``KeyboardInterrupt``);
* **a quiet TensorFlow environment** (:data:`QUIET_ENV`);
* **stderr captured** to a file whose tail (:meth:`Finished.tail`) goes into every error message.

:func:`run` runs one module to completion; :class:`Worker` keeps one alive and exchanges lines with it.

Example:
    >>> with private_dir("tinyml-demo-") as workdir:
    ...     done = run("pytest_tinyml.runtime._child", [], workdir=workdir, timeout=60)  # doctest: +SKIP
    >>> done.returncode, done.tail()  # doctest: +SKIP
    (2, '...')
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# TensorFlow's start-up chatter (C++ logs, oneDNN notice, CUDA probing) is noise in a captured stderr.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": "-1"}
TAIL_LINES = 25
# How many children this process started (run() and Worker starts): what "no child was needed" is tested with.
started = 0
_count_lock = threading.Lock()
# Log lines that drown the useful part of a tail: TF's C++ log prefixes and absl's preamble.
_NOISE = ("W0000", "I0000", "WARNING: All log messages")

# Runs first in the child (`python -I -c`): set the explicit path, then run the module as __main__.
_BOOTSTRAP = (
    "import runpy, site, sys\n"
    "path, sites, module = sys.argv[1:4]\n"
    f"sys.path[0:0] = [p for p in path.split({os.pathsep!r}) if p]\n"
    f"for directory in filter(None, sites.split({os.pathsep!r})):\n"
    "    site.addsitedir(directory)\n"
    "sys.argv = [module, *sys.argv[4:]]\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def package_root() -> str:
    """The directory holding the ``pytest_tinyml`` package this process imported (``.../src`` in a checkout).

    Example:
        >>> import os; os.path.isdir(os.path.join(package_root(), "pytest_tinyml"))
        True
    """
    return str(Path(__file__).resolve().parent.parent)  # this module is pytest_tinyml/child.py


def search_path() -> list[str]:
    """The child's ``sys.path`` prefix: :func:`package_root`, then ``PYTHONPATH``'s entries made absolute.

    Empty entries (which would mean "the current directory") are dropped.

    Example:
        >>> search_path()[0] == package_root()
        True
    """
    entries = [package_root()]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and os.path.abspath(entry) not in entries:
            entries.append(os.path.abspath(entry))
    return entries


def _site_dirs() -> list[str]:
    # `-I` implies `-s`; keep the user site-packages when the parent has them (pip install --user).
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    return [user_site] if user_site and os.path.isdir(user_site) else []


def command(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m module args...`` with the safe path of this module.

    Example:
        >>> command("pytest_tinyml.runtime._child", "x")[1]
        '-I'
    """
    return [sys.executable, "-I", "-u", "-W", "ignore", "-c", _BOOTSTRAP,
            os.pathsep.join(search_path()), os.pathsep.join(_site_dirs()), module, *args]


def environment(extra: dict | None = None) -> dict:
    """The child's environment: the parent's, with :data:`QUIET_ENV` defaults and ``extra`` (None removes).

    Example:
        >>> environment({"KERAS_BACKEND": "tensorflow"})["TF_CPP_MIN_LOG_LEVEL"] in {"0", "1", "2", "3"}
        True
    """
    env = dict(os.environ)
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@contextlib.contextmanager
def private_dir(prefix: str = "tinyml-child-"):
    """A fresh directory only this user can enter (``mkdtemp``: 0700), removed when the block ends.

    Example:
        >>> with private_dir() as d:
        ...     oct(d.stat().st_mode & 0o777)
        '0o700'
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def signal_name(returncode: int) -> str:
    """``-11`` -> ``'SIGSEGV'``; other codes -> ``'exit code N'``.

    Example:
        >>> signal_name(-11), signal_name(3)
        ('SIGSEGV', 'exit code 3')
    """
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def tail_of(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` meaningful lines of captured output (TF's C++ log lines dropped, lines cut at 300).

    Example:
        >>> tail_of("W0000 noise\\nreal problem\\n")
        'real problem'
    """
    kept = [line[:300] for line in text.splitlines() if line.strip() and not line.startswith(_NOISE)]
    return "\n".join(kept[-lines:])


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Finished:
    """How a child ended: ``returncode`` (None when it was killed at the timeout) and its captured stderr."""

    returncode: int | None
    stderr: str
    seconds: float
    timeout: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def how(self) -> str:
        """``'killed after 60 s (timeout)'``, ``'SIGSEGV'`` or ``'exit code 3'``."""
        if self.returncode is None:
            return f"killed after {self.timeout:g} s (timeout)"
        return signal_name(self.returncode)

    def tail(self, lines: int = TAIL_LINES) -> str:
        return tail_of(self.stderr, lines)


def _popen(module: str, args, **kwargs) -> subprocess.Popen:
    global started
    with _count_lock:
        started += 1
    return subprocess.Popen(command(module, *map(str, args)), start_new_session=True, **kwargs)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it is its own session leader), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def run(module: str, args=(), *, workdir: Path, timeout: float, env: dict | None = None,
        stdout_path: Path | None = None, stderr_path: Path | None = None) -> Finished:
    """Run ``python -m module args`` to completion in ``workdir`` (use :func:`private_dir`).

    stderr goes to ``stderr_path`` (default ``workdir/stderr.txt``), stdout to ``stdout_path`` (default: the
    same file). At ``timeout`` seconds the whole process group is killed and ``returncode`` is None.

    Example:
        >>> with private_dir() as d:
        ...     run("json.tool", ["--help"], workdir=d, timeout=30).returncode
        0
    """
    stderr_path = stderr_path or workdir / "stderr.txt"
    began = time.monotonic()
    with open(stderr_path, "ab") as err, contextlib.ExitStack() as stack:
        out = err if stdout_path in (None, stderr_path) else stack.enter_context(open(stdout_path, "ab"))
        proc = _popen(module, args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir,
                      env=environment(env))
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            returncode = None
        except BaseException:  # KeyboardInterrupt and friends: never leave a child running
            kill_group(proc)
            raise
    return Finished(returncode, read_text(stderr_path), time.monotonic() - began, timeout)


class Worker:
    """A long-lived child that answers one line on its stdout for each line written to its stdin.

    Started on first use, in its own private directory (stderr to ``stderr.txt`` there) and process group;
    restarted after it died, after ``max_jobs`` requests, or in a forked copy of the parent.

    Example:
        >>> worker = Worker("pytest_tinyml.conversion._child", ["--serve"])  # doctest: +SKIP
        >>> worker.ask("/tmp/tinyml-convert-x\\n", timeout=300)  # doctest: +SKIP
        Reply(line='0', returncode=None, stderr='')
    """

    def __init__(self, module: str, args=(), *, env: dict | None = None, max_jobs: int = 50) -> None:
        self.module, self.args, self.env, self.max_jobs = module, list(args), env, max_jobs
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.jobs = 0
        self.pid: int | None = None
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        self.workdir = Path(tempfile.mkdtemp(prefix="tinyml-worker-"))
        with open(self.workdir / "stderr.txt", "ab") as err:
            self.proc = _popen(self.module, self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                               cwd=self.workdir, env=environment(self.env))
        self.jobs, self.pid = 0, os.getpid()
        return self.proc

    def stderr(self) -> str:
        """What the worker wrote on its own stderr (start-up errors; jobs may redirect theirs)."""
        return read_text(self.workdir / "stderr.txt") if self.workdir else ""

    def stop(self) -> None:
        """Kill the worker's process group (if it runs) and remove its directory."""
        if self.pid is not None and self.pid != os.getpid():  # a forked copy: the worker is the parent's
            self.proc = self.workdir = None
            return
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                kill_group(proc)
            _close_pipes(proc)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def ask(self, line: str, timeout: float) -> Reply:
        """Send ``line``; the reply line, or how the worker ended (killed at the timeout, or died)."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None or self.pid != os.getpid() or self.jobs >= self.max_jobs:
                self.stop()
                proc = self._start()
            self.jobs += 1
            try:
                proc.stdin.write(line.encode() if line.endswith("\n") else f"{line}\n".encode())
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                if not ready:
                    stderr = self.stderr()
                    self.stop()
                    return Reply(None, None, stderr, timed_out=True)
                answer = proc.stdout.readline()
            except BrokenPipeError:
                answer = b""
            except BaseException:
                self.stop()
                raise
            if answer.strip():
                return Reply(answer.decode().strip(), None, "")
            # End of file: the worker died during this request. Its exit status says how.
            returncode = proc.wait()
            stderr = self.stderr()
            self.stop()
            return Reply(None, returncode if returncode != 0 else 1, stderr)


@dataclass(frozen=True)
class Reply:
    """A :class:`Worker`'s answer: ``line``, or ``returncode``/``timed_out`` when it ended instead."""

    line: str | None
    returncode: int | None
    stderr: str
    timed_out: bool = False


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:  # a broken pipe to a dead worker: nothing left to flush
            pass
