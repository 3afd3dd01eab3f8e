"""One list of protocol error codes: the core's enum (tinyml_status.h), PROTOCOL.md section 2 and the Python
mirror (pytest_tinyml.board.status) must name the same codes, and the core uses no code as a bare string."""

from __future__ import annotations

import re

from firmware_host import FIRMWARE

from pytest_tinyml.board.status import CODES, Status

CORE = FIRMWARE / "main" / "core"


def header_codes(text: str) -> list[str]:
    """The names of the X(ID, "name") list in tinyml_status.h."""
    block = text[text.index("#define TINYML_STATUS_LIST(X)"): text.index("typedef enum tinyml_status")]
    return re.findall(r'X\((\w+), "([a-z-]+)"\)', block)


def protocol_codes(text: str) -> list[str]:
    """The codes of PROTOCOL.md's error-code table (section 2)."""
    table = text[text.index("**Error codes**"): text.index("## 3. Boot banner")]
    return re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.M)


def test_header_protocol_and_python_name_the_same_codes():
    pairs = header_codes((CORE / "tinyml_status.h").read_text())
    names = [name for _, name in pairs]
    assert len(names) == len(set(names)) > 20
    assert all(ident == name.upper().replace("-", "_") for ident, name in pairs)
    documented = protocol_codes((FIRMWARE / "PROTOCOL.md").read_text())
    assert names == documented  # same codes, same order
    assert [s.value for s in Status] == names and CODES == set(names)
    assert [s.name for s in Status] == [ident for ident, _ in pairs]


def test_the_comparison_sees_a_code_missing_from_the_document():
    # Negative control: a table without one row does not pass for the header's list.
    text = (FIRMWARE / "PROTOCOL.md").read_text().replace("| `no-room` |", "| no-room |")
    assert protocol_codes(text) != [name for _, name in header_codes((CORE / "tinyml_status.h").read_text())]


def _literals(text: str) -> list[str]:
    """Lowercase string literals, info keys left out (``emit(arg, "engine", ...)`` names a key, not a code)."""
    return re.findall(r'(?<!\(w, )(?<!\(arg, )"([a-z][a-z-]*)"', text)


def test_core_sources_use_the_enum_not_string_literals():
    names = {name for _, name in header_codes((CORE / "tinyml_status.h").read_text())}
    for path in sorted(CORE.glob("*.c")) + sorted((FIRMWARE / "host").glob("*.c")) + [FIRMWARE / "main" / "tflm_engine.cc"]:
        if path.name == "tinyml_status.c":
            continue
        literals = set(_literals(path.read_text()))
        assert not literals & names, f"{path.name} spells status codes as strings: {sorted(literals & names)}"


def test_the_literal_check_sees_a_spelled_code():
    names = {name for _, name in header_codes((CORE / "tinyml_status.h").read_text())}
    assert set(_literals('tinyml_fail(core, 1, "no-model", "...");')) & names == {"no-model"}
    assert set(_literals('collect(w, "engine", name);')) & names == set()
