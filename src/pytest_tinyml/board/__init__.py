"""Boards: the host side of the serial protocol, transports and leases, build and flash, ``Board``, the sim.

Nothing heavy is imported here; ``from pytest_tinyml.board import Board`` loads the modules it needs.

Outside pytest:

    >>> from pytest_tinyml.board import open_board
    >>> from pytest_tinyml.options import parse_board
    >>> with open_board(parse_board("sim")) as board:                      # doctest: +SKIP
    ...     print(board.benchmark("mlp_int8.tflite", runs=50).summary())
    host-sim (host-sim): median 12 us over 50 runs (p90 12, max 13), arena 3472 B
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Board": "pytest_tinyml.board.board",
    "BoardResult": "pytest_tinyml.board.result",
    "OpTiming": "pytest_tinyml.board.result",
    "open_board": "pytest_tinyml.board.board",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = importlib.import_module(_LAZY[name])
    except KeyError:
        raise AttributeError(f"module 'pytest_tinyml.board' has no attribute {name!r}") from None
    return getattr(module, name)
