"""``--tinyml-board=embedded``: the tinyml-bench protocol over pytest-embedded's ``dut``, in the test that uses it.

pytest-embedded owns the port: its ``Serial`` opens it once (``--port``, ``--baud``), a reader thread copies
every byte into a message queue, a listener process appends the queue to the test's ``dut.log``, and
``dut.expect`` reads that log file through a pexpect ``fdspawn``. :class:`DutLink` reads through the same
pexpect stream (first what a ``dut.expect`` already buffered past its match, then the log file) and writes
with ``dut.write``, so there is no second open of the port, every board line stays in pytest-embedded's log,
and a ``dut.expect`` after a benchmark continues where the protocol stopped reading.

Flashing belongs to pytest-embedded too: with ``--embedded-services esp,idf`` its ``IdfSerial`` flashes the
test's app when it creates the ``dut`` (``--app-path`` naming a tinyml-bench build, or pytest-tinyml's own build
handed to it: :mod:`~pytest_tinyml.board.embedded_app`); here the build id the board reports is only checked,
and a wrong one is a ``FirmwareError`` saying which flashing path to use. ``--skip-autoflash`` counts as
``--tinyml-skip-flash`` and the other way round. With ``--count`` > 1 the board runs on the dut whose target is
the test's kind (:mod:`~pytest_tinyml.board.embedded_targets`).

This module is imported only by the ``tinyml_board`` fixture under ``--tinyml-board=embedded``; nothing of
pytest-embedded is imported before that (its plugin hands us its objects through fixtures).
"""

from __future__ import annotations

import errno
import os
import time

import pytest

from pytest_tinyml import options
from pytest_tinyml.board.board import Board
from pytest_tinyml.errors import ConfigError, FirmwareError

PLUGIN = "pytest_embedded"
NOT_ACTIVE = (
    "--tinyml-board=embedded runs the benchmark over pytest-embedded's `dut`, but its plugin is not active in "
    "this run: install it (`pip install 'pytest-tinyml[embedded]'`) and enable it with `-p pytest_embedded` "
    "(a `-p no:pytest_embedded` in addopts, or PYTEST_DISABLE_PLUGIN_AUTOLOAD, keeps it out), then pass "
    "`--embedded-services serial --port /dev/ttyUSB0` (or `esp,idf` to let it flash)"
)
WRONG_TARGET = ("pytest-embedded's target is {target}, the test's tinyml_board(kind=...) is for {want}: run it with "
                "--target {want}, or leave `target` to pytest-tinyml (it parametrizes it from kind=)")
_POLL_S = 0.002  # between two looks at the dut's log file when nothing new is in it


class DutLink:
    """A pyserial-like link (``read``, ``write``, ``flush``, ``in_waiting``, ``timeout``) over a pytest-embedded
    ``dut``: reads its pexpect stream, writes with ``dut.write``; :meth:`close` leaves the dut open (its fixture
    closes it).

    Example:
        >>> link = DutLink(dut)  # doctest: +SKIP
        >>> link.write(b"tinyml-version%"); link.read(64)  # doctest: +SKIP
        b'm-protocol-[1.0]\\r\\nm-ready\\r\\n'
    """

    def __init__(self, dut, *, timeout: float = 0.05) -> None:
        self.dut = dut
        self.proc = dut.pexpect_proc
        serial = getattr(dut, "serial", None)
        self.serial = getattr(serial, "proc", None)  # the pyserial object pytest-embedded opened
        self.port = getattr(serial, "port", None) or ""
        self.timeout = timeout
        self.closed = False

    @property
    def in_waiting(self) -> int:
        """Bytes readable now: pexpect's unread buffer plus what the listener appended to the log file."""
        try:
            fd = self.proc.child_fd
            pending = os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR)
        except (OSError, TypeError):
            pending = 0
        return len(self.proc.buffer) + max(pending, 0)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes: what pexpect holds unread first, else new log bytes within ``timeout``."""
        if self.closed:
            raise OSError(errno.EBADF, "the dut link was closed")
        held = self.proc.buffer
        if held:
            self.proc.buffer = held[size:]
            return bytes(held[:size])
        import pexpect

        deadline = time.monotonic() + (self.timeout or 0)
        while True:
            try:
                chunk = self.proc.read_nonblocking(max(size, 1), timeout=0)
            except pexpect.TIMEOUT:
                chunk = b""
            except pexpect.EOF as exc:  # the dut's log stream is gone: the dut was closed under us
                raise OSError(errno.EBADF, f"pytest-embedded's dut stream ended ({exc})") from None
            if chunk:
                return chunk
            if time.monotonic() >= deadline:
                return b""
            time.sleep(_POLL_S)

    def write(self, data: bytes) -> int:
        if self.closed:
            raise OSError(errno.EBADF, "the dut link was closed")
        self.dut.write(bytes(data))  # bytes go out as they are (a str would get a '\n')
        return len(data)

    def flush(self) -> None:
        if self.serial is not None:
            self.serial.flush()

    def close(self) -> None:
        self.closed = True


class DutBoard(Board):
    """A ``Board`` sharing its link with the test: the test may talk to the ``dut`` between two benchmarks and
    leave replies unread, or load another model, so each benchmark first resynchronises and asks the board
    which model it holds.

    Example:
        >>> board = DutBoard(BenchClient(DutLink(dut), port="embedded"), name="embedded")  # doctest: +SKIP
    """

    def benchmark(self, *args, **kwargs):
        self.needs_sync = True
        return super().benchmark(*args, **kwargs)

    def predict(self, *args, **kwargs):
        self.needs_sync = True
        return super().predict(*args, **kwargs)


def check_target(request) -> None:
    """Skip a ``tinyml_board(kind=...)`` test whose kind is not pytest-embedded's ``target`` (before the dut).

    Routing deselects such tests at collection (``embedded_targets.route``); this catches the rest, e.g. a
    ``target`` fixture of the project's own."""
    from pytest_tinyml.board import embedded_targets

    wanted = embedded_targets.kinds_of(request.node)
    target = request.getfixturevalue("target")
    named = embedded_targets.split_targets(target)
    if not wanted or not named or isinstance(target, (tuple, list)):
        return  # several duts: the one of the test's kind is picked once they are up
    if named[0] not in wanted:
        pytest.skip(WRONG_TARGET.format(target=named[0], want=" or ".join(wanted)))


def pick_dut(request, dut):
    """The dut the board runs on: the only one, or with ``--count`` > 1 the one whose target is the test's kind."""
    from pytest_tinyml.board import embedded_targets

    if not isinstance(dut, (tuple, list)):
        return dut
    kinds = embedded_targets.kinds_of(request.node)
    targets = request.getfixturevalue("target")
    index = embedded_targets.dut_index(kinds, targets, tuple(dut))
    if index is None:
        named = ", ".join(str(t) for t in (targets if isinstance(targets, (tuple, list)) else [targets] * len(dut)))
        why = (f"none of them is {' or '.join(kinds)}" if kinds else "the test names no kind to pick one by")
        raise ConfigError(f"--tinyml-board=embedded drives one of this test's {len(dut)} duts (--count, targets "
                          f"{named}); {why}: mark the test tinyml_board(kind=...) with one of their targets, or "
                          "build a Board on dut[i] yourself")
    return dut[index]


def check_firmware(board, config, *, port: str, dut=None) -> None:
    """The board runs what it should, or a ``FirmwareError`` naming how to flash it through pytest-embedded.

    With pytest-embedded's idf service the dut's ``app`` is the truth: the board must report that build's id
    (``embedded_app.app_build_id``). Otherwise it must report the build id of this checkout's firmware sources
    (``tinyml-host``'s for a sim on the pty)."""
    from pytest_tinyml.board import embedded_app, flash, sim

    resolved = options.of(config)
    skipping = embedded_app.skip_flash(config)
    if board.mlperf_only:
        if skipping:
            return  # an MLPerf Tiny firmware flashed by hand: benchmark(None) times its built-in model
        raise FirmwareError(f"{port} runs an MLPerf Tiny firmware without the tinyml-bench protocol: pass "
                            "--tinyml-skip-flash to time its built-in model, or flash the tinyml-bench firmware",
                            port=port, log=board.client.log)
    reported = board.identity.firmware_hash or ""
    app = getattr(dut, "app", None)
    if embedded_app.is_idf_app(app) and embedded_app.app_build_id(app):
        if reported and flash.same_build_hash(reported, embedded_app.app_build_id(app)):
            return
        can_flash = callable(getattr(getattr(dut, "serial", None), "flash", None))
        raise FirmwareError(embedded_app.not_flashed(port, reported, app, skipping=skipping, can_flash=can_flash),
                            port=port, log=board.client.log)
    fw_dir = flash.locate_firmware_dir(resolved.firmware_dir)
    expected = sim.build_hash(fw_dir) if board.where == "sim" else flash.device_build_id(fw_dir)
    if reported and flash.same_build_hash(reported, expected):
        return
    services = str(config.getoption("embedded_services", None) or "")
    if skipping:
        why = ("--tinyml-skip-flash / --skip-autoflash keep what is on the board; flash the current firmware "
               "(drop them and run with --embedded-services esp,idf: pytest-tinyml builds tinyml-bench and "
               "pytest-embedded flashes it)")
    elif "esp" in services.split(","):
        why = ("the esp service alone does not flash: add idf (`--embedded-services esp,idf`), and pytest-tinyml "
               "builds tinyml-bench and pytest-embedded flashes it")
    else:
        why = ("only the serial service is active, which does not flash: run with `--embedded-services esp,idf`, "
               f"or flash by hand: `{flash.by_hand_command(fw_dir, expected)}`")
    if board.where == "sim":
        why = "the sim on this pty was started from other sources: restart it from this checkout's tinyml-host"
    raise FirmwareError(f"the firmware on {port} is stale: it reports build {reported or '(none)'}, the sources in "
                        f"this checkout give {expected[:16]}. {why}", port=port, log=board.client.log)


def board_for_test(request):
    """A :class:`~pytest_tinyml.board.board.Board` over this test's ``dut``, connected and checked; closed
    (the dut left open) when the test ends.

    Example:
        >>> board = board_for_test(request)  # doctest: +SKIP
        >>> board.identity.where  # doctest: +SKIP
        'device'
    """
    from pytest_tinyml.board.client import BenchClient
    from pytest_tinyml.board.fixture import record_result, skip_unless_kind

    config = request.config
    if not config.pluginmanager.has_plugin(PLUGIN):
        raise ConfigError(NOT_ACTIVE)
    check_target(request)
    dut = pick_dut(request, request.getfixturevalue("dut"))
    if getattr(dut, "pexpect_proc", None) is None or not hasattr(dut, "write"):
        raise ConfigError(f"pytest-embedded's dut {type(dut).__name__} has no serial stream: run with "
                          "--embedded-services serial (or esp,idf) and --port")
    resolved = options.of(config)
    link = DutLink(dut)
    port = link.port or "dut"
    baud = config.getoption("baud", None)
    baud = int(baud) if baud else getattr(getattr(dut, "serial", None), "baud", None) or resolved.baud
    name = f"embedded {port}"
    board = DutBoard(BenchClient(link, port=name, timeout=resolved.timeout, baud=baud), name=name, where="device",
                  on_result=record_result)
    request.addfinalizer(board.close)
    board.connect()
    if board.identity is not None and board.identity.chip == "host-sim":
        board.where = "sim"  # the firmware's host build on a pty says so: its figures are the sim's
        board.connect()
    check_firmware(board, config, port=name, dut=dut)
    skip_unless_kind(request, board, name)
    return board
