"""Every ``--tinyml-*`` flag, its mirrored ini key, its parser and the precedence rule.

Precedence, documented once: marker kwargs > command line > ini file > default.
Bad values fail at parse time with a message that shows what a good value looks like.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass

GROUP = "tinyml"

BOARD = "tinyml_board"
CACHE_DIR = "tinyml_cache_dir"
CACHE_RETRY = "tinyml_cache_retry"
HISTORY = "tinyml_history"
REPORT = "tinyml_report"
SKIP_FLASH = "tinyml_skip_flash"
TARGET = "tinyml_target"
BAUD = "tinyml_baud"
BASELINE = "tinyml_baseline"
SAVE_BASELINE = "tinyml_save_baseline"
TIMEOUT = "tinyml_timeout"
FIRMWARE_DIR = "tinyml_firmware_dir"
TRUST_LEGACY = "tinyml_trust_legacy"

DEFAULT_CACHE_DIR = ".tinyml_cache"
DEFAULT_HISTORY = ".tinyml_history"

_HOSTPORT = re.compile(r"^(rfc2217|socket)://([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})(\?.*)?$")
_SIM = re.compile(r"^sim(?::([a-z_]+=[^,]+(?:,[a-z_]+=[^,]+)*))?$")
_BOARD_HELP = (
    "a serial device (/dev/ttyUSB0, /dev/cu.usbserial-0001, COM3), rfc2217://host:port, "
    "socket://host:port, sim (the host simulator; sim:delay_us=500 slows it down), or embedded "
    "(pytest-embedded's dut: its --port, --baud and --target)"
)


@dataclass(frozen=True)
class BoardSpec:
    """A parsed ``--tinyml-board`` value.

    Example:
        >>> parse_board("socket://localhost:4000").kind
        'socket'
    """

    text: str
    kind: str  # "serial", "rfc2217", "socket", "sim" or "embedded"
    params: tuple[tuple[str, str], ...] = ()

    @property
    def is_sim(self) -> bool:
        return self.kind == "sim"

    def param(self, name: str, default: str | None = None) -> str | None:
        return dict(self.params).get(name, default)


def parse_board(value: str) -> BoardSpec:
    """Parse one ``--tinyml-board`` value; raise ``argparse.ArgumentTypeError`` with an example if bad."""
    text = value.strip()
    if not text:
        raise argparse.ArgumentTypeError(f"empty board; give {_BOARD_HELP}")
    if text == "embedded":  # pytest-embedded's dut (pytest_tinyml.board.embedded)
        return BoardSpec(text, "embedded")
    sim = _SIM.match(text)
    if sim:
        params = tuple(tuple(kv.split("=", 1)) for kv in sim.group(1).split(",")) if sim.group(1) else ()
        for key, val in params:
            if key not in ("delay_us", "jitter_us", "seed"):
                raise argparse.ArgumentTypeError(
                    f"unknown sim parameter {key!r} in {text!r}; known: delay_us, jitter_us, seed "
                    "(e.g. sim:delay_us=500)"
                )
            if not val.isdigit():
                raise argparse.ArgumentTypeError(f"sim parameter {key} must be a whole number, got {val!r}")
        return BoardSpec(text, "sim", params)  # type: ignore[arg-type]
    if "://" in text:
        match = _HOSTPORT.match(text)
        if not match or not 0 < int(match.group(3)) < 65536:
            raise argparse.ArgumentTypeError(
                f"bad board URL {text!r}; expected rfc2217://host:port or socket://host:port "
                "(e.g. rfc2217://192.168.1.20:4000), port 1-65535"
            )
        return BoardSpec(text, match.group(1))
    if re.fullmatch(r"COM\d+", text, re.IGNORECASE) or text.startswith(("/", "\\\\.\\")):
        return BoardSpec(text, "serial")
    raise argparse.ArgumentTypeError(f"bad board {text!r}; expected {_BOARD_HELP}")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number (e.g. 921600), got {value!r}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds (e.g. 30), got {value!r}")
    return number


def _target(value: str) -> str:
    from pytest_tinyml.firmware_tools import board_config_names

    names = board_config_names()
    if value not in names:
        raise argparse.ArgumentTypeError(f"unknown target {value!r}; expected a board configuration: "
                                         f"{', '.join(names)} (see firmware/README.md)")
    return value


def _report_path(value: str) -> str:
    if not value.endswith(".json"):
        raise argparse.ArgumentTypeError(f"the report is JSON: give a path ending in .json (e.g. tinyml-report.json), got {value!r}")
    return value


def _baseline_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", value):
        raise argparse.ArgumentTypeError(
            f"bad baseline name {value!r}; use letters, digits, '.', '_' or '-' (e.g. v1.2 or main)"
        )
    return value


# (flag, dest, ini type, default, help, extra argparse kwargs, value parser for ini strings)
_OPTIONS = [
    ("--tinyml-board", BOARD, "linelist", [], f"board to run tinyml_board tests on: {_BOARD_HELP}. "
     "Give it more than once for a board farm (one board per xdist worker).", {"action": "append", "type": parse_board}, parse_board),
    ("--tinyml-cache-dir", CACHE_DIR, "string", DEFAULT_CACHE_DIR,
     f"directory of the training and conversion cache (default: {DEFAULT_CACHE_DIR} in the rootdir).", {}, None),
    ("--tinyml-cache-retry", CACHE_RETRY, "bool", False,
     "retry conversions the cache kept as failed (by default a recipe that crashed or was refused on the "
     "same inputs fails fast with its original message).", {"action": "store_true"}, None),
    ("--tinyml-history", HISTORY, "string", DEFAULT_HISTORY,
     f"directory of the latency history (default: {DEFAULT_HISTORY} in the rootdir).", {}, None),
    ("--tinyml-report", REPORT, "string", None, "write the tinyml summary as JSON to this path (e.g. tinyml-report.json).",
     {"type": _report_path}, _report_path),
    ("--tinyml-skip-flash", SKIP_FLASH, "bool", False,
     "never build or flash the firmware: use what is on the board (fails if it is stale).", {"action": "store_true"}, None),
    ("--tinyml-target", TARGET, "string", None,
     "board configuration the firmware is built for (esp32, esp32-psram, esp32s3, esp32s3-usb, esp32c3, "
     "esp32c3-usb: firmware/tools/targets.py); default: from the chip the board reports.", {"type": _target}, _target),
    ("--tinyml-baud", BAUD, "string", 921600, "console baud rate of the benchmark firmware (default: 921600).",
     {"type": _positive_int}, _positive_int),
    ("--tinyml-timeout", TIMEOUT, "string", 30.0, "seconds to wait for a board reply (default: 30).",
     {"type": _positive_float}, _positive_float),
    ("--tinyml-firmware-dir", FIRMWARE_DIR, "string", None,
     "the benchmark firmware's ESP-IDF project (default: the firmware shipped with pytest-tinyml).", {}, None),
    ("--tinyml-baseline", BASELINE, "string", None,
     "compare latencies against this saved baseline instead of 'last' (the window of the last accepted runs); a name never saved is a usage error.", {"type": _baseline_name}, _baseline_name),
    ("--tinyml-trust-legacy", TRUST_LEGACY, "bool", False,
     "convert legacy .h5 models whose Lambda layers hold Python bytecode (loading runs it: only files you trust).",
     {"action": "store_true"}, None),
    ("--tinyml-save-baseline", SAVE_BASELINE, "string", None,
     "accept this run's latencies (a change restarts the 'last' window) or save the window as baseline NAME.", {"nargs": "?", "const": "last", "type": _baseline_name}, _baseline_name),
]


def add_options(parser) -> None:
    """Register every flag and its ini key on pytest's parser."""
    group = parser.getgroup(GROUP, "tinyml: edge ML model testing")
    for flag, dest, ini_type, default, help_text, kwargs, _ in _OPTIONS:
        kwargs = dict(kwargs)
        kwargs.setdefault("default", None)
        group.addoption(flag, dest=dest, help=help_text, **kwargs)
        parser.addini(dest, help=f"default for {flag}", type=ini_type, default=default)


def _ini_value(config, dest, parse):
    raw = config.getini(dest)
    if parse is None or raw in (None, "", []) or not isinstance(raw, (str, list)):
        return raw
    try:
        return [parse(v) for v in raw] if isinstance(raw, list) else parse(raw)
    except argparse.ArgumentTypeError as exc:
        import pytest

        raise pytest.UsageError(f"ini option {dest}: {exc}") from None


def _parse(config, dest: str):
    """One option from pytest's parsed command line, else its ini key, else the default."""
    value = config.getoption(dest, default=None)
    if value not in (None, []):
        return value
    for _, name, _, default, _, _, parse in _OPTIONS:
        if name == dest:
            value = _ini_value(config, dest, parse)
            return default if value in (None, "") else value
    raise KeyError(dest)


def _absolute(config, value) -> str:
    value = os.path.expanduser(str(value))
    return value if os.path.isabs(value) else os.path.join(str(config.rootpath), value)


@dataclass(frozen=True)
class TinyMLOptions:
    """Every tinyml option, resolved once at configure time (command line > ini > default) and kept in
    ``config.stash``: fixtures and hooks read this object and never parse an option again.

    ``cache_dir`` and ``history_dir`` are absolute (relative values are from the rootdir); ``boards`` are in
    the order given, without duplicates.

    Example:
        >>> TinyMLOptions(boards=(parse_board("sim"),)).boards[0].is_sim
        True
    """

    boards: tuple[BoardSpec, ...] = ()
    cache_dir: str = DEFAULT_CACHE_DIR
    cache_retry: bool = False
    history_dir: str = DEFAULT_HISTORY
    report: str | None = None
    skip_flash: bool = False
    target: str | None = None
    baud: int = 921600
    timeout: float = 30.0
    firmware_dir: str | None = None
    baseline: str | None = None
    save_baseline: str | None = None
    trust_legacy: bool = False

    @classmethod
    def from_config(cls, config) -> TinyMLOptions:
        """Parse every option of ``config`` (a bad ini value is a ``pytest.UsageError`` naming the key)."""
        unique: dict[str, BoardSpec] = {}
        for spec in _parse(config, BOARD) or []:
            unique.setdefault(spec.text, spec)
        if "embedded" in unique and len(unique) > 1:
            import pytest

            raise pytest.UsageError("--tinyml-board=embedded uses pytest-embedded's dut (its --port): give it "
                                    "alone, not with " + ", ".join(t for t in unique if t != "embedded"))
        return cls(
            boards=tuple(unique.values()),
            cache_dir=_absolute(config, _parse(config, CACHE_DIR)),
            cache_retry=bool(_parse(config, CACHE_RETRY)),
            history_dir=_absolute(config, _parse(config, HISTORY)),
            report=_parse(config, REPORT),
            skip_flash=bool(_parse(config, SKIP_FLASH)),
            target=_parse(config, TARGET),
            baud=int(_parse(config, BAUD)),
            timeout=float(_parse(config, TIMEOUT)),
            firmware_dir=_parse(config, FIRMWARE_DIR),
            baseline=_parse(config, BASELINE),
            save_baseline=_parse(config, SAVE_BASELINE),
            trust_legacy=bool(_parse(config, TRUST_LEGACY)),
        )


# option dest -> TinyMLOptions field
_FIELDS = {BOARD: "boards", CACHE_DIR: "cache_dir", CACHE_RETRY: "cache_retry", HISTORY: "history_dir", REPORT: "report",
           SKIP_FLASH: "skip_flash", TARGET: "target", BAUD: "baud", TIMEOUT: "timeout",
           FIRMWARE_DIR: "firmware_dir", BASELINE: "baseline", SAVE_BASELINE: "save_baseline",
           TRUST_LEGACY: "trust_legacy"}
_KEY = None


def _stash_key():
    global _KEY
    if _KEY is None:
        import pytest

        _KEY = pytest.StashKey[TinyMLOptions]()
    return _KEY


def resolve(config) -> TinyMLOptions:
    """Parse the options once (the plugin does it in ``pytest_configure``) and keep them in ``config.stash``."""
    resolved = TinyMLOptions.from_config(config)
    config.stash[_stash_key()] = resolved
    return resolved


def of(config) -> TinyMLOptions:
    """The resolved options of a pytest ``config`` (resolved now if the plugin has not done it yet).

    Example:
        >>> of(request.config).cache_dir          # doctest: +SKIP
        '/home/me/project/.tinyml_cache'
    """
    resolved = config.stash.get(_stash_key(), None)
    return resolved if resolved is not None else resolve(config)


def get(config, dest: str):
    """One resolved option by its dest name (``options.get(config, options.BAUD)``); reads :func:`of`."""
    return getattr(of(config), _FIELDS[dest])


def boards(config) -> list[BoardSpec]:
    """The boards given by --tinyml-board (or ini tinyml_board), in order, without duplicates."""
    return list(of(config).boards)


def resolve_path(config, dest: str) -> str:
    """A path option made absolute against the rootdir (``cache_dir`` and ``history_dir`` already are)."""
    return _absolute(config, get(config, dest))


def option_table() -> list[tuple[str, str, str]]:
    """(flag, ini key, help) rows: the README's options table is checked against this and --help."""
    return [(flag, dest, help_text) for flag, dest, _, _, help_text, _, _ in _OPTIONS]
