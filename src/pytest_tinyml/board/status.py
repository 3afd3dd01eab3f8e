"""The firmware protocol's error codes (``firmware/PROTOCOL.md`` section 2), as the host sees them.

This mirrors ``firmware/main/core/tinyml_status.h`` (the firmware's one list); ``tests/test_firmware_status.py``
checks the two and PROTOCOL.md against each other, so a code added on one side fails until all three agree.
Standard library only: the plugin imports nothing heavy.

Example:
    >>> Status("arena-too-small") is Status.ARENA_TOO_SMALL
    True
    >>> "state" in CODES  # not a protocol code: an engine that sends it reaches the host as "engine"
    False
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CODES", "Status"]


class Status(str, Enum):
    """One error code: the word before ``:`` in an ``e-[...]`` or ``e-#..-[...]`` line."""

    UNKNOWN_COMMAND = "unknown-command"
    TOO_LONG = "too-long"
    BAD_ARGUMENT = "bad-argument"
    ODD_HEX = "odd-hex"
    BAD_HEX = "bad-hex"
    NO_UPLOAD = "no-upload"
    BAD_OFFSET = "bad-offset"
    PAST_END = "past-end"
    CHUNK_CRC = "chunk-crc"
    CRC_MISMATCH = "crc-mismatch"
    MODEL_TOO_BIG = "model-too-big"
    NO_ROOM = "no-room"
    BAD_MODEL = "bad-model"
    UNSUPPORTED_OP = "unsupported-op"
    ARENA_TOO_SMALL = "arena-too-small"
    NO_MODEL = "no-model"
    INPUT_SIZE = "input-size"
    NO_RESULTS = "no-results"
    TOO_MANY_RUNS = "too-many-runs"
    INVOKE_FAILED = "invoke-failed"
    RESEND_GONE = "resend-gone"
    UNSUPPORTED = "unsupported"
    ENGINE = "engine"


CODES = frozenset(status.value for status in Status)
