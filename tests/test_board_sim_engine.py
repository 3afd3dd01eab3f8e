"""The sim's engine server (ENGINE_RPC.md) with the real TFLite Micro kernels, driven over fds 3 and 4."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"


class Engine:
    """The engine process, spoken to exactly as tinyml-host does: requests on fd 3, replies on fd 4."""

    def __init__(self, *args: str) -> None:
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        os.set_inheritable(req_r, True)
        os.set_inheritable(rep_w, True)

        def wire():  # runs in the child: put the pipes on 3 and 4
            os.dup2(req_r, 3)
            os.dup2(rep_w, 4)

        self.proc = subprocess.Popen([sys.executable, "-m", "pytest_tinyml.board.sim_engine", *args],
                                     preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=dict(os.environ, TINYML_RPC_IN="3", TINYML_RPC_OUT="4"))
        os.close(req_r)
        os.close(rep_w)
        self.replies = os.fdopen(self.rep_r, "rb")

    def ask(self, line: str) -> str:
        os.write(self.req_w, line.encode() + b"\n")
        return self.replies.readline().decode().strip()

    def close(self) -> str:
        reply = self.ask("bye")
        os.close(self.req_w)
        self.proc.wait(timeout=10)
        self.replies.close()
        return reply


@pytest.fixture
def engine():
    eng = Engine("--arena-size", "65536")
    yield eng
    assert eng.close() == "ok"
    assert eng.proc.returncode == 0


def _kv(reply: str) -> dict:
    assert reply.startswith("ok"), reply
    return dict(part.split("=", 1) for part in reply.split()[1:])


def test_engine_runs_the_model_like_tflm(engine):
    from tflite_micro.python.tflite_micro import runtime

    assert engine.ask("hello 1") == "ok rpc=1 name=tflm-python"
    assert _kv(engine.ask("load " + MODEL.read_bytes().hex())) == {"inputs": "1", "outputs": "1"}
    tin = _kv(engine.ask("tensor in 0"))
    assert tin["type"] == "int8" and tin["dims"] == "1x64" and tin["bytes"] == "64"
    tout = _kv(engine.ask("tensor out 0"))
    assert tout["dims"] == "1x10" and float(tout["scale"]) == pytest.approx(1 / 256)
    arena = _kv(engine.ask("arena"))
    assert 0 < int(arena["used"]) < int(arena["size"]) == 65536

    x = np.random.default_rng(1).integers(-128, 128, (1, 64), dtype=np.int8)
    assert engine.ask("set_input 0 " + x.tobytes().hex()) == "ok"
    assert int(_kv(engine.ask("invoke"))["us"]) >= 0
    got = np.frombuffer(bytes.fromhex(_kv(engine.ask("output 0"))["hex"]), dtype=np.int8)

    reference = runtime.Interpreter.from_bytes(MODEL.read_bytes(), arena_size=65536)
    reference.set_input(x, 0)
    reference.invoke()
    np.testing.assert_array_equal(got, reference.get_output(0).reshape(-1))


def test_engine_says_what_it_is_and_what_it_cannot(engine):
    engine.ask("hello 1")
    info = _kv(engine.ask("info"))
    assert info["chip"] == "host-sim" and info["arena-note"] == "host-64-bit-estimate"
    assert engine.ask("profile").startswith("err unsupported")
    assert engine.ask("frobnicate").startswith("err unsupported unknown request")
    assert engine.ask("arena").startswith("err no-model no model loaded")


def test_engine_errors_say_what_was_needed():
    small = Engine("--arena-size", "1024")
    try:
        reply = small.ask("load " + MODEL.read_bytes().hex())
        assert reply.startswith("err arena-too-small arena needs at least ")
        needed = int(reply.split("at least ")[1].split()[0])
        assert needed > 1024 and "have 1024" in reply
        assert small.ask("load " + (b"not a model at all, no".hex())).startswith("err bad-model ")
        assert small.ask("load " + MODEL.read_bytes()[:300].hex()).startswith("err bad-model ")
    finally:
        small.close()


def test_every_engine_error_code_is_a_protocol_code():
    """The engine answers only codes of the firmware's one list (status.py mirrors tinyml_status.h)."""
    from pytest_tinyml.board.status import CODES

    eng = Engine("--arena-size", "1024")
    try:
        replies = [eng.ask("arena"), eng.ask("output 0"), eng.ask("set_input 0 00"), eng.ask("frobnicate"),
                   eng.ask("load " + b"not a model at all, no".hex()), eng.ask("load " + MODEL.read_bytes().hex()),
                   eng.ask("load zz"), eng.ask("profile")]
    finally:
        eng.close()
    codes = [reply.split()[1] for reply in replies]
    assert all(reply.startswith("err ") for reply in replies), replies
    assert set(codes) <= CODES, sorted(set(codes) - CODES)
    assert {"no-model", "bad-model", "arena-too-small", "unsupported", "engine"} <= set(codes)
    assert "state" not in CODES  # what the engine used to send: the check above would catch it
