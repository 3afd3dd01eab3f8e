"""Host side of the tinyml-bench serial protocol (``firmware/PROTOCOL.md``, version 1.x).

Commands go out as ``text%``; replies are ``\\r\\n`` lines up to ``m-ready``. Lines that carry numbers are
framed (``m-#<seq>-<body>*<crc32>``): a garbled or lost one is asked again with ``tinyml-resend`` a bounded
number of times, never misread. Error lines become typed errors; a boot banner or an ESP-IDF panic in the
middle of a reply becomes :class:`~pytest_tinyml.errors.BoardReset`; a port that closes or vanishes becomes
:class:`~pytest_tinyml.errors.BoardDisconnected`; bytes that are mostly not text become a baud-rate hint
(on a UART; a pty has no baud). Works over anything with pyserial's ``read``/``write``/``in_waiting``.
"""

from __future__ import annotations

import re
import time

from pytest_tinyml.board.device_errors import (
    DeviceArenaTooSmall,
    DeviceModelRejected,
    ModelTooBig,
    device_error,
)
from pytest_tinyml.board.framing import Framed, Reply, brackets, crc32_hex, fields, frame, parse_framed
from pytest_tinyml.board.status import Status
from pytest_tinyml.board.transport import link_kind
from pytest_tinyml.errors import BoardDisconnected, BoardReset, BoardTimeout, ProtocolError

__all__ = ["Client", "DeviceArenaTooSmall", "DeviceModelRejected", "Framed", "ModelTooBig", "Reply", "brackets",
           "crc32_hex", "fields", "frame", "parse_framed"]

SUPPORTED_MAJOR = 1
MAX_REASKS = 3  # per line, as PROTOCOL.md suggests
PROBE_S = 0.5  # how long a call on a stalled link waits for m-ready before failing fast
_NUDGE_S = 0.5  # after a reply's end line, how long to wait for m-ready before asking with '%'
_READ_S = 0.05  # one read's longest wait: deadlines are checked between reads
_LOG_LIMIT = 64 * 1024
_LINE_LIMIT = 4096
_SEQ_ONLY = re.compile(r"^[me]-#(\d+)-")
# ESP-IDF / ROM text that means the chip rebooted or crashed (besides our own m-boot banner).
_RESET_MARKERS = ("m-boot-[", "rst:0x", "ets Jun", "ESP-ROM:", "Guru Meditation Error", "abort() was called",
                  "Rebooting...", "Brownout detector", "CPU halted", "register dump:")
try:
    from termios import error as _TermiosError
except ImportError:  # Windows: pyserial raises SerialException (an OSError) only
    _TermiosError = OSError
_LINK_ERRORS = (OSError, _TermiosError)
_REASON = re.compile(r"m-reset-reason-\[([^\]]*)\]|rst:0x[0-9a-f]+ \(([A-Z_]+)\)|Guru Meditation Error: (.*)")


class Client:
    """Speaks the protocol over an open link; keeps the serial log for error messages.

    Every public call (:meth:`sync`, :meth:`command`, :meth:`exchange`) has ONE deadline, ``timeout``
    seconds from its start, that covers all its waits: the drain, the reply, re-asks of garbled lines. A
    call that ran into its deadline marks the link *stalled*: until the board answers ``%`` with ``m-ready``
    again, every later call only probes briefly (:data:`PROBE_S`) and fails fast with the first report, so a
    board that stopped talking costs one timeout, not one per command.

    Example:
        >>> client = Client(open_port("/dev/ttyUSB0", 921600), port="/dev/ttyUSB0")  # doctest: +SKIP
        >>> client.command("tinyml-version").bodies("protocol-")  # doctest: +SKIP
        ['protocol-[1.0]']
    """

    def __init__(self, link, *, port: str, timeout: float = 30.0, baud: int | None = None) -> None:
        self.link = link
        self.port = port
        self.timeout = float(timeout)
        self.baud = baud
        self.kind = link_kind(link, port)
        self.log = ""
        self.next_seq: int | None = None
        self.stalled: BoardTimeout | None = None  # the report of the call that ran into its deadline
        self._buffer = b""
        self._junk = 0  # non-text bytes since the last good line
        self._junk_total = 0
        self._junk_since: float | None = None
        self.reasks = 0
        try:  # reads must return on their own: every wait below is bounded by a deadline
            if link.timeout is None or link.timeout > _READ_S:
                link.timeout = _READ_S
            # a board that stops reading blocks our writes: at most one timeout (rfc2217 has no write timeout)
            if getattr(link, "write_timeout", None) is not None:
                link.write_timeout = self.timeout
        except (AttributeError, *_LINK_ERRORS):
            pass

    # -- bytes and lines ----------------------------------------------------------------------------------

    def _keep(self, text: str) -> None:
        self.log = (self.log + text)[-_LOG_LIMIT:]

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _readline(self, deadline: float) -> str | None:
        """The next line without its ``\\r\\n``, or None at the deadline."""
        while True:
            if b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("latin-1")
                self._keep(line + "\n")
                if line.startswith(("m-", "e-")) and _is_text(raw):
                    self._junk, self._junk_since = 0, None
                return line
            if len(self._buffer) > _LINE_LIMIT:
                self._keep(self._buffer.decode("latin-1"))
                self._buffer = b""
            now = time.monotonic()
            if now >= deadline:
                return None
            try:
                chunk = self.link.read(max(1, self.link.in_waiting or 1))
            except _LINK_ERRORS as exc:  # serial.SerialException is an OSError; termios.error is not
                raise self._lost(exc) from None
            if chunk:
                junk = sum(1 for b in chunk if not (32 <= b < 127 or b in (9, 10, 13)))
                self._junk += junk
                self._junk_total += junk
                if self._junk >= 48 and self._junk_since is None:
                    self._junk_since = now
                # A reset also sends non-text (the ROM talks at another baud): only junk that no good line
                # follows within a second means a baud mismatch.
                if self._junk_since is not None and now - self._junk_since > 1.0:
                    self._keep(chunk.decode("latin-1"))
                    raise self._junk_error()
                self._buffer += chunk

    def _junk_error(self) -> ProtocolError:
        """Bytes that are not text: a baud mismatch on a UART; a pty has no baud, so there it is the peer."""
        if self.kind == "pty":
            why = ("this port is a pty, which has no baud rate: the program on its other side writes binary "
                   "data. Check that it is tinyml-host or a bridge to the board, not a raw dump")
        else:
            baud = f" (now {self.baud})" if self.baud else ""
            why = (f"the baud rate does not match the firmware's console. Check --tinyml-baud{baud} against "
                   "CONFIG_TINYML_BAUD of the firmware (default 921600)")
            if self.kind == "socket":
                why += ", and the baud the socket server uses for the board"
        return ProtocolError(f"{self.port} sends bytes that are not text: {why}", port=self.port, log=self.log)

    def send(self, command: str) -> None:
        try:
            self.link.write(command.encode("ascii") + b"%")
            self.link.flush()
        except _LINK_ERRORS as exc:  # termios.error from tcdrain on a closed pty, SerialException otherwise
            if type(exc).__name__ == "SerialTimeoutException":  # pyserial's write timeout: the board is there
                raise self._stall(BoardTimeout(
                    f"{self.port} did not take `{command[:40]}%` within {self.timeout:g} s: the board stopped reading "
                    "its serial input (stuck, or its console is not on this port); reset it", port=self.port,
                    log=self.log)) from None
            raise self._lost(exc) from None

    def _lost(self, exc: Exception) -> BoardDisconnected:
        if self._buffer:  # the unfinished last line is part of what the board said
            self._keep(self._buffer.decode("latin-1") + "\n")
            self._buffer = b""
        return BoardDisconnected(f"lost the connection to {self.port} ({type(exc).__name__}: {exc}): was the "
                                 "board unplugged or reset by another program, or did the sim process die? "
                                 "Reconnect it and run again", port=self.port, log=self.log)

    def _drain(self, quiet: float, deadline: float) -> tuple[list[str], bool]:
        """Read and log what is pending until the link stays quiet for ``quiet`` s or ``deadline`` passes.

        Returns the lines read and whether the link went quiet (False: it was still talking at the deadline).
        """
        lines: list[str] = []
        while True:
            now = time.monotonic()
            if now >= deadline:
                return lines, False
            line = self._readline(min(deadline, now + quiet))
            if line is None:
                if time.monotonic() >= deadline:
                    return lines, False
                return lines, True
            lines.append(line)

    def drain(self, quiet: float = 0.05) -> int:
        """Read and log whatever is pending until the link stays quiet for ``quiet`` s (at most one timeout)."""
        lines, _ = self._drain(quiet, self._deadline())
        return len(lines)

    def _probe(self) -> None:
        """On a stalled link: a short ``%`` -> ``m-ready`` check. Clears the stall, or raises its report again."""
        if self.stalled is None:
            return
        deadline = time.monotonic() + min(PROBE_S, self.timeout)
        self._drain(0.02, deadline)
        self.send("")
        while True:
            line = self._readline(deadline)
            if line is None:
                raise BoardTimeout(f"{self.stalled.args[0]}\n(still no m-ready: every later command fails fast "
                                   "until the board answers again; reset or reconnect it)", port=self.port,
                                   log=self.log)
            if line == "m-ready":
                self._drain(0.05, deadline)  # the late reply's m-ready and ours: one of them may still come
                self.stalled, self.next_seq = None, None
                return

    def _stall(self, error: BoardTimeout) -> BoardTimeout:
        self.stalled = error
        return error

    def sync(self, attempts: int = 4) -> None:
        """Resynchronise: send ``%`` until one ``m-ready`` comes back and no second one follows.

        A board that is (re)booting prints its banner first; a reply to an earlier ``%`` may still be on the
        way: both are read and dropped, so the next command's reply is really its own. The whole call,
        drain included, takes at most one timeout.
        """
        self._probe()
        deadline = self._deadline()
        # Drop what is pending; a board whose log never pauses is asked anyway, its m-ready found among the log.
        _, quiet = self._drain(0.05, min(deadline, time.monotonic() + min(1.0, self.timeout / 4)))
        self.next_seq = None  # lines drained here may have used sequence numbers
        for _ in range(attempts):
            self.send("")
            try:
                self._collect("", deadline)
            except BoardReset:  # the banner ended with m-ready; our '%' is answered after it
                continue
            except BoardTimeout as exc:
                if not quiet:
                    exc.args = (exc.args[0] + "; meanwhile it kept sending log text without a pause: turn its log "
                                "output down (CONFIG_LOG_DEFAULT_LEVEL)",)
                raise
            # a second m-ready (of a late reply) comes at once, if at all; log text may go on
            after, _ = self._drain(0.05, min(deadline, time.monotonic() + 0.25))
            if not any(line == "m-ready" or line.startswith(("m-#", "e-")) for line in after):
                return  # log text may keep coming; another reply may not
        raise self._stall(BoardTimeout(
            f"{self.port} does not settle on '%' -> m-ready: is the benchmark firmware running, and is nothing "
            "else writing to the port?", port=self.port, log=self.log))

    # -- commands -----------------------------------------------------------------------------------------

    def _collect(self, command: str, deadline: float) -> list[str]:
        """Lines up to ``m-ready``, before ``deadline``. A reset marker raises BoardReset once the banner ended.

        When the reply has ended (its ``end-`` or error line came) but no ``m-ready`` follows within
        :data:`_NUDGE_S`, the ``m-ready`` may have been garbled: one ``%`` asks for another.
        """
        lines: list[str] = []
        nudged = False
        ended_at: float | None = None
        junk_before = self._junk_total
        while True:
            nudge = min(_NUDGE_S, self.timeout / 4)
            wait_until = deadline if ended_at is None or nudged else min(deadline, ended_at + nudge)
            line = self._readline(wait_until)
            if line is None:
                if time.monotonic() < deadline:  # the reply ended, its m-ready did not come: ask for one
                    nudged = True
                    self.send("")
                    continue
                if self._junk_total > junk_before and not lines:  # only noise came back
                    raise self._junk_error()
                raise self._stall(self._timeout(command, lines))
            if any(marker in line for marker in _RESET_MARKERS):
                self._after_reset(command, line, deadline)
            if line == "m-ready":
                if nudged:  # the late original m-ready or the one for our '%': swallow the other one too
                    self._drain(0.2, deadline)
                return lines
            if line.startswith(("m-", "e-")):
                lines.append(line)
                if line.startswith("e-") or (line.startswith("m-#") and "-end-[" in line):
                    ended_at = time.monotonic()  # a reply ends with its end line or its error line

    def _timeout(self, command: str, lines: list[str]) -> BoardTimeout:
        shown = f"`{command}%`" if command else "'%'"
        if lines:
            text = (f"{self.port} answered {shown} ({len(lines)} lines) but sent no m-ready within "
                    f"{self.timeout:g} s: the firmware stopped finishing its replies (stuck after a reply, or not "
                    "the tinyml-bench firmware); reset the board")
        else:
            text = (f"{self.port} did not answer {shown} within {self.timeout:g} s (raise --tinyml-timeout for "
                    "slow models; check that the board runs the benchmark firmware)")
        return BoardTimeout(text, port=self.port, log=self.log)

    def _after_reset(self, command: str, first: str, deadline: float) -> None:
        """Read the rest of the boot banner (up to m-ready) for the reset reason, then raise BoardReset."""
        self.next_seq = None
        reason = _reason(first)
        deadline = max(min(deadline, time.monotonic() + 10.0), time.monotonic() + 0.5)
        while True:
            line = self._readline(deadline)
            if line is None or line == "m-ready":
                break
            reason = _reason(line) or reason
        what = f"during `{command}%`" if command else "while connecting"
        raise BoardReset(
            f"{self.port} reset {what} (reset reason: {reason or 'unknown'}); the partial result was discarded "
            "and the board lost its uploaded model. A panic usually means the arena or stack overflowed: see the "
            "serial log", port=self.port, log=self.log)

    def exchange(self, command: str) -> list[str]:
        """Send any command (an MLPerf Tiny ``db``/``infer`` too) and return its ``m-``/``e-`` lines up to
        ``m-ready``, unframed and unchecked. Same deadline and stall rules as :meth:`command`.

        Example:
            >>> client.exchange("name")  # doctest: +SKIP
            ['m-name-dut-[tinyml-bench]']
        """
        self._probe()
        deadline = self._deadline()
        self.send(command)
        return self._collect(command, deadline)

    def command(self, command: str) -> Reply:
        """Send a ``tinyml-`` command and return its complete, CRC-checked reply (error lines raise).

        Example:
            >>> client.command("tinyml-arena").bodies("arena-")  # doctest: +SKIP
            ['arena-[used=2944,size=131072]']
        """
        self._probe()
        deadline = self._deadline()
        self.send(command)
        lines = self._collect(command, deadline)
        reply = Reply(command, plain=[ln for ln in lines if not ln.startswith(("m-#", "e-#"))])
        good: dict[int, Framed] = {}
        garbled: list[int | None] = []
        for line in lines:
            if not line.startswith(("m-#", "e-#")):
                continue
            try:
                framed = parse_framed(line)
            except ValueError:
                seq = _SEQ_ONLY.match(line)
                garbled.append(int(seq.group(1)) if seq else None)
                continue
            good[framed.seq] = framed
        for line in reply.plain:
            if line.startswith("e-["):
                raise self._device_error(command, line[2:])
        if not good and not garbled:
            raise ProtocolError(f"{self.port} answered `{command}%` with no framed line: is this the tinyml-bench "
                                "firmware (an MLPerf-only firmware cannot do this)?", port=self.port, log=self.log)
        self._complete(command, good, garbled, deadline)
        last = max(good)
        self.next_seq = last + 1
        reply.framed = [good[s] for s in sorted(good)]
        error = next((f for f in reply.framed if f.is_error), None)
        if error is not None:
            raise self._device_error(command, error.body)
        return reply

    def _complete(self, command: str, good: dict[int, Framed], garbled: list[int | None], deadline: float) -> None:
        """Ask again, by sequence number, for every garbled or missing line of the reply, a bounded number of times."""
        known = sorted(set(good) | {s for s in garbled if s is not None})
        first = self.next_seq if self.next_seq is not None else (known[0] if known else None)
        if first is None:
            raise self._garbled(command, "every framed line of the reply was garbled")
        tries: dict[int, int] = {}
        while True:
            end = next((f for f in good.values() if f.body.startswith("end-[")), None)
            if end is not None:
                first = end.seq - int(brackets(end.body)[0])
                wanted = range(first, end.seq + 1)
            else:
                error = next((f for f in good.values() if f.is_error), None)
                # no end line: the reply failed at its error line, or lost its tail (ask for one past the last)
                top = error.seq if error is not None else max(known) + 1
                wanted = range(first, top + 1)
            missing = [s for s in wanted if s not in good]
            if not missing:
                return
            seq = missing[0]
            tries[seq] = tries.get(seq, 0) + 1
            if tries[seq] > MAX_REASKS:
                raise self._garbled(command, f"line {seq} stayed garbled or lost after {MAX_REASKS} re-asks")
            self.reasks += 1
            for framed in self._resend(seq, deadline):
                if framed.is_error and framed.body.startswith(f"[{Status.RESEND_GONE.value}"):
                    if end is None and not any(f.is_error for f in good.values()):
                        raise self._garbled(command, f"line {seq} was never sent (the reply lost its end)")
                    raise self._garbled(command, f"line {seq} is no longer held by the board")
                good.setdefault(framed.seq, framed)
            known = sorted(set(known) | set(good))

    def _resend(self, seq: int, deadline: float) -> list[Framed]:
        self.send(f"tinyml-resend {seq}")
        out = []
        for line in self._collect(f"tinyml-resend {seq}", deadline):
            try:
                framed = parse_framed(line)
            except ValueError:
                continue  # garbled again: the caller counts the try
            if framed is not None:
                out.append(framed)
        return out

    def _garbled(self, command: str, why: str) -> ProtocolError:
        self.next_seq = None  # an error line may have used a sequence number: relearn it from the next reply
        error = ProtocolError(f"{self.port}: reply to `{command}%` is corrupt ({why}): the serial link is noisy. "
                              "Check the cable, lower --tinyml-baud, or use a shorter USB lead", port=self.port,
                              log=self.log)
        error.corrupt_reply = True  # the board is fine: a read-only command may simply be sent again
        return error

    def _device_error(self, command: str, body: str) -> ProtocolError:
        return device_error(self.port, command, body, self.log)

def _is_text(raw: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 13) for b in raw)


def _reason(line: str) -> str | None:
    match = _REASON.search(line)
    if not match:
        return None
    return next(g for g in match.groups() if g)
