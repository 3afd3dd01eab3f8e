"""The core under AddressSanitizer and UBSan, fed garbage mixed with valid commands: it must answer every
command with exactly one m-ready, never crash, never touch memory it does not own."""

from __future__ import annotations

import random
import shlex
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from firmware_host import FIRMWARE, crc_ok, test_model

SANITIZE = "-std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all " \
           "-fno-omit-frame-pointer"


@pytest.fixture(scope="module")
def sanitized_host(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build tinyml-host with sanitizers")
    out = tmp_path_factory.mktemp("tinyml-host-asan")
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE / "host"), f"OUT={out}", f"CFLAGS={SANITIZE}"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "sanitizer" in proc.stderr.lower():
        pytest.skip(f"this gcc cannot build with sanitizers: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    return out / "tinyml-host"


def _session(rng: random.Random) -> bytes:
    model = test_model(inputs=8, outputs=5, weights=bytes(rng.randrange(256) for _ in range(20)))
    valid = ["name", "profile", "help", "timestamp", "db load 8", "db 0001020304050607", "infer 3 1", "results",
             "tinyml-version", "tinyml-info", "tinyml-model", "tinyml-infer 5 1", "tinyml-samples", "tinyml-outputs",
             "tinyml-ops", "tinyml-arena", "tinyml-heap", "tinyml-resend 1 48", "tinyml-resend 99999",
             f"tinyml-load model {len(model)} {zlib.crc32(model):08x}",
             f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}", "tinyml-builtin",
             "tinyml-load input 8 0", "tinyml-chunk 0 00 0", "db print 100 3", "tinyml-samples 4000000000 7",
             f"tinyml-load batch 24 {zlib.crc32(bytes(range(24))):08x}",
             f"tinyml-chunk 0 {bytes(range(24)).hex()} {zlib.crc32(bytes(range(24))):08x}", "tinyml-load batch 16 0",
             "tinyml-predict", "tinyml-predictions", "tinyml-predictions 2 1", "tinyml-predictions 4000000000 9"]
    parts = []
    for _ in range(400):
        kind = rng.random()
        if kind < 0.5:
            parts.append(rng.choice(valid).encode())
        elif kind < 0.8:  # valid command, corrupted
            text = bytearray(rng.choice(valid).encode())
            for _ in range(rng.randint(1, 4)):
                text[rng.randrange(len(text))] = rng.randrange(256)
            parts.append(bytes(text).replace(b"%", b"x"))
        elif kind < 0.95:  # random bytes, sometimes long
            parts.append(bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 40, 900, 1100]))).replace(b"%", b"y"))
        else:  # far past the command limit
            parts.append(b"tinyml-chunk 0 " + b"ab" * 3000)
    return b"%".join(parts) + b"%"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_garbage_and_commands_under_sanitizers(sanitized_host, seed):
    data = _session(random.Random(seed))
    proc = subprocess.run([str(sanitized_host), "--max-runs", "16"], input=data, capture_output=True, timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "Sanitizer" not in stderr and "runtime error" not in stderr, stderr[-3000:]
    lines = proc.stdout.split(b"\r\n")
    # The banner's m-ready, then one per command.
    assert lines.count(b"m-ready") == 1 + data.count(b"%")
    assert all(line.isascii() for line in lines)  # received garbage is never echoed raw
    framed = [line.decode("ascii") for line in lines if line.startswith((b"m-#", b"e-#"))]
    assert len(framed) > 100 and all(crc_ok(line) for line in framed)


def test_external_engine_client_under_sanitizers(sanitized_host):
    engine = shlex.join([sys.executable, str(Path(__file__).with_name("firmware_ref_engine.py")), "--die-after", "24"])
    model = b"REF1" + bytes([6, 0x5A])
    data = bytes(range(6))
    commands = [f"tinyml-load model {len(model)} {zlib.crc32(model):08x}",
                f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}",
                f"tinyml-load input 6 {zlib.crc32(data):08x}", f"tinyml-chunk 0 {data.hex()} {zlib.crc32(data):08x}",
                "tinyml-infer 3 1", "tinyml-outputs", "results", "tinyml-ops", "tinyml-info", "tinyml-arena",
                "tinyml-heap", "tinyml-infer 3 1", "tinyml-model", "name"]
    stdin = "".join(c + "%" for c in commands).encode()
    proc = subprocess.run([str(sanitized_host), "--engine-cmd", engine, "--no-builtin"], input=stdin,
                          capture_output=True, timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "Sanitizer" not in stderr and "runtime error" not in stderr, stderr[-3000:]
    out = proc.stdout.decode("ascii")
    assert "m-#" in out and "output-data-[0]-[0]-[" in out
    assert "[engine: external engine exited (status 3)" in out  # it died on its 24th request (in the second tinyml-infer)
    assert out.count("m-ready") == 1 + len(commands)
