"""The firmware's error lines (``e-[<code>: <text>]``) as typed errors, each with its code and the next step.

Codes are :class:`~pytest_tinyml.board.status.Status` (the firmware's one list). ``device_error`` is what
:class:`~pytest_tinyml.board.protocol.Client` raises for an error line.
"""

from __future__ import annotations

import re

from pytest_tinyml.board.status import Status
from pytest_tinyml.errors import ArenaTooSmall, ModelLoadError, ProtocolError

_ERROR_BODY = re.compile(r"^\[([a-z][a-z0-9-]*): (.*)\]$", re.S)



class DeviceArenaTooSmall(ProtocolError, ArenaTooSmall):
    """The firmware's tensor arena is too small; ``needed_bytes`` says how much the model needs."""

    needed_bytes: int | None = None


class ModelTooBig(ProtocolError):
    """The board has no RAM block big enough for the model."""


class DeviceModelRejected(ProtocolError, ModelLoadError):
    """The firmware refused the model (not a flatbuffer, unsupported op)."""


_FIXES = {
    Status.ARENA_TOO_SMALL: "raise CONFIG_TINYML_ARENA_SIZE in the firmware (sdkconfig.defaults or menuconfig) and "
                       "reflash, or shrink the model",
    Status.MODEL_TOO_BIG: "shrink the model (int8, pruning) or use a board with PSRAM",
    Status.UNSUPPORTED_OP: "add the op to the firmware's op resolver (pytest_tinyml.analyze exports the snippet) or "
                      "replace the layer",
    Status.BAD_MODEL: "check that the model is a valid .tflite flatbuffer",
}


def device_error(port: str, command: str, body: str, log: str = "") -> ProtocolError:
    """The typed error for an error line's body (``[arena-too-small: arena needs at least 9000 bytes, ...]``).

    Example:
        >>> e = device_error("/dev/ttyUSB0", "tinyml-arena", "[arena-too-small: arena needs at least 9000 bytes]")
        >>> type(e).__name__, e.code, e.needed_bytes
        ('DeviceArenaTooSmall', 'arena-too-small', 9000)
    """
    match = _ERROR_BODY.match(body)
    code, text = (match.group(1), match.group(2)) if match else ("error", body.strip("[]"))
    fix = _FIXES.get(code)  # Status is a str enum: its members are found by their text
    message = f"{port} refused `{command[:60]}%`: {code}: {text}" + (f" ({fix})" if fix else "")
    cls = {Status.ARENA_TOO_SMALL: DeviceArenaTooSmall, Status.MODEL_TOO_BIG: ModelTooBig,
           Status.UNSUPPORTED_OP: DeviceModelRejected, Status.BAD_MODEL: DeviceModelRejected}.get(code, ProtocolError)
    error = cls(message, port=port, log=log)
    error.code = code
    if cls is DeviceArenaTooSmall:
        needed = re.search(r"needs at least (\d+)", text)
        error.needed_bytes = int(needed.group(1)) if needed else None
    return error
