"""A scripted board on the far side of a real pty, for fault tests: it answers, or misbehaves, on purpose.

The test opens ``peer.port`` (the pty's slave path) with pyserial exactly like a serial device; the peer's
thread reads commands (ending in ``%``) from the master side and writes whatever its ``handler`` returns.
"""

from __future__ import annotations

import os
import select
import threading
import tty


class PtyPeer:
    """Run ``handler(command: str) -> bytes | None`` for each ``%``-terminated command on a pty.

    Example:
        >>> with PtyPeer(lambda cmd: b"m-ready\\r\\n") as peer:  # doctest: +SKIP
        ...     open_port(peer.port, 115200)
    """

    def __init__(self, handler, *, greeting: bytes = b"") -> None:
        self.handler = handler
        self.greeting = greeting
        self.master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation: the bytes a UART would carry
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty survives the host closing and reopening it
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PtyPeer:
        if self.greeting:
            os.write(self.master, self.greeting)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            buffer += chunk
            while b"%" in buffer:
                command, buffer = buffer.split(b"%", 1)
                text = command.decode(errors="replace").strip()
                self.commands.append(text)
                reply = self.handler(text)
                if reply:
                    os.write(self.master, reply)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def framed(seq: int, body: str, kind: str = "m") -> str:
    """A framed line as PROTOCOL.md defines it (CRC computed here with zlib, independently of the client)."""
    import zlib

    head = f"{kind}-#{seq}-{body}"
    return f"{head}*{zlib.crc32(head.encode()):08x}"


class ScriptedFirmware:
    """A tiny stand-in for the firmware's protocol layer: framing, resend, version and info, with faults.

    ``garble``: sequence numbers whose first transmission gets one byte flipped (as tinyml-host's
    --garble-seq); ``always_garble``: sequence numbers that are garbled on every resend too;
    ``on``: command -> callable returning raw bytes to send instead of the normal reply (silence, a reset...).
    """

    BANNER = ("m-boot-[tinyml-bench 0.1.0]\r\nm-tinyml-protocol-[1.0]\r\nm-reset-reason-[{reason}]\r\n"
              "m-model-[none]\r\nm-init-done\r\nm-ready\r\n")

    def __init__(self, *, chip="esp32s3", build="3f9c2e1d0a7b", garble=(), always_garble=(), on=None,
                 version="1.0"):
        self.seq = 0
        self.sent: dict[int, str] = {}
        self.chip, self.build, self.version = chip, build, version
        self.garble, self.always_garble = set(garble), set(always_garble)
        self.on = on or {}

    def _emit(self, bodies, kind="m") -> str:
        out = []
        for body in bodies:
            self.seq += 1
            line = framed(self.seq, body, kind)
            self.sent[self.seq] = line
            if self.seq in self.garble or self.seq in self.always_garble:
                self.garble.discard(self.seq)
                line = line[:-3] + ("0" if line[-3] != "0" else "1") + line[-2:]
            out.append(line)
        return "".join(line + "\r\n" for line in out)

    def reply(self, bodies) -> bytes:
        return (self._emit(list(bodies) + [f"end-[{len(bodies)}]"]) + "m-ready\r\n").encode()

    def error(self, code, text) -> bytes:
        return (self._emit([f"[{code}: {text}]"], kind="e") + "m-ready\r\n").encode()

    def __call__(self, command: str):
        verb = command.split(" ")[0] if command else ""
        if verb in self.on:
            return self.on[verb](self, command)
        if command == "":
            return b"m-ready\r\n"
        if verb == "tinyml-version":
            return self.reply([f"protocol-[{self.version}]", "firmware-[tinyml-bench 0.1.0]"])
        if verb == "tinyml-info":
            return self.reply([f"info-chip-[{self.chip}]", f"info-build-[{self.build}]", "info-cpu-mhz-[240]"])
        if verb == "tinyml-model":
            return self.error("no-model", "no model is loaded; upload one with tinyml-load model")
        if verb == "tinyml-resend":
            parts = command.split()
            start, count = int(parts[1]), int(parts[2]) if len(parts) > 2 else 1
            out = ""
            for seq in range(start, start + count):
                if seq not in self.sent:
                    return (out + self._emit([f"[resend-gone: line {seq} is not sent yet]"], "e") + "m-ready\r\n").encode()
                line = self.sent[seq]
                if seq in self.always_garble:
                    line = line[:-3] + ("0" if line[-3] != "0" else "1") + line[-2:]
                out += line + "\r\n"
            return (out + "m-ready\r\n").encode()
        return f"e-[unknown-command: Unknown command: {verb}]\r\nm-ready\r\n".encode()


def _pty_serial(device: str):
    """A pty has no modem lines: the RFC 2217 server below ignores DTR/RTS requests and reports them low."""
    import serial

    class PtySerial(serial.Serial):
        cts = dsr = ri = cd = False

        def _update_dtr_state(self):
            pass

        def _update_rts_state(self):
            pass

        def _update_break_state(self):
            pass

    return PtySerial(device, 115200, timeout=0.05)


def rfc2217_server(device: str):
    """pyserial's RFC 2217 port manager serving ``device`` on a local TCP port, for one connection."""
    import socket
    import threading

    import serial.rfc2217

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ser = _pty_serial(device)
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(0.05)
        manager = serial.rfc2217.PortManager(ser, _SocketWriter(conn))
        while not stop.is_set():
            data = ser.read(ser.in_waiting or 1)
            if data:
                conn.sendall(b"".join(manager.escape(data)))
            try:
                incoming = conn.recv(4096)
            except TimeoutError:
                continue
            if not incoming:
                break
            ser.write(b"".join(manager.filter(incoming)))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close():
        stop.set()
        thread.join(timeout=5)
        ser.close()
        listener.close()

    return listener.getsockname()[1], close


class _SocketWriter:
    def __init__(self, conn):
        self.conn = conn

    def write(self, data):
        self.conn.sendall(data)
