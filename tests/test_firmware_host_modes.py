"""tinyml-host on stdin/stdout (how the sim board runs it, on a pty master), including a simulated panic."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from firmware_host import parse_frame

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build tinyml-host")


def test_stdin_stdout_mode(host_binary):
    proc = subprocess.run([str(host_binary)], input=b"name%tinyml-version%", capture_output=True, timeout=10)
    lines = proc.stdout.decode().split("\r\n")
    assert proc.returncode == 0 and "m-name-dut-[tinyml-bench]" in lines
    assert [parse_frame(line).body for line in lines if line.startswith("m-#")][0] == "protocol-[1.2]"


def test_panic_on_stdin_stdout_reboots_on_the_same_stream(host_binary):
    proc = subprocess.run([str(host_binary), "--panic-at-invoke", "2"], input=b"tinyml-infer 4 0%",
                          capture_output=True, timeout=20)
    lines = proc.stdout.decode().split("\r\n")
    assert proc.returncode == 0
    panic = next(i for i, line in enumerate(lines) if line.startswith("Guru Meditation Error"))
    assert lines[panic - 3:panic] == ["m-warmup-start-0", "m-warmup-done", "m-infer-start-4"]
    assert lines[panic + 1:panic + 4] == ["m-boot-[tinyml-bench 0.1.0]", "m-tinyml-protocol-[1.2]",
                                          "m-reset-reason-[panic]"]
    assert lines.count("m-init-done") == 2 and "m-infer-done" not in lines


def test_bad_options_are_refused_with_usage(host_binary):
    for args in (["--delay-us", "soon"], ["--engine", "tflm"], ["--frobnicate", "1"], ["--tty", "/nonexistent/tty"]):
        proc = subprocess.run([str(host_binary), *args], input=b"", capture_output=True, timeout=10)
        assert proc.returncode == 2 and proc.stdout == b"" and proc.stderr, args
