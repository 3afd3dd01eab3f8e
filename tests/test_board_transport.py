"""Serial links and board leases: real ptys, real sockets, real file locks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from board_pty_peer import PtyPeer, rfc2217_server

from pytest_tinyml.board import transport
from pytest_tinyml.errors import PortUnavailable


def test_missing_port_names_it_and_the_fix():
    with pytest.raises(PortUnavailable) as info:
        transport.open_port("/dev/ttyTINYML-missing", 115200)
    message = str(info.value)
    assert "/dev/ttyTINYML-missing does not exist" in message
    assert "list_ports" in message
    assert info.value.port == "/dev/ttyTINYML-missing"


def test_busy_port_is_reported_busy():
    with PtyPeer(lambda cmd: None) as peer:
        first = transport.open_port(peer.port, 115200)
        try:
            with pytest.raises(PortUnavailable, match="is busy.*idf.py monitor"):
                transport.open_port(peer.port, 115200)
        finally:
            first.close()
        transport.open_port(peer.port, 115200).close()  # free again once closed


def test_pty_carries_bytes_both_ways():
    with PtyPeer(lambda cmd: f"m-echo-[{cmd}]\r\n".encode()) as peer:
        link = transport.open_port(peer.port, 921600, timeout=1.0)
        try:
            link.write(b"name%")
            assert link.readline() == b"m-echo-[name]\r\n"
        finally:
            link.close()


def test_socket_url_refused_says_check_the_server():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PortUnavailable, match=rf"cannot connect to board socket://127.0.0.1:{port}.*esp_rfc2217_server"):
        transport.open_port(f"socket://127.0.0.1:{port}", 115200)


def test_socket_url_talks():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        link = transport.open_port(f"socket://127.0.0.1:{server.getsockname()[1]}", 115200, timeout=1.0)
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"m-ready\r\n")
            assert link.readline() == b"m-ready\r\n"
            link.write(b"name%")
            assert conn.recv(16) == b"name%"
        link.close()
    finally:
        server.close()


def test_leases_give_each_worker_its_own_board(tmp_path):
    scope = {b: f"test-{tmp_path.name}" for b in ("sim", "sim:seed=1")}
    boards = list(scope)
    first = transport.acquire(boards, preferred=0, scopes=scope)
    second = transport.acquire(boards, preferred=1, scopes=scope)
    try:
        assert (first.board, second.board) == ("sim", "sim:seed=1")
        with pytest.raises(PortUnavailable, match="all 2 boards stayed leased.*more --tinyml-board"):
            transport.acquire(boards, preferred=0, scopes=scope, timeout=0.3)
    finally:
        second.release()
    third = transport.acquire(boards, preferred=0, scopes=scope, timeout=2)
    assert third.board == "sim:seed=1"  # the one that came free
    third.release()
    third.release()  # idempotent
    first.release()


def test_lease_is_exclusive_across_processes(tmp_path):
    scope = f"test-{tmp_path.name}"
    holder = transport.acquire(["/dev/ttyFARM0"], scopes={"/dev/ttyFARM0": scope})
    code = (
        "from pytest_tinyml.board import transport\n"
        "from pytest_tinyml.errors import PortUnavailable\n"
        f"try:\n    transport.acquire(['/dev/ttyFARM0'], scopes={{'/dev/ttyFARM0': {scope!r}}}, timeout=0.2)\n"
        "except PortUnavailable:\n    print('WAITED')\nelse:\n    print('GOT')\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert out.strip() == "WAITED"
    finally:
        holder.release()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "GOT"


def test_worker_index(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert transport.worker_index() == 3
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert transport.worker_index() == 0


def test_holder_sees_a_waiter(tmp_path):
    scope = {"/dev/ttyFARM1": f"test-{tmp_path.name}"}
    holder = transport.acquire(["/dev/ttyFARM1"], scopes=scope)
    assert not holder.wanted()
    code = (
        "from pytest_tinyml.board import transport\n"
        f"transport.acquire(['/dev/ttyFARM1'], scopes={scope!r}, timeout=30).release()\n"
        "print('GOT')\n"
    )
    waiter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if holder.wanted():
                break
            time.sleep(0.05)
        assert holder.wanted(), "the waiting process left no marker"
    finally:
        holder.release()
    assert waiter.communicate(timeout=60)[0].strip() == "GOT"
    assert not list(holder.path.parent.glob(holder.path.name + ".wait-*")), "the waiter cleaned up its marker"


def test_rfc2217_board_over_the_network():
    from board_pty_peer import ScriptedFirmware

    from pytest_tinyml.board.board import Board
    from pytest_tinyml.board.client import BenchClient

    with PtyPeer(ScriptedFirmware(chip="esp32c3")) as peer:
        port, close = rfc2217_server(peer.port)
        try:
            url = f"rfc2217://127.0.0.1:{port}"
            with Board(BenchClient(transport.open_port(url, 921600), port=url, timeout=3), name=url) as board:
                assert board.connect()["chip"] == "esp32c3"
        finally:
            close()
