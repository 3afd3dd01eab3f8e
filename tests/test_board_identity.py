"""``BoardIdentity``: one mapping from the firmware's info keys to the names records use, one ``where``."""

from __future__ import annotations

import pytest
from board_pty_peer import PtyPeer, ScriptedFirmware

from pytest_tinyml.board import transport
from pytest_tinyml.board.board import Board
from pytest_tinyml.board.client import BenchClient
from pytest_tinyml.board.identity import WHERE, BoardIdentity

KEYS = ["chip", "revision", "cpu_mhz", "firmware_hash", "idf_version", "tflm_version", "esp_nn_version",
        "build_flags", "where"]


def test_as_dict_has_exactly_the_contract_keys():
    assert list(BoardIdentity().as_dict()) == KEYS
    assert WHERE == ("device", "sim", "host", "estimate")


def test_from_info_maps_the_firmware_keys():
    info = {"chip": "esp32s3", "revision": "v0.2", "cpu-mhz": "240", "build": "3f9c2e1d0a7b", "idf": "v5.3.1",
            "tflm": "1.3.8", "esp-nn": "1.1.2", "cflags": "-O2 -mlongcalls", "mac": "7c:df:a1:00:11:22"}
    ident = BoardIdentity.from_info(info, where="device")
    assert ident.as_dict() == {"chip": "esp32s3", "revision": "v0.2", "cpu_mhz": 240, "firmware_hash": "3f9c2e1d0a7b",
                               "idf_version": "v5.3.1", "tflm_version": "1.3.8", "esp_nn_version": "1.1.2",
                               "build_flags": "-O2 -mlongcalls", "where": "device"}
    assert BoardIdentity.from_info({"cpu-mhz": "fast"}, where="sim").cpu_mhz is None  # not a number: not guessed


@pytest.mark.parametrize("where", ["host-sim", "board", "esp32", ""])
def test_a_where_outside_the_vocabulary_is_refused(where):
    with pytest.raises(ValueError, match="is not one of device, sim, host, estimate"):
        BoardIdentity(where=where)


def test_identity_is_built_once_at_connect():
    with PtyPeer(ScriptedFirmware(chip="esp32c3")) as peer:
        link = transport.open_port(peer.port, 921600)
        with Board(BenchClient(link, port=peer.port, timeout=2), name=peer.port) as board:
            assert board.identity is None
            board.connect()
            assert board.identity.chip == "esp32c3" and board.identity.cpu_mhz == 240
            assert board.identity.firmware_hash == "3f9c2e1d0a7b" and board.identity.where == "device"
