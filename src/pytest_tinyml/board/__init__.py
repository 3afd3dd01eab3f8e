"""Boards: the host side of the serial protocol, transports and leases, build and flash, ``Board``, the sim.

Nothing heavy is imported here; ``from pytest_tinyml.board import Board`` loads the modules it needs.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Board": "pytest_tinyml.board.board",
    "BoardResult": "pytest_tinyml.board.result",
    "OpTiming": "pytest_tinyml.board.result",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = importlib.import_module(_LAZY[name])
    except KeyError:
        raise AttributeError(f"module 'pytest_tinyml.board' has no attribute {name!r}") from None
    return getattr(module, name)
