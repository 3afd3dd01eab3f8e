"""The host side of PROTOCOL.md against scripted firmware on real ptys: framing, re-asks and every fault."""

from __future__ import annotations

import pytest
from board_pty_peer import PtyPeer, ScriptedFirmware, framed

from pytest_tinyml.board import protocol, transport
from pytest_tinyml.board.board import Board
from pytest_tinyml.board.client import BenchClient
from pytest_tinyml.errors import BoardReset, BoardTimeout, ConfigError, ProtocolError


def _board(peer, timeout=2.0) -> Board:
    link = transport.open_port(peer.port, 921600)
    return Board(BenchClient(link, port=peer.port, timeout=timeout, baud=921600), name=peer.port)


def test_framing_matches_the_spec_examples():
    assert framed(3, "end-[2]") == protocol.frame(3, "end-[2]")
    assert protocol.parse_framed("m-#3-end-[2]*1c5c4975") == protocol.Framed(3, "end-[2]")
    assert protocol.parse_framed("m-ready") is None
    with pytest.raises(ValueError):
        protocol.parse_framed("m-#3-end-[3]*1c5c4975")  # body changed, CRC kept


def test_connect_reads_version_and_info():
    with PtyPeer(ScriptedFirmware()) as peer, _board(peer) as board:
        info = board.connect()
        assert info["chip"] == "esp32s3" and info["build"] == "3f9c2e1d0a7b" and info["where"] == "device"
        assert board.client.reasks == 0


def test_garbled_line_is_asked_again():
    firmware = ScriptedFirmware(garble={5})  # version uses 1..3; info's second line is 5
    with PtyPeer(firmware) as peer, _board(peer) as board:
        assert board.connect()["build"] == "3f9c2e1d0a7b"
        assert board.client.reasks == 1
        assert "tinyml-resend 5" in peer.commands


def test_garbled_end_line_is_asked_again():
    firmware = ScriptedFirmware(garble={3})  # the end line of tinyml-version
    with PtyPeer(firmware) as peer, _board(peer) as board:
        board.connect()
        assert "tinyml-resend 3" in peer.commands


def test_line_garbled_for_good_fails_after_bounded_reasks():
    firmware = ScriptedFirmware(always_garble={2})
    with PtyPeer(firmware) as peer, _board(peer) as board:
        with pytest.raises(ProtocolError, match=r"line 2 stayed garbled or lost after 3 re-asks.*Check the cable"):
            board.connect()
        assert peer.commands.count("tinyml-resend 2") == protocol.MAX_REASKS


def test_lost_line_is_found_by_its_sequence_gap():
    def drop_second(fw, command):
        reply = fw.reply(["protocol-[1.0]", "firmware-[tinyml-bench 0.1.0]"]).decode().split("\r\n")
        return "\r\n".join(line for i, line in enumerate(reply) if i != 1).encode()

    with PtyPeer(ScriptedFirmware(on={"tinyml-version": drop_second})) as peer, _board(peer) as board:
        board.connect()
        assert "tinyml-resend 2" in peer.commands


def test_silent_board_times_out_with_the_serial_log():
    def silent(fw, command):
        return b"I (312) tinyml: starting inference\r\n"  # a log line, then nothing

    with PtyPeer(ScriptedFirmware(on={"tinyml-info": silent})) as peer, _board(peer, timeout=0.5) as board:
        with pytest.raises(BoardTimeout) as info:
            board.connect()
    text = str(info.value)
    assert "did not answer `tinyml-info%` within" in text and "--tinyml-timeout" in text
    assert "serial log" in text and "I (312) tinyml: starting inference" in text


def test_reset_mid_reply_discards_it_and_names_the_reason():
    def panic(fw, command):
        fw.seq = 0
        return (framed(1, "info-chip-[esp32s3]") + "\r\nGuru Meditation Error: Core  0 panic'ed (LoadProhibited)\r\n"
                "Rebooting...\r\nets Jun  8 2016 00:22:57\r\nrst:0xc (SW_CPU_RESET),boot:0x13\r\n"
                + ScriptedFirmware.BANNER.format(reason="panic")).encode()

    with PtyPeer(ScriptedFirmware(on={"tinyml-info": panic})) as peer, _board(peer) as board:
        with pytest.raises(BoardReset) as info:
            board.connect()
        assert board.client.next_seq is None  # sequence numbers restart after a boot
    text = str(info.value)
    assert "reset during `tinyml-info%`" in text and "partial result was discarded" in text
    assert "panic" in text


def test_garbage_on_a_pty_is_not_blamed_on_baud():
    garbage = bytes([0x00, 0xF8, 0x80, 0xFF, 0xE0, 0x1C] * 60)

    with PtyPeer(ScriptedFirmware(on={"": lambda fw, c: garbage})) as peer, _board(peer) as board:
        assert board.client.kind == "pty"
        with pytest.raises(ProtocolError, match=r"not text: this port is a pty, which has no baud rate") as info:
            board.connect()
    assert "--tinyml-baud" not in info.value.args[0]


def test_garbage_on_a_serial_link_says_check_baud():
    """Over RFC 2217 the far end is a UART with a real baud rate: there junk means a baud mismatch."""
    from board_pty_peer import rfc2217_server

    garbage = bytes([0x00, 0xF8, 0x80, 0xFF, 0xE0, 0x1C] * 60)
    with PtyPeer(ScriptedFirmware(on={"": lambda fw, c: garbage})) as peer:
        port, close = rfc2217_server(peer.port)
        try:
            url = f"rfc2217://127.0.0.1:{port}"
            with Board(BenchClient(transport.open_port(url, 921600), port=url, timeout=2, baud=921600),
                       name=url) as board:
                assert board.client.kind == "serial"
                with pytest.raises(ProtocolError, match=r"not text.*Check --tinyml-baud \(now 921600\)"):
                    board.connect()
        finally:
            close()


def test_few_junk_bytes_are_caught_at_the_timeout():
    with PtyPeer(ScriptedFirmware(on={"": lambda fw, c: b"\xf8\x00\x80\xfe"})) as peer, _board(peer, 0.4) as board:
        with pytest.raises(ProtocolError, match="sends bytes that are not text: this port is a pty"):
            board.connect()


def test_device_error_lines_become_typed_errors():
    def arena(fw, command):
        return fw.error("arena-too-small", "arena needs at least 150000 bytes, have 131072; raise "
                                           "CONFIG_TINYML_ARENA_SIZE")

    with PtyPeer(ScriptedFirmware(on={"tinyml-arena": arena})) as peer, _board(peer) as board:
        board.connect()
        with pytest.raises(protocol.DeviceArenaTooSmall) as info:
            board.client.command("tinyml-arena")
    assert info.value.needed_bytes == 150000
    assert "needs at least 150000 bytes" in str(info.value)


def test_unknown_major_version_is_refused():
    with PtyPeer(ScriptedFirmware(version="2.0")) as peer, _board(peer) as board:
        with pytest.raises(ProtocolError, match=r"speaks protocol 2.0, this pytest-tinyml speaks 1.x"):
            board.connect()


def test_pure_mlperf_tiny_firmware_is_timed_from_its_laps():
    laps = iter([1_000_000, 1_012_000])

    def mlperf(fw, command):
        verb = command.split(" ")[0]
        if verb == "tinyml-version":
            return b"e-[Unknown command: tinyml-version]\r\nm-ready\r\n"
        if verb == "infer":
            return (f"m-warmup-start-2\r\nm-warmup-done\r\nm-infer-start-10\r\nm-lap-us-{next(laps)}\r\n"
                    f"m-lap-us-{next(laps)}\r\nm-infer-done\r\nm-results-[0.000,0.996,0.004]\r\nm-ready\r\n").encode()
        return b"e-[Unknown command]\r\nm-ready\r\n"

    with PtyPeer(ScriptedFirmware(on={"tinyml-version": mlperf, "infer": mlperf})) as peer, _board(peer) as board:
        board.connect()
        assert board.mlperf_only and board.info["protocol"] == "mlperf-tiny"
        result = board.benchmark(None, runs=10, warmup=2)
        assert "infer 10 2" in peer.commands
        with pytest.raises(ConfigError, match="MLPerf Tiny firmware without model upload"):
            board.benchmark(b"TFL3", runs=1)
    assert result.latency_us.median == 1200.0 and result.latency_us.n == 1
    assert result.outputs.tolist() == [[0.0, pytest.approx(0.996), pytest.approx(0.004)]]


def test_lost_end_line_is_asked_for():
    def drop_end(fw, command):
        reply = fw.reply(["protocol-[1.0]", "firmware-[tinyml-bench 0.1.0]"]).decode().split("\r\n")
        return "\r\n".join(line for line in reply if "end-[" not in line).encode()

    with PtyPeer(ScriptedFirmware(on={"tinyml-version": drop_end})) as peer, _board(peer) as board:
        board.connect()
        assert "tinyml-resend 3" in peer.commands


def test_garbled_error_line_is_asked_again_then_raised():
    firmware = ScriptedFirmware(garble={13})  # version 1..3, info 4..7; arena error would be 8 -> use 13 below

    def arena(fw, command):
        fw.seq = 12
        return fw.error("arena-too-small", "arena needs at least 9000 bytes, have 4096")

    firmware.on["tinyml-arena"] = arena
    with PtyPeer(firmware) as peer, _board(peer) as board:
        board.connect()
        board.client.next_seq = None  # we jumped the counter on purpose
        with pytest.raises(protocol.DeviceArenaTooSmall) as info:
            board.client.command("tinyml-arena")
        assert "tinyml-resend 13" in peer.commands
    assert info.value.needed_bytes == 9000


def test_garbled_m_ready_is_recovered_with_a_resync():
    def bad_ready(fw, command):
        return fw.reply(["protocol-[1.0]", "firmware-[tinyml-bench 0.1.0]"]).replace(b"m-ready", b"m-re\xe1dy")

    with PtyPeer(ScriptedFirmware(on={"tinyml-version": bad_ready})) as peer, _board(peer, timeout=0.5) as board:
        info = board.connect()
        assert info["chip"] == "esp32s3"  # the next command got its own reply


@pytest.mark.parametrize(("command", "bodies", "message"), [
    ("tinyml-predict", ["predict-[samples=2,total_us=abc]"], "not predict-"),
    ("tinyml-predict", ["predict-samples=2"], "not predict-"),
    ("tinyml-predictions", ["prediction-[0]-[0]-[zz02]", "prediction-[1]-[0]-[0304]"], "not prediction-"),
    ("tinyml-predictions", ["prediction-[0]-[0102]", "prediction-[1]-[0]-[0304]"], "not prediction-"),
    ("tinyml-predictions", ["prediction-[x]-[0]-[0102]", "prediction-[1]-[0]-[0304]"], "not prediction-"),
    ("tinyml-predictions", ["prediction-[0]-[0]-[01]", "prediction-[0]-[2]-[02]", "prediction-[1]-[0]-[0304]"],
     "sent bytes 2.. of sample 0 after 1 bytes"),
    ("tinyml-predictions", ["prediction-[0]-[0]-[0102]", "prediction-[0]-[0]-[0506]", "prediction-[1]-[0]-[0304]"],
     "sent bytes 0.. of sample 0 twice"),
])
def test_a_firmware_answering_garbage_to_the_batch_commands_is_a_protocol_error(command, bodies, message):
    """Well-framed lines a firmware should not send. Before: ValueError / IndexError out of Board.predict (so the
    board was not resynchronised), and a gap or a repeated line gave 2 bytes in the wrong places, accepted."""
    fine = {"tinyml-predict": ["predict-[samples=2,total_us=10]"],
            "tinyml-predictions": ["prediction-[1]-[0]-[0304]", "prediction-[0]-[0]-[0102]"]}
    on = {verb: (lambda fw, c, v=verb: fw.reply(bodies if v == command else fine[v])) for verb in fine}
    with PtyPeer(ScriptedFirmware(on=on)) as peer:
        link = transport.open_port(peer.port, 921600)
        client = BenchClient(link, port=peer.port, timeout=2, baud=921600)
        try:
            with pytest.raises(ProtocolError, match=message):
                client.predict(2)
                client.predictions(0, 2, 2)
        finally:
            link.close()
    with PtyPeer(ScriptedFirmware(on={v: (lambda fw, c, v=v: fw.reply(fine[v])) for v in fine})) as peer:
        link = transport.open_port(peer.port, 921600)
        client = BenchClient(link, port=peer.port, timeout=2, baud=921600)
        try:  # the same lines in another sample order are the right answer
            assert client.predict(2)["total_us"] == 10 and client.predictions(0, 2, 2) == [b"\x01\x02", b"\x03\x04"]
        finally:
            link.close()
