"""tinyml-host with an external engine process (firmware/host/ENGINE_RPC.md), over a real pty.

The reference engine (tests/firmware_ref_engine.py) checks the RPC client; the last test runs the plugin's
real TFLite Micro engine on the firmware's built-in model.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from firmware_host import FIRMWARE, HostBoard, fields, parse_frame

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build tinyml-host")

REF_ENGINE = Path(__file__).with_name("firmware_ref_engine.py")
REF_MODEL = b"REF1" + bytes([6, 0x5A])


@pytest.fixture
def ref_board(host_binary):
    boards = []

    def start(*engine_args, host_args=()):
        command = shlex.join([sys.executable, str(REF_ENGINE), *engine_args])
        boards.append(HostBoard(host_binary, "--engine-cmd", command, "--no-builtin", *host_args))
        return boards[-1]

    yield start
    for b in boards:
        assert b.proc.poll() is None or b.proc.returncode == 0
        stderr = b.close()
        assert b.proc.returncode == 0, stderr


def test_model_input_infer_outputs_through_the_engine(ref_board):
    b = ref_board(host_args=("--delay-us", "300"))
    bodies = [f.body for f in b.upload("model", REF_MODEL)]
    assert bodies[2:] == ["tensor-[in]-[0]-[type=uint8,bytes=6,dims=1x6x1,scale=0.5,zero_point=3]",
                          "tensor-[out]-[0]-[type=uint8,bytes=6,dims=1x6x1,scale=0.25,zero_point=-7]",
                          "arena-[used=1234,size=65536,arena_bytes=1234,arena_allocated_bytes=0,configured=65536,"
                          "shortfall=0]"]
    data = bytes([1, 2, 3, 4, 250, 6])
    b.upload("input", data)
    b.framed("tinyml-infer 4 1")
    samples = [int(v) for v in b.framed("tinyml-samples")[0].body.split("]-[")[1][:-1].split(",")]
    assert len(samples) == 4 and all(42 + 300 <= s < 42 + 300 + 20000 for s in samples)  # engine us + real sleep
    out = b.framed("tinyml-outputs")
    expected = bytes(x ^ 0x5A for x in reversed(data))
    assert out[1].body == f"output-data-[0]-[0]-[{expected.hex()}]"
    results = b.command("results")[0]
    assert results == "m-results-[" + ",".join(f"{(x + 7) * 0.25:g}" for x in expected) + "]"
    assert [f.body for f in b.framed("tinyml-ops")] == ["op-[0]-[OP_A]-[5]", "op-[1]-[OP_B]-[7]"]


def test_info_merges_engine_keys_and_decodes_them(ref_board):
    b = ref_board()
    info = dict(f.body.removeprefix("info-")[:-1].split("-[", 1) for f in b.framed("tinyml-info"))
    assert info["chip"] == "ref-chip"  # the engine replaces the host's chip=host-sim
    assert info["note"] == "a b%c"  # percent-decoded
    assert info["engine"] == "external:ref-python"
    assert info["protocol"] == "1.2" and "build" in info
    # The engine's stdout went to tinyml-host's stderr, never into the protocol stream.
    assert "noise on stdout while serving info" in b.close()


def test_engine_errors_reach_the_protocol_host(ref_board):
    b = ref_board()
    for model, expected in [(b"BIG!xx", "[arena-too-small: arena needs at least 999999 bytes, have 65536]"),
                            (b"nope", "[bad-model: not a REF1 model]")]:
        b.framed(f"tinyml-load model {len(model)} {zlib.crc32(model):08x}")
        lines = b.command(f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}")
        assert parse_frame(lines[-2]).body == expected


def test_a_dead_engine_is_an_error_and_the_protocol_stays_up(ref_board):
    b = ref_board("--die-after", "3")  # hello, load, tensor in 0 ... then gone
    b.framed(f"tinyml-load model {len(REF_MODEL)} {zlib.crc32(REF_MODEL):08x}")
    lines = b.command(f"tinyml-chunk 0 {REF_MODEL.hex()} {zlib.crc32(REF_MODEL):08x}")
    assert parse_frame(lines[-2]).body.startswith("[engine: external engine exited (status 3)")
    assert b.command("name") == ["m-name-dut-[tinyml-bench]", "m-ready"]
    assert b.error("tinyml-builtin").startswith("no-model")


@pytest.mark.slow
def test_sim_engine_runs_the_builtin_model_with_real_tflm(host_binary, tmp_path):
    pytest.importorskip("tflite_micro")
    sim = pytest.importorskip("pytest_tinyml.board.sim_engine")
    model_path = FIRMWARE / "models" / "builtin.tflite"
    command = shlex.join([sys.executable, "-m", sim.__name__, "--arena-size", "65536"])
    b = HostBoard(host_binary, "--engine-cmd", command, "--builtin-model", str(model_path), boot_timeout=60)
    try:
        assert "m-model-[builtin]" in b.banner
        model = b.framed("tinyml-model")
        assert fields(model[0].body)["source"] == "builtin"
        arena = fields(model[-1].body)
        assert 0 < int(arena["used"]) <= 65536
        lines = b.command("infer 5 1", timeout=60)
        assert lines[-2].startswith("m-results-[") and lines[-3] == "m-infer-done"
        samples = b.framed("tinyml-samples")[0].body
        assert len(samples.split(",")) == 5
    finally:
        b.close()


def test_an_engine_that_fails_the_handshake_stops_tinyml_host(host_binary):
    proc = subprocess.run([str(host_binary), "--engine-cmd", "exit 5"], input=b"", capture_output=True, timeout=20)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"external engine failed the handshake: engine: external engine exited (status 5)" in proc.stderr


@pytest.mark.parametrize(("kind", "expected"), [("kws", "kws01"), ("vww", "vww01"), ("ic", "ic01"), ("ad", "ad01"),
                                                ("kws-nodw", None), ("ad-conv", None)])
def test_profile_names_the_mlperf_model_by_signature_and_ops(ref_board, kind, expected):
    import hashlib

    b = ref_board()
    model = b"MLPF" + kind.encode()
    b.upload("model", model)
    name = expected or f"uploaded-{hashlib.sha256(model).hexdigest()[:16]}"
    assert b.command("profile") == ["m-profile-[tinyml-bench 0.1.0]", f"m-model-[{name}]", "m-ready"]


def test_an_engine_code_outside_the_protocol_reaches_the_host_as_engine(ref_board):
    b = ref_board()
    b.upload("model", b"REF1" + bytes([6, 0x33]))  # the ref engine's model whose profile sends an unknown code
    assert b.error("tinyml-ops") == "engine: weird-code: the ref engine made this code up"


@pytest.mark.slow
def test_sim_engine_gives_the_first_runs_outputs_on_every_run(host_binary):
    # Issue 13 "done when": one uploaded input, tinyml-infer 1 0 twice and MLPerf infer 3 1 give the same
    # outputs as the first run, with the real TFLite Micro kernels behind the core.
    pytest.importorskip("tflite_micro")
    sim = pytest.importorskip("pytest_tinyml.board.sim_engine")
    command = shlex.join([sys.executable, "-m", sim.__name__, "--arena-size", "65536"])
    b = HostBoard(host_binary, "--engine-cmd", command, "--builtin-model", str(FIRMWARE / "models" / "builtin.tflite"),
                  boot_timeout=60)
    try:
        data = bytes((7 * i) % 256 for i in range(16))
        b.upload("input", data)

        def outputs() -> str:
            return "".join(f.body for f in b.framed("tinyml-outputs"))

        b.framed("tinyml-infer 1 0")
        first = outputs()
        b.framed("tinyml-infer 1 0")
        assert outputs() == first
        results = b.command("infer 3 1", timeout=60)[-2]
        assert outputs() == first and results.startswith("m-results-[")
        other = bytes(255 - x for x in data)  # the check has teeth: another input gives other outputs
        b.upload("input", other)
        b.framed("tinyml-infer 1 0")
        assert outputs() != first
    finally:
        b.close()


@pytest.mark.slow
def test_a_converted_kws_model_is_kws01_to_an_mlperf_runner(host_binary, tmp_path):
    # The MLPerf model rule on a real model: the zoo's DS-CNN (op for op the published kws_ref_model graph,
    # tests/test_mlperf_graphs.py), converted to int8, uploaded to the sim; the built-in model is not kws01.
    pytest.importorskip("tflite_micro")
    keras = pytest.importorskip("keras")
    np = pytest.importorskip("numpy")
    import pytest_tinyml as tinyml

    sim = pytest.importorskip("pytest_tinyml.board.sim_engine")
    keras.utils.set_random_seed(0)
    spec = tinyml.zoo.spec("kws_dscnn")
    samples = np.random.default_rng(0).random((100, *spec.input_shape)).astype(np.float32)
    art = tinyml.convert(tinyml.zoo.build("kws_dscnn"), "int8", representative=samples)
    command = shlex.join([sys.executable, "-m", sim.__name__, "--arena-size", str(1 << 20)])
    b = HostBoard(host_binary, "--engine-cmd", command, "--builtin-model", str(FIRMWARE / "models" / "builtin.tflite"),
                  boot_timeout=60)
    try:
        assert b.command("profile")[1] == "m-model-[builtin]"
        b.upload("model", art.content)
        assert b.command("profile")[1] == "m-model-[kws01]"
    finally:
        b.close()
