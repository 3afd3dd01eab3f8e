"""The firmware's portable core, built for the host with gcc and driven over a real pty like a board.

Every command of firmware/PROTOCOL.md, every error path, the MLPerf Tiny session, framing and resend.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zlib

import pytest
from firmware_host import (
    FIRMWARE,
    FRAME,
    HostBoard,
    crc_ok,
    fields,
    parse_frame,
    test_model,
    test_outputs,
)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build tinyml-host")

BUILTIN = test_model()  # the test engine's built-in model (ENGINE_RPC.md section 4)


def invoke_us(n: int, outputs: int = 4, delay: int = 0) -> int:
    """The test engine's time of the n-th invoke since load."""
    return 1000 + 10 * outputs + n % 5 + delay


# --- boot, MLPerf Tiny commands -------------------------------------------------------------------------------


def test_boot_banner_says_protocol_reset_reason_and_model(board):
    b = board()
    assert b.banner == ["m-boot-[tinyml-bench 0.1.0]", "m-tinyml-protocol-[1.2]", "m-reset-reason-[poweron]",
                        "m-model-[builtin]", "m-timestamp-mode-performance", "m-init-done", "m-ready"]
    assert board("--reset-reason", "brownout", "--no-builtin").banner[2:4] == ["m-reset-reason-[brownout]",
                                                                                "m-model-[none]"]


def test_mlperf_name_profile_help_timestamp_and_empty_command(board):
    b = board()
    assert b.command("name") == ["m-name-dut-[tinyml-bench]", "m-ready"]
    assert b.command("profile") == ["m-profile-[tinyml-bench 0.1.0]", "m-model-[builtin]", "m-ready"]
    help_lines = b.command("help")
    assert any(line.startswith("tinyml-resend") for line in help_lines) and help_lines[-1] == "m-ready"
    assert b.command("timestamp") == ["m-lap-us-0", "m-ready"]  # fake clock: no invoke yet
    assert b.command("") == ["m-ready"]
    # CR, LF and spaces around a command are ignored, as a terminal or an MLPerf runner may send them.
    b.send("  name \r\n%\r\n")
    assert b.read_reply() == ["m-name-dut-[tinyml-bench]", "m-ready"]


def test_mlperf_session_db_infer_results(board):
    b = board()
    data = bytes(range(100, 116))
    assert b.command("db load 16") == ["m-[Expecting 16 bytes]", "m-ready"]
    assert b.command(f"db {data[:5].hex()}") == ["m-ready"]
    assert b.command(f"db {data[5:].hex().upper()}") == ["m-load-done", "m-ready"]
    assert b.command("db print") == ["m-buffer-" + "-".join(f"{x:02x}" for x in data[:8]),
                                     "m-buffer-" + "-".join(f"{x:02x}" for x in data[8:]), "m-ready"]
    lines = b.command("infer 5 2")
    assert lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-5"]
    laps = [int(line.removeprefix("m-lap-us-")) for line in lines if line.startswith("m-lap-us-")]
    assert len(laps) == 2 and laps[1] - laps[0] == sum(invoke_us(n) for n in range(2, 7))
    assert lines[-3] == "m-infer-done" and lines[-1] == "m-ready"
    values = [float(v) for v in lines[-2].removeprefix("m-results-[").removesuffix("]").split(",")]
    # int8 output, scale 1/256, zero_point -128
    assert values == pytest.approx([((q if q < 128 else q - 256) + 128) / 256 for q in test_outputs(BUILTIN, data)],
                                   abs=1e-6)
    assert b.command("results") == [lines[-2], "m-ready"]
    # MLPerf infer keeps per-run samples too.
    samples = b.framed("tinyml-samples")
    assert samples[0].body == "samples-[0]-[" + ",".join(str(invoke_us(n)) for n in range(2, 7)) + "]"


def test_mlperf_errors_are_plain_lines(board):
    b = board()
    assert b.error("db") == "bad-argument: db needs a subcommand: load N, print, or hex data"
    assert b.error("db 0011") == "no-upload: no db buffer; send db load N first"
    assert b.error("db load 0").startswith("bad-argument: db load needs a byte count from 1 to 27648")
    assert b.error("db load 27649").startswith("bad-argument")
    b.command("db load 4")
    assert b.error("db 0g11") == "bad-hex: invalid hex digit 'g' at position 1"
    assert b.error("db 001") == "odd-hex: odd number of hex digits (3); two digits per byte"
    assert b.error("db 0001020304") == "past-end: 5 bytes at offset 0 go past the announced 4 bytes"
    assert b.command("db print") == ["m-buffer-00-00-00-00", "m-ready"]  # nothing written by the failures
    assert b.error("infer 1 0").startswith("input-size: db holds 0 of the 4 announced bytes")
    b.command("db 01020304")
    assert b.error("infer 1 0") == "input-size: input tensor 0 needs 16 bytes, db holds 4"
    assert b.error("infer 0") == "bad-argument: infer N [W] needs N >= 1 and 0 <= W <= 100000"
    assert b.error("infer x").startswith("bad-argument")
    assert b.error("frobnicate").startswith("unknown-command: Unknown command: frobnicate")
    for line in b.command("frobnicate"):
        assert not line.startswith("e-#")  # an MLPerf host expects e-[...]


def test_infer_before_load_and_reads_before_run(board):
    b = board("--no-builtin")
    assert b.error("infer 1 0").startswith("no-model: no model is loaded")
    assert b.error("tinyml-infer 1 0").startswith("no-model: no model is loaded")
    assert b.error("tinyml-model").startswith("no-model")
    assert b.error("tinyml-arena").startswith("no-model")
    assert b.error("tinyml-ops").startswith("no-model")
    assert b.error("tinyml-outputs").startswith("no-model")
    assert b.error("tinyml-builtin").startswith("no-model: this firmware has no built-in model")
    assert b.error("tinyml-load input 16 0").startswith("no-model")
    assert b.command("profile")[1] == "m-model-[none]"
    b.upload("model", BUILTIN)
    assert b.error("tinyml-samples").startswith("no-results")
    assert b.error("tinyml-outputs").startswith("no-results")
    assert b.error("results").startswith("no-results")


# --- framing ----------------------------------------------------------------------------------------------------


def test_framed_lines_have_consecutive_seqs_and_valid_crcs(board):
    b = board()
    seen = []
    for command in ["tinyml-version", "tinyml-info", "tinyml-model", "tinyml-infer 3 1", "tinyml-samples",
                    "tinyml-outputs", "tinyml-arena", "tinyml-ops", "tinyml-heap"]:
        for line in b.command(command):
            if line.startswith(("m-#", "e-#")):
                assert crc_ok(line), line
                seen.append(parse_frame(line).seq)
            else:
                assert not FRAME.match(line)
    assert seen == list(range(1, len(seen) + 1))


def test_version_and_info(board):
    b = board("--build", "abc123def456")
    assert [f.body for f in b.framed("tinyml-version")] == ["protocol-[1.2]", "firmware-[tinyml-bench 0.1.0]"]
    info = {}
    for frame in b.framed("tinyml-info"):
        key, value = frame.body.removeprefix("info-").split("-[", 1)
        info[key] = value[:-1]
    assert info["protocol"] == "1.2" and info["build"] == "abc123def456" and info["chip"] == "host-sim"
    assert info["reset-reason"] == "poweron" and info["engine"] == "test" and info["max-runs"] == "1000"
    assert info["batch-max-bytes"] == "16384"  # the core's default; --batch-max / CONFIG_TINYML_BATCH_MAX set it
    assert "-Werror" in info["cflags"] and info["compiler"].startswith("gcc")


def test_resend_gives_back_a_garbled_line_byte_for_byte(board):
    b = board("--garble-seq", "2")
    lines = b.command("tinyml-version")
    assert crc_ok(lines[0]) and not crc_ok(lines[1]) and crc_ok(lines[2])
    assert FRAME.match(lines[1]) and int(FRAME.match(lines[1]).group(2)) == 2  # the seq survived
    again = b.command("tinyml-resend 2")
    assert len(again) == 2 and crc_ok(again[0]) and parse_frame(again[0]).body == "firmware-[tinyml-bench 0.1.0]"
    assert b.command("tinyml-resend 1 3")[:3] == [lines[0], again[0], lines[2]]
    assert b.command("tinyml-resend 2")[0] == again[0]  # identical each time, no new seq used


def test_resend_of_lines_gone_or_not_sent(board):
    b = board()
    b.framed("tinyml-version")  # seqs 1..3
    assert b.error("tinyml-resend 9").startswith("resend-gone: line 9 was not sent yet; the last sent is 3")
    b.framed("tinyml-infer 100 0")
    b.framed("tinyml-samples")  # 7 sample lines
    for _ in range(20):
        b.framed("tinyml-arena")  # two lines each: pushes seq 1 out of the 48 held
    assert b.error("tinyml-resend 1").startswith("resend-gone: line 1 is no longer held; held are")
    assert b.error("tinyml-resend 0").startswith("bad-argument")
    assert b.error("tinyml-resend 1 49").startswith("bad-argument")


# --- uploads --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 256, 480])
def test_model_upload_in_chunks_then_infer_samples_and_outputs(board, chunk):
    b = board()
    model = test_model(inputs=24, outputs=70, need=3000, weights=bytes(range(200, 240)))
    frames = b.upload("model", model, chunk=chunk)
    bodies = [f.body for f in frames]
    assert fields(bodies[0]) == {"offset": str((len(model) - 1) // chunk * chunk),
                                 "bytes": str(len(model) - (len(model) - 1) // chunk * chunk),
                                 "received": str(len(model)), "length": str(len(model))}
    assert fields(bodies[1]) == {"source": "uploaded", "bytes": str(len(model)),
                                 "crc32": f"{zlib.crc32(model):08x}", "sha256": hashlib.sha256(model).hexdigest()}
    assert bodies[2] == "tensor-[in]-[0]-[type=int8,bytes=24,dims=1x24,scale=0.0078125,zero_point=0]"
    assert bodies[3] == "tensor-[out]-[0]-[type=int8,bytes=70,dims=1x70,scale=0.00390625,zero_point=-128]"
    assert bodies[4] == ("arena-[used=3000,size=65536,arena_bytes=3000,arena_allocated_bytes=3000,configured=65536,"
                         "shortfall=0]")
    assert b.command("profile")[1] == f"m-model-[uploaded-{hashlib.sha256(model).hexdigest()[:16]}]"

    data = bytes((7 * i + 3) % 256 for i in range(24))
    assert fields(b.upload("input", data)[-1].body) == {"index": "0", "bytes": "24", "crc32": f"{zlib.crc32(data):08x}"}
    lines = b.command("tinyml-infer 20 3")
    assert lines[:4] == ["m-warmup-start-3", "m-warmup-done", "m-infer-start-20", "m-infer-done"]
    run = fields(parse_frame(lines[4]).body)
    times = [invoke_us(n, outputs=70) for n in range(3, 23)]
    assert run == {"runs": "20", "warmup": "3", "total_us": str(sum(times)), "min_us": str(min(times)),
                   "max_us": str(max(times))}
    samples = b.framed("tinyml-samples")
    assert [f.body for f in samples] == [f"samples-[0]-[{','.join(map(str, times[:16]))}]",
                                         f"samples-[16]-[{','.join(map(str, times[16:]))}]"]
    assert b.framed("tinyml-samples 18 5")[0].body == f"samples-[18]-[{times[18]},{times[19]}]"
    assert b.error("tinyml-samples 20").startswith("bad-argument: start 20 is past the 20 samples held")
    out = b.framed("tinyml-outputs")
    assert out[0].body == "output-[0]-[type=int8,bytes=70,dims=1x70,scale=0.00390625,zero_point=-128]"
    raw = b"".join(bytes.fromhex(f.body.rsplit("-[", 1)[1][:-1]) for f in out[1:])
    assert [f.body.split("]-[")[1] for f in out[1:]] == ["0", "64"]
    assert raw == test_outputs(model, data)
    assert [f.body for f in b.framed("tinyml-outputs 0")] == [f.body for f in out]
    assert b.error("tinyml-outputs 1").startswith("bad-argument: output index 1: the model has 1 output(s)")


def test_upload_error_paths(board):
    b = board()
    model = test_model()
    crc = f"{zlib.crc32(model):08x}"
    assert b.error("tinyml-chunk 0 00 d202ef8d").startswith("no-upload: no upload in progress")
    assert b.error("tinyml-load model").startswith("bad-argument: use tinyml-load model LENGTH CRC32")
    assert b.error("tinyml-load model 0 00").startswith("bad-argument")
    assert b.error("tinyml-load model 10 xyz").startswith("bad-argument")
    assert b.error("tinyml-load thing 10 00").startswith("bad-argument")
    b.framed(f"tinyml-load model {len(model)} {crc}")
    first, rest = model[:8], model[8:]
    assert b.error(f"tinyml-chunk 1 {first.hex()}").startswith("bad-argument: use tinyml-chunk OFFSET HEX CRC32")
    assert b.error(f"tinyml-chunk 0 {first.hex()} {zlib.crc32(first) ^ 1:08x}") == (
        f"chunk-crc: chunk at offset 0 has CRC32 {zlib.crc32(first):08x}, the command says "
        f"{zlib.crc32(first) ^ 1:08x}; send it again")
    assert b.error(f"tinyml-chunk 0 {first.hex()[:-1]} 0").startswith("odd-hex: odd number of hex digits (15)")
    assert b.error("tinyml-chunk 0 00zz 0") == "bad-hex: invalid hex digit 'z' at position 2 of the chunk"
    b.framed(f"tinyml-chunk 0 {first.hex()} {zlib.crc32(first):08x}")
    # The same chunk again (its reply was lost): harmless.
    b.framed(f"tinyml-chunk 0 {first.hex()} {zlib.crc32(first):08x}")
    assert b.error(f"tinyml-chunk 9 {rest.hex()} {zlib.crc32(rest):08x}") == (
        "bad-offset: chunk offset 9 is past the 8 bytes received so far; send offset 8")
    over = rest + b"\x00"
    assert b.error(f"tinyml-chunk 8 {over.hex()} {zlib.crc32(over):08x}") == (
        f"past-end: chunk of {len(over)} bytes at offset 8 goes past the announced length {len(model)}")
    # A whole-upload CRC mismatch discards the upload.
    b.framed(f"tinyml-load model {len(model)} {zlib.crc32(model) ^ 0xFF:08x}")
    lines = b.command(f"tinyml-chunk 0 {model.hex()} {crc}")
    assert parse_frame(lines[0]).body.startswith("chunk-[offset=0")
    assert parse_frame(lines[1]).body == (f"[crc-mismatch: upload of {len(model)} bytes has CRC32 {crc}, announced "
                                          f"{zlib.crc32(model) ^ 0xFF:08x}; discarded, start again with tinyml-load]")
    assert b.error(f"tinyml-chunk 0 {model.hex()} {crc}").startswith("no-upload")
    assert b.command("profile")[1] == "m-model-[none]"
    # Input uploads are checked against the input tensor.
    b.framed("tinyml-builtin")
    assert b.error("tinyml-load input 15 0") == "input-size: input tensor 0 needs 16 bytes, got 15"
    assert b.error("tinyml-load input 16 0 1") == "bad-argument: input index 1: the model has 1 input(s)"


def test_model_failures_say_what_was_needed(board):
    b = board("--arena-size", "4096", "--max-model-bytes", "100000")
    frames_error = b.command("tinyml-load model 200000 1234")
    assert parse_frame(frames_error[0]).body == (
        "[model-too-big: model needs 200000 bytes, have 100000 (largest free block)]")
    for model, expected in [
        (test_model(need=5000), "[arena-too-small: arena needs at least 5000 bytes, have 4096; raise --arena-size]"),
        (test_model(need=40 << 20), f"[arena-too-small: arena needs more than {16 << 20} bytes (the largest trial "
                                    "arena), have 4096]"),
        (test_model(flags=1), "[unsupported-op: op TEST_UNSUPPORTED is not in the op resolver]"),
        (b"TFL3" + bytes(20), "[bad-model: not a test model: magic TST1 missing]"),
    ]:
        b.framed(f"tinyml-load model {len(model)} {zlib.crc32(model):08x}")
        lines = b.command(f"tinyml-chunk 0 {model.hex()} {zlib.crc32(model):08x}")
        assert [parse_frame(line).body for line in lines[:-1]][-1] == expected
        assert b.command("profile")[1] == "m-model-[none]"


def test_invoke_failure_and_run_limits(board):
    b = board("--max-runs", "10")
    b.upload("model", test_model(flags=2))
    assert b.error("tinyml-infer 5 0") == "invoke-failed: run 2: Invoke() returned 1 (test model flag bit 1)"
    b.upload("model", test_model(flags=2))
    assert b.error("tinyml-infer 5 4") == "invoke-failed: warm-up run 2: Invoke() returned 1 (test model flag bit 1)"
    b.framed("tinyml-builtin")
    assert b.error("tinyml-infer 11 0") == ("too-many-runs: 11 runs asked, this firmware keeps at most 10 samples "
                                            "(CONFIG_TINYML_MAX_RUNS); split the runs")
    assert b.error("tinyml-infer 0 0").startswith("bad-argument")
    assert b.error("tinyml-infer 1 100001").startswith("bad-argument")
    # MLPerf infer is not capped (a runner picks N); the first max-runs samples are kept.
    assert b.command("infer 25 0")[-3] == "m-infer-done"
    assert sum(len(f.body.split(",")) for f in b.framed("tinyml-samples")) == 10


# --- batches (protocol 1.2) ------------------------------------------------------------------------------------


def _predictions(frames) -> dict[int, bytes]:
    """{sample: output bytes} from prediction-[<sample>]-[<offset>]-[<hex>] lines, checking offsets are in order."""
    out: dict[int, bytes] = {}
    for f in frames:
        sample, offset, data = f.body.removeprefix("prediction-[").removesuffix("]").split("]-[")
        assert int(offset) == len(out.get(int(sample), b""))
        out[int(sample)] = out.get(int(sample), b"") + bytes.fromhex(data)
    return out


def test_batch_upload_predict_and_read_back_in_ranges(board):
    b = board("--batch-max", "1024")
    model = test_model(inputs=24, outputs=70, weights=bytes(range(200, 240)))  # 70-byte outputs: 2 lines each
    b.upload("model", model)
    samples = [bytes((7 * i + 13 * k + 1) % 256 for i in range(24)) for k in range(12)]
    data = b"".join(samples)
    assert b.upload("batch", data, chunk=100)[-1].body == f"batch-[samples=12,bytes=288,crc32={zlib.crc32(data):08x}]"
    times = [invoke_us(n, outputs=70) for n in range(12)]
    assert [f.body for f in b.framed("tinyml-predict")] == [
        f"predict-[samples=12,total_us={sum(times)},min_us={min(times)},max_us={max(times)}]"]
    expected = {k: test_outputs(model, s) for k, s in enumerate(samples)}
    everything = b.framed("tinyml-predictions")
    assert len(everything) == 24 and _predictions(everything) == expected
    assert _predictions(b.framed("tinyml-predictions 10 5")) == {10: expected[10], 11: expected[11]}
    assert _predictions(b.framed("tinyml-predictions 3 1")) == {3: expected[3]}
    # The run is a run: each sample's invoke time, and the last sample's outputs.
    assert ",".join(map(str, times[:12])) in "".join(f.body for f in b.framed("tinyml-samples"))
    out = b.framed("tinyml-outputs 0")
    assert b"".join(bytes.fromhex(f.body.rsplit("-[", 1)[1][:-1]) for f in out[1:]) == expected[11]
    # The same batch again gives the same outputs (the inputs are staged, not consumed).
    b.framed("tinyml-predict")
    assert _predictions(b.framed("tinyml-predictions")) == expected


def test_batch_error_paths_say_what_was_needed(board):
    b = board("--no-builtin", "--batch-max", "64")
    assert b.error("tinyml-load batch 16 0").startswith("no-model: no model is loaded; load one before its batch")
    assert b.error("tinyml-predict").startswith("no-model")
    b.upload("model", test_model(inputs=16, outputs=4))
    assert b.error("tinyml-predict") == "no-upload: no batch is staged; upload one with tinyml-load batch LENGTH CRC32"
    assert b.error("tinyml-predictions") == "no-upload: no batch is staged; upload one with tinyml-load batch LENGTH CRC32"
    assert b.error("tinyml-load batch 15 0") == ("input-size: a batch is whole samples of input tensor 0 (16 bytes "
                                                 "each), got 15 bytes")
    assert b.error("tinyml-load batch 80 0") == ("bad-argument: a batch of 5 samples needs 80 input and 20 output "
                                                 "bytes, batch-max-bytes is 64; send at most 4 samples")
    assert b.error("tinyml-load batch 16 0 1").startswith("bad-argument: use tinyml-load model LENGTH CRC32")
    b.upload("batch", bytes(64))
    assert b.error("tinyml-predictions") == "no-results: the staged batch has not run; send tinyml-predict"
    assert b.error("tinyml-predict 3") == "bad-argument: use tinyml-predict (no argument: it runs the staged batch)"
    b.framed("tinyml-predict")
    assert b.error("tinyml-predictions 4") == "bad-argument: start 4 is past the 4 samples of the batch"
    assert b.error("tinyml-predictions x").startswith("bad-argument: use tinyml-predictions [START] [COUNT]")
    # Outputs larger than inputs count too.
    b.upload("model", test_model(inputs=4, outputs=40))
    assert b.error("tinyml-load batch 8 0") == ("bad-argument: a batch of 2 samples needs 8 input and 80 output "
                                                "bytes, batch-max-bytes is 64; send at most 1 samples")
    # A model load drops the batch; a failed invoke says which sample and leaves no predictions.
    b.upload("model", test_model(flags=2))
    assert b.error("tinyml-predict").startswith("no-upload")
    b.upload("batch", bytes(64))
    assert b.error("tinyml-predict") == "invoke-failed: sample 2: Invoke() returned 1 (test model flag bit 1)"
    assert b.error("tinyml-predictions").startswith("no-results")


def test_batch_without_room_says_so(board):
    b = board("--max-model-bytes", "3000", "--batch-max", "65536")
    b.upload("model", test_model(inputs=16, outputs=4))
    assert b.error("tinyml-load batch 4000 0").startswith("no-room: batch needs 4000 bytes, have ")
    b.upload("batch", bytes(1600))  # 1600 in + 400 out fit the 3000-byte heap (with the model's)
    assert b.framed("tinyml-predict")[0].body.startswith("predict-[samples=100,")


def test_overlong_command_is_rejected_then_parsing_recovers(board):
    b = board()
    b.send("x" * 1500 + "%")
    assert b.read_reply() == [
        "e-[too-long: command longer than 1024 bytes discarded; send at most 1024 bytes before %]", "m-ready"]
    assert b.command("name") == ["m-name-dut-[tinyml-bench]", "m-ready"]
    # 1024 bytes exactly is still a command.
    b.command("db load 600")
    assert b.command("db " + "ab" * 510) == ["m-ready"]


def test_delay_us_is_inside_the_timed_window(board):
    b = board("--delay-us", "500")
    b.framed("tinyml-infer 3 0")
    assert b.framed("tinyml-samples")[0].body == "samples-[0]-[" + ",".join(
        str(invoke_us(n, delay=500)) for n in range(3)) + "]"


def test_ops_arena_heap(board):
    b = board("--max-model-bytes", "50000")
    assert [f.body for f in b.framed("tinyml-ops")] == [f"op-[0]-[TEST_MAC]-[{invoke_us(0) - 200}]",
                                                        "op-[1]-[TEST_ADD]-[200]"]
    assert fields(b.framed("tinyml-arena")[0].body) == {
        "used": "2048", "size": "65536", "arena_bytes": "2048", "arena_allocated_bytes": "2048",
        "configured": "65536", "shortfall": "0"}
    assert b.framed("tinyml-heap")[0].body == "heap-[free=50000,min_free=50000,largest=50000]"
    b.command("db load 1000")
    assert b.framed("tinyml-heap")[0].body == "heap-[free=49000,min_free=49000,largest=49000]"


def test_simulated_panic_reboots_with_reset_reason(board):
    b = board("--panic-at-invoke", "3")
    b.send("tinyml-infer 5 0%")
    lines = []
    while not lines or lines[-1] != "m-init-done":
        lines.append(b.read_line())
    assert any(line.startswith("Guru Meditation Error") for line in lines)
    assert "m-reset-reason-[panic]" in lines
    assert b.read_line() == "m-ready"
    assert b.framed("tinyml-version")[0].seq == 1  # all state is gone, sequence numbers restart
    b.framed("tinyml-infer 5 0")  # the re-exec'd program does not panic again


def test_protocol_md_frames_are_valid_and_every_documented_command_exists(board):
    text = (FIRMWARE / "PROTOCOL.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    frames = [line.split()[0] for block in blocks for line in block.splitlines()
              if FRAME.match(line.split()[0] if line.split() else "")]
    assert len(frames) > 40
    # Lines shortened with "..." (the garbled-line example among them) are not real frames.
    assert [f for f in frames if not crc_ok(f) and "..." not in f] == []
    commands = sorted(set(re.findall(r"^### `([a-z-]+)", text, flags=re.M)))
    assert len(commands) >= 20
    b = board()
    for command in commands:
        reply = b.command(command)
        assert not any("unknown-command" in line for line in reply), (command, reply)


def test_any_upload_in_any_chunking_round_trips(host_binary):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    b = HostBoard(host_binary)

    @hypothesis.settings(max_examples=30, deadline=None, database=None)
    @hypothesis.given(inputs=st.integers(1, 64), outputs=st.integers(1, 80), weights=st.binary(min_size=1, max_size=300),
                      chunk=st.integers(1, 480), data=st.data())
    def round_trip(inputs, outputs, weights, chunk, data):
        model = test_model(inputs=inputs, outputs=outputs, weights=weights)
        frames = b.upload("model", model, chunk=chunk)
        assert fields(frames[1].body)["sha256"] == hashlib.sha256(model).hexdigest()
        sample = data.draw(st.binary(min_size=inputs, max_size=inputs))
        b.upload("input", sample, chunk=max(1, chunk // 3))
        b.framed("tinyml-infer 1 0")
        out = b.framed("tinyml-outputs")
        raw = b"".join(bytes.fromhex(f.body.rsplit("-[", 1)[1][:-1]) for f in out[1:])
        assert raw == test_outputs(model, sample)

    try:
        round_trip()
    finally:
        b.close()
