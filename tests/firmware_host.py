"""Test helpers for the firmware's host-built core (``firmware/host/tinyml-host``), driven over a real pty.

The Python side here is written from ``firmware/PROTOCOL.md`` alone (framing regex, zlib CRC), so the tests
check the C core against the document, not against itself.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
FRAME = re.compile(r"^([me])-#(\d+)-(.*)\*([0-9a-f]{8})$")


_BUILT: list[Path] = []  # one build per test process, shared by the test modules


def build_host(out_dir: Path) -> Path:
    """Build tinyml-host with the firmware's Makefile (-Wall -Wextra -Werror) into ``out_dir``.

    Without make, the same gcc command is run directly. A second call in the same process reuses the first build.
    """
    if _BUILT:
        return _BUILT[0]
    if shutil.which("make"):
        command = ["make", "-s", "-C", str(FIRMWARE / "host"), f"OUT={out_dir}"]
    else:
        sources = sorted((FIRMWARE / "main" / "core").glob("*.c")) + sorted((FIRMWARE / "host").glob("*.c"))
        command = ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
                   f"-I{FIRMWARE / 'main' / 'core'}", f"-I{FIRMWARE / 'host'}", *map(str, sources),
                   "-o", str(out_dir / "tinyml-host")]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"building tinyml-host failed:\n{' '.join(command)}\n{proc.stdout}{proc.stderr}"
    _BUILT.append(out_dir / "tinyml-host")
    return _BUILT[0]


def crc_ok(line: str) -> bool:
    """True when ``line`` is a framed line whose CRC matches (PROTOCOL.md section 2)."""
    match = FRAME.match(line)
    if not match:
        return False
    return f"{zlib.crc32(line[: line.rindex('*')].encode()):08x}" == match.group(4)


@dataclass
class Frame:
    kind: str
    seq: int
    body: str


def parse_frame(line: str) -> Frame:
    """The parts of a framed line; asserts its CRC."""
    assert crc_ok(line), f"bad frame: {line!r}"
    match = FRAME.match(line)
    return Frame(match.group(1), int(match.group(2)), match.group(3))


def fields(body: str) -> dict[str, str]:
    """``k=v`` pairs of the last ``[...]`` of a body: ``arena-[used=1,size=2]`` -> {"used": "1", "size": "2"}."""
    inner = body[body.rindex("[") + 1 : body.rindex("]")]
    return dict(item.split("=", 1) for item in inner.split(",") if "=" in item)


class HostBoard:
    """tinyml-host on the slave side of a pty (``--tty``), this object on the master side: a board and its host."""

    def __init__(self, binary: Path, *args: str, boot_timeout: float = 10.0) -> None:
        self.master, self._slave = os.openpty()
        self.tty = os.ttyname(self._slave)
        # stderr (logs, the external engine's stdout) goes to a file: a pipe nobody reads could fill and block.
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([str(binary), "--tty", self.tty, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._buffer = b""
        self.banner = self.read_reply(timeout=boot_timeout)

    def send(self, data: bytes | str) -> None:
        """Write raw bytes to the board, as a host would write to the serial port."""
        data = data.encode() if isinstance(data, str) else data
        while data:
            written = os.write(self.master, data[:4096])
            data = data[written:]

    def read_line(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from tinyml-host within {timeout} s; got {self._buffer!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self._buffer += os.read(self.master, 65536)
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode("ascii")

    def read_reply(self, timeout: float = 10.0) -> list[str]:
        """Lines up to and including ``m-ready``."""
        lines = []
        while True:
            lines.append(self.read_line(timeout))
            if lines[-1] == "m-ready":
                return lines

    def command(self, text: str, timeout: float = 10.0) -> list[str]:
        """Send ``text%`` and return the reply lines (ending in ``m-ready``)."""
        self.send(text + "%")
        return self.read_reply(timeout)

    def framed(self, text: str) -> list[Frame]:
        """Send a tinyml- command; return its framed lines (CRC-checked) after checking the end-[n] count."""
        lines = self.command(text)
        frames = [parse_frame(line) for line in lines if line.startswith(("m-#", "e-#"))]
        errors = [f for f in frames if f.kind == "e"]
        assert not errors, f"{text}: {errors}"
        assert frames and frames[-1].body == f"end-[{len(frames) - 1}]", lines
        return frames[:-1]

    def error(self, text: str) -> str:
        """Send a command that must fail; return its error text (``code: message``), plain or framed."""
        lines = self.command(text)
        errors = [line for line in lines if line.startswith("e-")]
        assert len(errors) == 1, lines
        line = errors[0]
        if line.startswith("e-#"):
            body = parse_frame(line).body
        else:
            body = line[2:]
        assert body.startswith("[") and body.endswith("]"), line
        return body[1:-1]

    def upload(self, target: str, data: bytes, chunk: int = 256, index: int | None = None) -> list[Frame]:
        """Announce and send ``data``; return the framed lines of the last chunk's reply."""
        extra = "" if index is None else f" {index}"
        self.framed(f"tinyml-load {target} {len(data)} {zlib.crc32(data):08x}{extra}")
        frames: list[Frame] = []
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            frames = self.framed(f"tinyml-chunk {offset} {piece.hex()} {zlib.crc32(piece):08x}")
        return frames

    def close(self) -> str:
        """Close the pty (tinyml-host exits on EIO); return its stderr. Closing twice returns it again."""
        if self._stderr.closed:
            return self._stderr_text
        os.close(self.master)
        os.close(self._slave)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.seek(0)
        self._stderr_text = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        return self._stderr_text


def test_model(inputs: int = 16, outputs: int = 4, need: int = 2048, flags: int = 0,
               weights: bytes = bytes(range(1, 9))) -> bytes:
    """A model of the test engine (ENGINE_RPC.md section 4)."""
    return b"TST1" + bytes([inputs, outputs]) + need.to_bytes(4, "little") + bytes([flags]) + weights


def test_outputs(model: bytes, data: bytes) -> bytes:
    """What the test engine computes for ``data`` (ENGINE_RPC.md section 4), written from the document."""
    out_n, weights = model[5], model[11:]
    acc = sum((i + 1) * b for i, b in enumerate(data))
    return bytes((acc + weights[j % len(weights)] + j) % 256 for j in range(out_n))


test_model.__test__ = False  # helpers, not tests
test_outputs.__test__ = False


def build_host_as(chip: str, out_dir: Path, cpu_mhz: int | None = None) -> Path:
    """A TEST build of tinyml-host that reports ``chip`` (and ``cpu_mhz``) like a board of that chip
    (``-DTINYML_HOST_CHIP``, ENGINE_RPC.md): the real core standing in for a board, for routing by chip.

    Its timings and arena are the host's; it is opened as a serial board (``open_board``) with
    ``--build`` set to the device build id, so the freshness check passes without flashing.
    """
    defines = [f'-DTINYML_HOST_CHIP="{chip}"'] + ([f'-DTINYML_HOST_CPU_MHZ="{cpu_mhz}"'] if cpu_mhz else [])
    sources = sorted((FIRMWARE / "main" / "core").glob("*.c")) + sorted((FIRMWARE / "host").glob("*.c"))
    binary = out_dir / f"tinyml-host-{chip}"
    command = ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-D_GNU_SOURCE",
               f"-I{FIRMWARE / 'main' / 'core'}", f"-I{FIRMWARE / 'host'}", '-DTINYML_BUILD_ID="standin"',
               '-DTINYML_CFLAGS="test build"', *defines, *map(str, sources), "-o", str(binary), "-lm"]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"building tinyml-host as {chip} failed:\n{' '.join(command)}\n{proc.stderr}"
    return binary
