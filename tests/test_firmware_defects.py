"""The firmware defects of issue 13 that the host build can show (D1, D3, D4), each with the input that
would expose it, run through the real core over a pty (firmware/host/tinyml-host, test engine).

D1: inputs must survive the invoke (TFLM's memory planner reuses an input tensor's bytes); D3: a heap smaller
than the configured arena still boots and says what it got; D4: arena-too-small reports the true need.
"""

from __future__ import annotations

import shutil
import zlib

import pytest
from firmware_host import HostBoard, fields, parse_frame, test_model, test_outputs

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build tinyml-host")

CLOBBERS_INPUT = 4  # test-engine flag: invoke overwrites the input tensor (ENGINE_RPC.md section 4)
TEMPORARIES = 8  # test-engine flag: arena_allocated_bytes leaves out 1/8 of the need


def raw_outputs(b: HostBoard) -> bytes:
    frames = b.framed("tinyml-outputs")
    return b"".join(bytes.fromhex(f.body.rsplit("-[", 1)[1][:-1]) for f in frames[1:])


def mlperf_results(model: bytes, data: bytes) -> str:
    """m-results-[...] the core prints for these outputs (int8, scale 1/256, zero_point -128)."""
    values = [((q if q < 128 else q - 256) + 128) / 256 for q in test_outputs(model, data)]
    return "m-results-[" + ",".join(f"{v:.6g}" for v in values) + "]"


# --- D1: the staged input is copied into its tensor before every invoke ----------------------------------------


def test_every_invoke_sees_the_uploaded_input_although_invoke_overwrites_it(board):
    model = test_model(flags=CLOBBERS_INPUT)
    data = bytes((5 * i + 3) % 256 for i in range(16))
    expected = test_outputs(model, data)
    # The test has teeth: an invoke on what the first invoke left in the tensor gives other outputs.
    clobbered = bytes(expected[i % 4] ^ 0xA5 for i in range(16))
    assert test_outputs(model, clobbered) != expected
    b = board()
    b.upload("model", model)
    b.upload("input", data)
    for _ in range(2):
        b.framed("tinyml-infer 1 0")
        assert raw_outputs(b) == expected
    lines = b.command("infer 3 1")  # MLPerf infer on the uploaded input: 4 invokes
    assert lines[-2] == mlperf_results(model, data)
    b.framed("tinyml-infer 5 2")
    assert raw_outputs(b) == expected
    b.framed("tinyml-ops")  # the profiled run gets the input too
    assert raw_outputs(b) == expected


def test_mlperf_db_input_is_staged_before_every_run_and_only_for_mlperf_infer(board):
    model = test_model(flags=CLOBBERS_INPUT)
    uploaded, db = bytes(range(16)), bytes(range(100, 116))
    assert test_outputs(model, uploaded) != test_outputs(model, db)
    b = board()
    b.upload("model", model)
    b.upload("input", uploaded)
    b.command("db load 16")
    assert b.command(f"db {db.hex()}") == ["m-load-done", "m-ready"]
    for _ in range(2):
        assert b.command("infer 3 1")[-2] == mlperf_results(model, db)
        assert b.command("results")[0] == mlperf_results(model, db)
    b.framed("tinyml-infer 2 0")  # tinyml-infer uses the uploaded input, not the db buffer
    assert raw_outputs(b) == test_outputs(model, uploaded)


def test_an_input_never_uploaded_is_zeros_on_every_run(board):
    model = test_model(flags=CLOBBERS_INPUT, weights=bytes([9, 200, 31]))
    zeros = bytes(16)
    b = board()
    b.upload("model", model)
    for _ in range(2):
        b.framed("tinyml-infer 1 0")
        assert raw_outputs(b) == test_outputs(model, zeros)


def test_a_new_model_drops_the_inputs_staged_for_the_old_one(board):
    model = test_model(flags=CLOBBERS_INPUT)
    b = board()
    b.upload("model", model)
    b.upload("input", bytes(range(16)))
    b.upload("model", model)  # same shape: a stale input would fit, and must not be used
    b.framed("tinyml-infer 1 0")
    assert raw_outputs(b) == test_outputs(model, bytes(16))


# --- D3: an arena larger than the heap ---------------------------------------------------------------------------


def test_a_heap_smaller_than_the_configured_arena_still_boots_and_says_what_it_got(board):
    b = board("--arena-size", "65536", "--boot-heap", "40000")
    got = (40000 - 16384) // 16 * 16  # TINYML_ARENA_MARGIN left free, a multiple of 16
    assert b.banner[3] == f"m-arena-[size={got},configured=65536,shortfall={65536 - got},heap=40000]"
    assert b.banner[-3:] == ["m-timestamp-mode-performance", "m-init-done", "m-ready"]
    assert "m-model-[builtin]" in b.banner  # the built-in model needs 2048 bytes: it fits
    info = {f.body.removeprefix("info-").split("-[", 1)[0]: f.body.split("-[", 1)[1][:-1]
            for f in b.framed("tinyml-info")}
    assert (info["arena-bytes"], info["arena-configured"], info["arena-shortfall"]) == (str(got), "65536",
                                                                                        str(65536 - got))
    arena = fields(b.framed("tinyml-model")[-1].body)
    assert (arena["size"], arena["configured"], arena["shortfall"]) == (str(got), "65536", str(65536 - got))
    # A model that fits the configured arena but not the one the heap allowed: the error says why.
    model = test_model(need=30000)
    b.framed(f"tinyml-load model {len(model)} {zlib.crc32(model):08x}")
    lines = b.command(f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}")
    assert parse_frame(lines[-2]).body == (
        f"[arena-too-small: arena needs at least 30000 bytes, have {got}; raise --arena-size (the arena got {got} of "
        "the 65536 configured bytes: the largest free block at boot was 40000)]")


def test_a_heap_with_room_for_the_arena_adds_no_banner_line(board):
    b = board("--arena-size", "65536", "--boot-heap", str(65536 + 16384))
    assert not any(line.startswith("m-arena-") for line in b.banner)
    assert fields(b.framed("tinyml-arena")[0].body)["shortfall"] == "0"


def test_no_room_for_any_arena_still_brings_the_protocol_up(board):
    b = board("--arena-size", "65536", "--boot-heap", "1000")
    assert b.banner[3] == "m-arena-[size=0,configured=65536,shortfall=65536,heap=1000]"
    assert b.banner[4].startswith("e-[arena-too-small: ") and b.banner[5] == "m-model-[none]"
    assert b.banner[-1] == "m-ready"
    assert b.command("name") == ["m-name-dut-[tinyml-bench]", "m-ready"]


# --- D4: arena-too-small reports the true need ------------------------------------------------------------------


def test_arena_too_small_reports_the_true_need_not_the_allocated_bytes(board):
    need = 5000
    model = test_model(need=need, flags=TEMPORARIES)  # allocated bytes: 5000 - 625 = 4375
    b = board("--arena-size", "4096")
    b.framed(f"tinyml-load model {len(model)} {zlib.crc32(model):08x}")
    lines = b.command(f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}")
    assert parse_frame(lines[-2]).body == "[arena-too-small: arena needs at least 5000 bytes, have 4096; raise --arena-size]"
    # Loaded in an arena that holds it, the two figures are told apart.
    b2 = board("--arena-size", "65536")
    arena = fields(b2.upload("model", model)[-1].body)
    assert (arena["arena_bytes"], arena["used"], arena["arena_allocated_bytes"]) == ("5000", "5000", "4375")


@pytest.mark.parametrize("need", [1, 2047, 2048, 2049, 65535, 65536])
def test_arena_bytes_reaches_the_host_unchanged(board, need):
    b = board("--arena-size", "65536")
    arena = fields(b.upload("model", test_model(need=need, flags=TEMPORARIES))[-1].body)
    assert arena["arena_bytes"] == str(need)


@pytest.mark.parametrize(("heap", "size"), [(65536 + 16384, 65536), (65536 + 16384 - 1, 65520), (16384 + 16, 16),
                                            (16384 + 15, 0), (16384, 0)])
def test_the_arena_is_what_the_heap_allows_with_the_margin_left(board, heap, size):
    # tinyml_arena_fit: the configured size when the block holds it and 16 KiB more, else a multiple of 16.
    b = board("--arena-size", "65536", "--boot-heap", str(heap))
    info = {f.body.removeprefix("info-").split("-[", 1)[0]: f.body.split("-[", 1)[1][:-1]
            for f in b.framed("tinyml-info")}
    assert (info["arena-bytes"], info["arena-shortfall"]) == (str(size), str(65536 - size))
    assert any(line.startswith("m-arena-") for line in b.banner) == (size < 65536)
