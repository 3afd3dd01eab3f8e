"""Framed lines of PROTOCOL.md: ``m-#<seq>-<body>*<crc32>``, and the small parsers of their bodies."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

_FRAMED = re.compile(r"^([me])-#(\d+)-(.*)\*([0-9a-f]{8})$")


def crc32_hex(text: str) -> str:
    """CRC-32 (zlib) of ``text`` as 8 lowercase hex digits, the framing CRC.

    Example:
        >>> crc32_hex("m-#3-end-[2]")
        '1c5c4975'
    """
    return f"{zlib.crc32(text.encode('latin-1')):08x}"


def frame(seq: int, body: str, kind: str = "m") -> str:
    """Build a framed line (what the firmware sends), e.g. for pty peers in tests.

    Example:
        >>> frame(3, "end-[2]")
        'm-#3-end-[2]*1c5c4975'
    """
    head = f"{kind}-#{seq}-{body}"
    return f"{head}*{crc32_hex(head)}"


@dataclass(frozen=True)
class Framed:
    """One framed line whose CRC checked out."""

    seq: int
    body: str
    is_error: bool = False


def parse_framed(line: str) -> Framed | None:
    """The framed line, or None when it is not framed; raises ValueError when it is framed but garbled.

    Example:
        >>> parse_framed("m-#3-end-[2]*1c5c4975")
        Framed(seq=3, body='end-[2]', is_error=False)
    """
    if not line.startswith(("m-#", "e-#")):
        return None
    match = _FRAMED.match(line)
    if not match or crc32_hex(line[: line.rindex("*")]) != match.group(4):
        raise ValueError("garbled framed line")
    return Framed(int(match.group(2)), match.group(3), match.group(1) == "e")


def fields(text: str) -> dict[str, str]:
    """``key=value,key=value`` -> dict (values may not contain commas).

    Example:
        >>> fields("used=2944,size=131072")
        {'used': '2944', 'size': '131072'}
    """
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def brackets(body: str) -> list[str]:
    """The ``[...]`` groups of a body: ``tensor-[in]-[0]-[type=int8]`` -> ``['in', '0', 'type=int8']``."""
    return re.findall(r"\[([^\]]*)\]", body)


@dataclass
class Reply:
    """A complete reply: its framed lines in sequence order and its plain ``m-`` lines."""

    command: str
    framed: list[Framed] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)

    def bodies(self, prefix: str) -> list[str]:
        return [f.body for f in self.framed if f.body.startswith(prefix)]
