"""Serial links to boards and the leases that keep two test workers off the same board.

A board is reached through pyserial: a device path (``/dev/ttyUSB0``, ``COM3``), ``rfc2217://host:port``
(a board shared over the network with esptool's ``esp_rfc2217_server``) or ``socket://host:port``. The sim
board is a pty, opened like any device path.

A lease is one ``filelock`` lock per board in a temp directory every process on this machine shares, so that
pytest-xdist workers (and two pytest runs) never drive the same board at once. Sim boards live and die with
the run, so their leases are scoped to the test run instead of the machine.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from pytest_tinyml.errors import PortUnavailable

_BUSY_ERRNOS = {errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK}


def open_port(url: str, baud: int, *, timeout: float = 0.05):
    """Open a serial link (device path, ``rfc2217://`` or ``socket://`` URL) and return a ``serial.Serial``.

    Device paths are opened exclusively (a second opener gets ``PortUnavailable`` naming the port as busy).

    Example:
        >>> ser = open_port("socket://localhost:4000", 921600)  # doctest: +SKIP
    """
    import serial

    try:
        if "://" in url:
            link = serial.serial_for_url(url, do_not_open=True)
        else:
            link = serial.Serial()
            link.port = url
            link.exclusive = True
        # Opening with DTR/RTS asserted resets (or holds in the bootloader) ESP32 boards with auto-reset.
        link.dtr = False
        link.rts = False
        link.baudrate = baud
        link.timeout = timeout
        if not url.startswith("rfc2217://"):  # pyserial's rfc2217 client refuses a write timeout
            link.write_timeout = 10.0
        with warnings.catch_warnings():
            # pyserial 3.5's rfc2217 client starts its reader with Thread.setDaemon()/setName(): not ours to fix;
            # under `filterwarnings = error` it would fail every rfc2217 board.
            warnings.filterwarnings("ignore", r"set(Daemon|Name)\(\) is deprecated", DeprecationWarning)
            link.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _port_error(url, exc) from None
    return link


def _port_error(url: str, exc: Exception) -> PortUnavailable:
    text = str(exc)
    code = getattr(exc, "errno", None)
    if "://" in url:
        fix = (
            "check that the server is running and reachable (for a board shared over the network: "
            "`esp_rfc2217_server -p PORT /dev/ttyUSB0` on the host the board is plugged into)"
        )
        return PortUnavailable(f"cannot connect to board {url}: {text}; {fix}", port=url)
    if code == errno.ENOENT or "No such file" in text or "FileNotFoundError" in text:
        return PortUnavailable(
            f"serial port {url} does not exist: is the board plugged in? List ports with "
            "`python -m serial.tools.list_ports` and pass the right one with --tinyml-board", port=url)
    if code in _BUSY_ERRNOS or "exclusively lock" in text or "busy" in text.lower():
        return PortUnavailable(
            f"serial port {url} is busy: another program holds it (idf.py monitor, screen, minicom, another "
            "pytest run?). Close it and run again", port=url)
    if code == errno.EACCES or isinstance(exc, PermissionError) or "Permission denied" in text:
        return PortUnavailable(
            f"no permission to open serial port {url}: add your user to the port's group "
            "(`sudo usermod -aG dialout $USER` on Linux, then log in again)", port=url)
    return PortUnavailable(f"cannot open serial port {url}: {text}; check --tinyml-board", port=url)


# --- leases --------------------------------------------------------------------------------------------


def lease_dir(scope: str = "machine") -> Path:
    """The directory the board locks live in; ``scope`` isolates run-local boards such as sims.

    Example:
        >>> lease_dir().name.startswith("pytest-tinyml-leases")
        True
    """
    user = re.sub(r"[^A-Za-z0-9_.-]", "_", str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "u"))
    base = Path(tempfile.gettempdir()) / f"pytest-tinyml-leases-{user}"
    path = base if scope == "machine" else base / re.sub(r"[^A-Za-z0-9_.-]", "_", scope)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock_name(board_text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", board_text).strip("_")[:40]
    return f"{slug}-{hashlib.sha256(board_text.encode()).hexdigest()[:12]}.lock"


@dataclass
class Lease:
    """A held lock on one board; :meth:`release` is idempotent."""

    board: str
    lock: object
    path: Path

    def release(self) -> None:
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release()

    @property
    def held(self) -> bool:
        return self.lock is not None

    def wanted(self) -> bool:
        """True when another process waits for this board (it left a live ``.wait-<pid>`` marker).

        A worker holds its board across tests for speed, and hands it over between two tests when someone
        waits: otherwise a worker that is done would keep its board until the whole run ends.
        """
        for marker in self.path.parent.glob(self.path.name + ".wait-*"):
            pid = marker.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            if _alive(int(pid)):
                return True
            marker.unlink(missing_ok=True)  # left behind by a process that died while waiting
        return False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(boards: list[str], *, preferred: int = 0, timeout: float = 600.0, scopes: dict[str, str] | None = None,
            poll: float = 0.1) -> Lease:
    """Lease one free board of ``boards``, trying ``boards[preferred % n]`` first, then the others in order.

    When all are leased, wait up to ``timeout`` seconds for one to come free, then raise ``PortUnavailable``.
    ``scopes`` maps a board to its lease scope (default ``"machine"``).

    Example:
        >>> with acquire(["sim"], scopes={"sim": "doctest"}) as lease:
        ...     lease.board
        'sim'
    """
    from filelock import FileLock, Timeout

    if not boards:
        raise PortUnavailable("no board to lease: pass --tinyml-board")
    n = len(boards)
    order = [boards[(preferred + k) % n] for k in range(n)]
    scopes = scopes or {}
    locks = []
    for board in order:
        path = lease_dir(scopes.get(board, "machine")) / _lock_name(board)
        locks.append((board, path, FileLock(str(path), thread_local=False)))
    deadline = time.monotonic() + timeout
    markers: list[Path] = []
    try:
        while True:
            for board, path, lock in locks:
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                return Lease(board, lock, path)
            if not markers:  # tell the holders someone waits (see Lease.wanted)
                markers = [path.with_name(f"{path.name}.wait-{os.getpid()}") for _, path, _ in locks]
                for marker in markers:
                    marker.touch()
            if time.monotonic() >= deadline:
                raise PortUnavailable(
                    f"all {n} boards stayed leased for {timeout:.0f} s ({', '.join(boards)}): more test workers "
                    "than boards, or another pytest run holds them. Pass more --tinyml-board values or fewer -n "
                    f"workers; leases live in {lease_dir()}", port=boards[0])
            time.sleep(poll)
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_index() -> int:
    """This pytest-xdist worker's number (``gw3`` -> 3), 0 without xdist."""
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else 0


def run_scope() -> str:
    """A name shared by all workers of this test run (xdist's testrun uid), else this process."""
    return "run-" + (os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}")


def link_kind(link, port: str) -> str:
    """``"pty"`` (no baud: the sim, a scripted peer), ``"socket"`` (``socket://``), else ``"serial"``.

    Example:
        >>> link_kind(None, "socket://localhost:4000")
        'socket'
    """
    if port.startswith("socket://"):
        return "socket"
    fd = getattr(link, "fd", None)
    try:
        path = os.ttyname(fd) if isinstance(fd, int) else os.path.realpath(getattr(link, "port", "") or "")
    except OSError:
        return "serial"
    # Linux/BSD Unix98 ptys live in /dev/pts; macOS names its pty slaves /dev/ttys000...
    return "pty" if path.startswith("/dev/pts/") or re.fullmatch(r"/dev/ttys\d+", path) else "serial"
