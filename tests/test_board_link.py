"""The link never hangs: every call has one deadline from ``--tinyml-timeout`` (drain and re-asks included), a
board that stops sending ``m-ready`` costs one timeout, and a port that goes away is ``BoardDisconnected``.
Scripted peers on real ptys; each test bounds its whole run by 2x the timeout.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from board_pty_peer import PtyPeer, ScriptedFirmware

from pytest_tinyml.board import transport
from pytest_tinyml.board.board import Board
from pytest_tinyml.board.client import BenchClient
from pytest_tinyml.errors import BoardDisconnected, BoardError, BoardTimeout

TIMEOUT = 3.0  # the --tinyml-timeout of these tests


def _board(peer, timeout=TIMEOUT) -> Board:
    link = transport.open_port(peer.port, 921600)
    return Board(BenchClient(link, port=peer.port, timeout=timeout, baud=921600), name=peer.port)


class Chatter:
    """Streams ESP-IDF-style log lines into the pty until stopped: a board whose log never pauses."""

    def __init__(self, peer: PtyPeer, period: float = 0.01) -> None:
        self.peer, self.period = peer, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self.peer.send(f"I ({n}) tinyml: sensor frame {n} ok\r\n".encode())
            except OSError:
                return
            time.sleep(self.period)

    def __enter__(self) -> Chatter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=2)


def test_sync_drain_of_a_chattering_board_ends_at_the_timeout():
    """A peer that streams log text and never answers '%': sync() gives up after one timeout (was 263 s)."""
    firmware = ScriptedFirmware(on={"": lambda fw, c: b""})
    with PtyPeer(firmware) as peer, Chatter(peer), _board(peer) as board:
        start = time.monotonic()
        with pytest.raises(BoardTimeout) as info:
            board.connect()
        elapsed = time.monotonic() - start
    assert elapsed < 2 * TIMEOUT, f"sync took {elapsed:.1f} s with --tinyml-timeout={TIMEOUT}"
    assert "kept sending" in str(info.value) or "did not answer '%'" in str(info.value)
    assert "sensor frame" in info.value.log  # the log the board sent is in the report


def test_a_chattering_board_that_answers_still_connects():
    """Log text between replies is not a reply: the board connects while its log keeps streaming."""
    with PtyPeer(ScriptedFirmware()) as peer, Chatter(peer, period=0.02), _board(peer) as board:
        start = time.monotonic()
        assert board.connect()["chip"] == "esp32s3"
        assert time.monotonic() - start < TIMEOUT / 2  # no waiting for a quiet moment that never comes


def test_board_that_stops_sending_m_ready_costs_one_timeout():
    """After one timed-out command, later commands fail fast with the same report instead of waiting again."""
    state = {"mute": False}

    class Muting(ScriptedFirmware):
        def __call__(self, command):
            reply = super().__call__(command)
            return reply.replace(b"m-ready\r\n", b"") if state["mute"] and reply else reply

    with PtyPeer(Muting()) as peer, _board(peer) as board:
        board.connect()
        state["mute"] = True
        start = time.monotonic()
        with pytest.raises(BoardTimeout, match=r"answered `tinyml-info%` \(\d+ lines\) but sent no m-ready"):
            board.client.info()
        first = time.monotonic() - start
        for _ in range(3):
            with pytest.raises(BoardTimeout, match="still no m-ready: every later command fails fast"):
                board.client.info()
        elapsed = time.monotonic() - start
        assert first >= TIMEOUT * 0.9  # the first command did get its full timeout
        assert elapsed < 2 * TIMEOUT, f"four commands took {elapsed:.1f} s with --tinyml-timeout={TIMEOUT}"
        state["mute"] = False  # the board comes back: the next call finds m-ready and goes through
        assert board.client.info()["chip"] == "esp32s3"
        assert board.client.stalled is None


def test_silent_board_is_reported_once_then_fails_fast():
    """A board that answers nothing at all: sync() times out once; later syncs fail fast."""
    with PtyPeer(ScriptedFirmware(on={"": lambda fw, c: b""})) as peer, _board(peer) as board:
        start = time.monotonic()
        with pytest.raises(BoardTimeout, match=r"did not answer '%'|does not settle"):
            board.connect()
        for _ in range(3):
            with pytest.raises(BoardTimeout, match="still no m-ready"):
                board.connect()
        elapsed = time.monotonic() - start
    assert elapsed < 2 * TIMEOUT, f"{elapsed:.1f} s"


def test_timeout_covers_the_whole_command_including_re_asks():
    """Every re-asked line comes back garbled, each slowly: the command still ends within one timeout."""

    class SlowGarble(ScriptedFirmware):
        def __call__(self, command):
            if command.startswith("tinyml-resend"):
                time.sleep(TIMEOUT / 3)
            return super().__call__(command)

    with PtyPeer(SlowGarble(always_garble={5})) as peer, _board(peer) as board:
        board.client.sync()
        board.client.version()
        start = time.monotonic()
        with pytest.raises(BoardError):
            board.client.info()  # line 5 is garbled for good; three slow re-asks would take > 1 timeout
        elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + 0.5, f"{elapsed:.1f} s"


def test_port_closed_before_a_command_is_board_disconnected_with_the_log():
    with PtyPeer(ScriptedFirmware()) as peer, _board(peer) as board:
        board.connect()
        os.close(peer.master)  # the far end goes away (a USB board unplugged, the sim killed)
        peer.master = os.open(os.devnull, os.O_RDONLY)  # so that the peer's own close() has something to close
        start = time.monotonic()
        with pytest.raises(BoardDisconnected) as info:
            board.client.info()
        assert time.monotonic() - start < 2 * TIMEOUT
    error = info.value
    assert "lost the connection to" in str(error) and "unplugged" in str(error)
    assert "info-chip-[esp32s3]" in error.log  # the serial log so far travels with the error
    assert "termios" not in type(error).__module__


def test_port_closed_mid_reply_is_board_disconnected():
    def half_then_gone(fw, command):
        body = fw.reply(["protocol-[1.0]", "firmware-[tinyml-bench 0.1.0]"])
        fw.peer.send(body[: len(body) // 2])
        time.sleep(0.3)  # let the host read it: closing a pty master drops what is still buffered
        os.close(fw.peer.master)
        fw.peer.master = os.open(os.devnull, os.O_RDONLY)
        return None

    firmware = ScriptedFirmware(on={"tinyml-version": half_then_gone})
    with PtyPeer(firmware) as peer, _board(peer) as board:
        firmware.peer = peer
        start = time.monotonic()
        with pytest.raises(BoardDisconnected) as info:
            board.connect()
        assert time.monotonic() - start < 2 * TIMEOUT
    assert "protocol-[1.0]" in info.value.log


def test_port_gone_under_the_fd_is_board_disconnected_not_termios_error():
    """The tty behind the open fd is gone (here: the fd now points at /dev/null, where every tty call fails
    with termios.error, as on an unplugged USB adapter): BoardDisconnected, never a raw termios.error."""
    import termios

    with PtyPeer(ScriptedFirmware()) as peer, _board(peer) as board:
        board.connect()
        fd = board.client.link.fd
        with pytest.raises(termios.error):  # what pyserial's flush() meets underneath
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)
            termios.tcdrain(fd)
        with pytest.raises(BoardDisconnected, match="lost the connection to .*error") as info:
            board.client.info()
    assert "info-build-[3f9c2e1d0a7b]" in info.value.log


def test_board_that_stops_reading_blocks_a_write_for_one_timeout_at_most():
    """The peer stops reading the pty: our write fills the buffer and waits -- for one timeout, then a
    BoardTimeout saying so (not a 'lost connection': the port is still there)."""
    release = threading.Event()

    def stuck(fw, command):
        release.wait(30)  # the peer's reader thread hangs here: nothing more is read from the pty
        return None

    with PtyPeer(ScriptedFirmware(on={"tinyml-hang": stuck})) as peer, _board(peer, timeout=1.0) as board:
        board.connect()
        board.client.send("tinyml-hang")
        start = time.monotonic()
        try:
            with pytest.raises(BoardTimeout, match=r"did not take `tinyml-chunk.*within 1 s: the board stopped reading"):
                for _ in range(10_000):  # far more than a pty buffer holds
                    board.client.send("tinyml-chunk 0 " + "ab" * 480)
            assert time.monotonic() - start < 2 * 1.0 + 0.5
        finally:
            release.set()
