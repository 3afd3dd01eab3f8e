"""Boards: the host side of the serial protocol, transports and leases, build and flash, ``Board``, the sim.

By role: ``transport`` (ports, leases), ``framing`` + ``protocol`` + ``device_errors`` + ``status`` (lines,
deadlines, re-asks, typed error lines and their codes), ``client``
(the commands as public verbs), ``identity`` (``BoardIdentity``), ``board`` + ``benchmark`` (one open
board and its benchmark flow), ``predict`` + ``samples`` (a data set slice streamed through the board in
batches; inputs as the bytes the board receives), ``connect`` (open a device or the sim, flash when stale), ``flash``,
``sim`` + ``simboard`` + ``sim_engine`` (the host simulator's process and its TFLite Micro engine),
``result`` (``BoardResult``, ``BoardPredictions``), ``fixture`` (the ``tinyml_board`` fixture's leases and result callback), ``budget``
(which board's figures judge ``assert_budget(target=)``),
``embedded`` (the fixture over pytest-embedded's ``dut`` under ``--tinyml-board=embedded``).

Nothing heavy is imported here; ``from pytest_tinyml.board import Board`` loads the modules it needs.

Outside pytest:

    >>> from pytest_tinyml.board import open_board
    >>> from pytest_tinyml.options import parse_board
    >>> with open_board(parse_board("sim")) as board:                      # doctest: +SKIP
    ...     print(board.benchmark("mlp_int8.tflite", runs=50).summary())
    host-sim (sim): median 12 us over 50 runs (p90 12, max 13), arena 3472 B
"""

from __future__ import annotations

import importlib

_LAZY = {
    "BenchClient": "pytest_tinyml.board.client",
    "Board": "pytest_tinyml.board.board",
    "BoardIdentity": "pytest_tinyml.board.identity",
    "BoardPredictions": "pytest_tinyml.board.result",
    "BoardResult": "pytest_tinyml.board.result",
    "OpTiming": "pytest_tinyml.board.result",
    "open_board": "pytest_tinyml.board.connect",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = importlib.import_module(_LAZY[name])
    except KeyError:
        raise AttributeError(f"module 'pytest_tinyml.board' has no attribute {name!r}") from None
    return getattr(module, name)
