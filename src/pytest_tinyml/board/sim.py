"""The ``sim`` board: the firmware's portable core built for the host, running real TFLite Micro kernels.

``tinyml-host`` (``firmware/host/``) is compiled with the host gcc from the firmware sources, cached by their
hash in the tinyml cache dir. It speaks PROTOCOL.md on the master side of a real pty, and forwards its engine
calls (ENGINE_RPC.md) to :mod:`pytest_tinyml.board.sim_engine`, a Python process with the ``tflite-micro``
package's kernels. The host opens the pty's slave path with pyserial like any serial port, so the sim
exercises the same bytes, framing and faults as a board. It says plainly that it is ``host-sim``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import tty
from dataclasses import dataclass, field
from pathlib import Path

from pytest_tinyml.board import flash
from pytest_tinyml.errors import FirmwareError

CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
DEFAULT_ARENA = 131072  # the firmware's CONFIG_TINYML_ARENA_SIZE default


def host_sources(firmware_dir: Path) -> list[Path]:
    """C sources of ``tinyml-host``: the portable core plus the host program (no ESP-IDF code)."""
    core = sorted((firmware_dir / "main" / "core").glob("*.c"))
    host = sorted((firmware_dir / "host").glob("*.c"))
    if not core or not host:
        raise FirmwareError(f"{firmware_dir} has no host program sources (main/core/*.c and host/*.c): pass "
                            "--tinyml-firmware-dir pointing at the tinyml-bench firmware")
    return core + host


def build_hash(firmware_dir: Path) -> str:
    """Hash of every file that goes into ``tinyml-host`` (sources and headers of core/ and host/)."""
    files = flash.source_files(firmware_dir, "main/core") + flash.source_files(firmware_dir, "host")
    return flash.source_hash(firmware_dir, files, extra=" ".join(CFLAGS))


def build_host(firmware_dir: Path, cache_dir: Path, *, rebuild: bool = False) -> tuple[Path, str]:
    """Compile ``tinyml-host`` unless a build of the same sources is cached; return (binary, build id).

    ``rebuild``: drop the cached binary first (it failed to start: truncated, or built for another system).

    Example:
        >>> binary, build_id = build_host(locate_firmware_dir(), Path(".tinyml_cache"))  # doctest: +SKIP
    """
    from filelock import FileLock

    digest = build_hash(firmware_dir)
    out_dir = Path(cache_dir) / "sim"
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"tinyml-host-{digest[:16]}"
    if rebuild:
        with FileLock(str(binary) + ".lock"):
            binary.unlink(missing_ok=True)
    if binary.is_file():
        return binary, digest[:12]
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise FirmwareError("no C compiler found (gcc or cc) to build the sim board's tinyml-host: install gcc "
                            "(`apt install gcc`, `xcode-select --install`) or set CC")
    with FileLock(str(binary) + ".lock"):  # two xdist workers may start a sim at the same time
        if binary.is_file():
            return binary, digest[:12]
        includes = {f"-I{p.parent}" for p in host_sources(firmware_dir)}
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tinyml-host-")
        os.close(fd)
        # The same defines as firmware/host/Makefile (which needs make); -Werror is left to the firmware's CI.
        defines = [f'-DTINYML_BUILD_ID="{digest[:12]}"', f'-DTINYML_CFLAGS="{" ".join(CFLAGS)}"']
        command = [compiler, *CFLAGS, *sorted(includes), *defines, *map(str, host_sources(firmware_dir)),
                   "-o", tmp, "-lm"]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise FirmwareError(f"building the sim board (tinyml-host) from {firmware_dir} failed:\n"
                                f"{' '.join(command)}\n{proc.stderr[-3000:]}")
        os.replace(tmp, binary)
    return binary, digest[:12]


@dataclass
class SimProcess:
    """A running ``tinyml-host`` behind a pty; ``port`` is the pty path to open with pyserial."""

    port: str
    process: subprocess.Popen
    slave_fd: int
    log_path: Path
    args: list = field(default_factory=list)

    def stop(self) -> None:
        """Close our side of the pty (the host program exits on EIO), then make sure it is gone."""
        if self.slave_fd >= 0:
            os.close(self.slave_fd)
            self.slave_fd = -1
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.process.returncode == 0:  # keep the log of a sim that failed, for the report
            self.log_path.unlink(missing_ok=True)

    def stderr_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def builtin_model(firmware_dir: Path) -> Path | None:
    """The model the firmware bakes into its image (``models/builtin.tflite``), if it has one."""
    path = firmware_dir / "models" / "builtin.tflite"
    return path if path.is_file() else None


def engine_command(arena_size: int = DEFAULT_ARENA, jitter_us: int = 0, seed: int = 0,
                   cache_dir: Path | None = None) -> str:
    """The shell command ``tinyml-host --engine-cmd`` runs: this Python with the TFLM engine server, started
    with the safe path of :func:`pytest_tinyml.child.command`. ``cache_dir`` is where its arena figures are
    kept (shared with ``assert_budget``: one bisection per model).
    """
    from pytest_tinyml import child

    args = ["--arena-size", str(arena_size), "--jitter-us", str(jitter_us), "--seed", str(seed)]
    if cache_dir is not None:
        args += ["--cache-dir", str(Path(cache_dir).resolve())]
    return " ".join(shlex.quote(a) for a in child.command("pytest_tinyml.board.sim_engine", *args))


def start(binary: Path, build_id: str, *, delay_us: int = 0, jitter_us: int = 0, seed: int = 0,
          arena_size: int = DEFAULT_ARENA, extra: list[str] | None = None, log_dir: Path | None = None,
          builtin_model: Path | None = None, cache_dir: Path | None = None) -> SimProcess:
    """Start ``tinyml-host`` with the TFLM engine on a fresh pty (``builtin_model``: the "baked-in" model).

    Example:
        >>> sim = start(*build_host(firmware_dir, cache_dir), delay_us=500)  # doctest: +SKIP
        >>> sim.port  # doctest: +SKIP
        '/dev/pts/7'
    """
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no CR/LF translation: the bytes a UART carries
    port = os.ttyname(slave)
    extra = list(extra or [])
    if "--builtin-model" in extra or "--no-builtin" in extra:
        builtin = []
    else:
        builtin = ["--builtin-model", str(builtin_model)] if builtin_model else ["--no-builtin"]
    # "--engine test" in extra: tinyml-host's deterministic test engine instead of TFLM (protocol tests)
    engine = [] if "--engine" in extra else ["--engine-cmd", engine_command(arena_size, jitter_us, seed, cache_dir)]
    args = [str(binary), *engine, *builtin,
            "--build", build_id, "--delay-us", str(delay_us), *extra]
    log_dir = Path(log_dir or tempfile.gettempdir())
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, log_name = tempfile.mkstemp(dir=log_dir, prefix="tinyml-sim-", suffix=".log")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # cwd: a directory of ours, never the user's current one (nothing runs from a place others can write)
    try:
        process = subprocess.Popen(args, stdin=master, stdout=master, stderr=fd, start_new_session=True,
                                   close_fds=True, env=env, cwd=log_dir)
    except OSError as exc:
        os.close(slave)
        raise FirmwareError(f"cannot start the sim board {binary}: {exc}") from None
    finally:
        os.close(master)  # the child holds it now
        os.close(fd)
    return SimProcess(port, process, slave, Path(log_name), args)
