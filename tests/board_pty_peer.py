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
