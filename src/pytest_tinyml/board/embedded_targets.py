"""Target routing under ``--tinyml-board=embedded``: ``tinyml_board(kind=...)`` speaks pytest-embedded's language.

pytest-embedded routes a test on its ``target`` fixture: ``request.param`` when the test parametrizes it
indirectly (``@pytest.mark.parametrize("target", ["esp32s3"], indirect=True)``), else ``--target``; several
duts (``--count 2``) take ``--target "esp32|esp32s3"``, one target per dut. Espressif's CI selects on that
parameter (idf-ci compares it with ``--target``, comma-separated for several duts, and deselects the rest;
``--add-target-as-marker-with-amount`` turns it into a marker) and on target markers (``-m esp32s3``).

So a test marked ``tinyml_board(kind="esp32s3")`` gets both: ``target`` parametrized indirectly with each kind
(one item per kind, id ``[esp32s3]``) and a marker per kind. A session whose ``--target`` names other chips
deselects it, as Espressif's CI does, instead of running it into a skip; with several duts it runs when one
of them is its kind, on that dut (:func:`dut_index`).

Kinds and targets are compared as :func:`~pytest_tinyml.board.identity.chip_name` spells them (as the serial
fixture and ``estimate()`` read a chip): ``kind="ESP32-S3"`` is the esp32s3 item, parameter and marker.

Nothing here imports pytest-embedded: it reads its options and fixture values by name.
"""

from __future__ import annotations

import re

import pytest

from pytest_tinyml.board.identity import chip_name

_SPLIT = re.compile(r"[|,]")  # pytest-embedded separates duts with '|', idf-ci's --target with ','
MARKER_TEXT = "{kind}: tinyml_board(kind={kind!r}) test (pytest-tinyml), also selects pytest-embedded's target"


def split_targets(value) -> tuple[str, ...]:
    """The chips a ``target`` value names (as :func:`chip_name` spells them): one per dut, ``auto`` and empty ones
    left out.

    Example:
        >>> split_targets("esp32|esp32s3"), split_targets("esp32,ESP32-S3"), split_targets(("esp32", None))
        (('esp32', 'esp32s3'), ('esp32', 'esp32s3'), ('esp32',))
        >>> split_targets("auto"), split_targets(None)
        ((), ())
    """
    if value is None:
        return ()
    parts = value if isinstance(value, (tuple, list)) else _SPLIT.split(str(value))
    found = (str(p).strip() for p in parts if p is not None)
    return tuple(chip_name(p) for p in found if p and p.lower() != "auto")


def kinds_of(node) -> tuple[str, ...]:
    """The chips a test's ``tinyml_board(kind=...)`` marker names, as :func:`chip_name` spells them (``()``
    without one).

    Example:
        >>> kinds_of(item)  # kind="ESP32-S3"  # doctest: +SKIP
        ('esp32s3',)
    """
    marker = node.get_closest_marker("tinyml_board")
    wanted = marker.kwargs.get("kind") if marker is not None else None
    if not wanted:
        return ()
    return tuple(dict.fromkeys(chip_name(k) for k in ((wanted,) if isinstance(wanted, str) else wanted)))


def dut_count(config) -> int:
    """pytest-embedded's ``--count`` (1 when it is not there)."""
    try:
        return int(config.getoption("count", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _parametrized_names(definition) -> set[str]:
    names: set[str] = set()
    for mark in definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            argnames = argnames.split(",")
        names.update(str(n).strip() for n in argnames)
    return names


def register_markers(config, kinds) -> None:
    """Register a marker per kind (``--strict-markers`` accepts it) unless the project already has it."""
    known = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for kind in kinds:
        if kind not in known:
            config.addinivalue_line("markers", MARKER_TEXT.format(kind=kind))
            known.add(kind)


def parametrize(metafunc) -> None:
    """``pytest_generate_tests``: one item per kind with ``target`` parametrized indirectly and a kind marker.

    Left alone: tests without ``kind=``, tests that parametrize ``target`` or ``count`` themselves, and
    multi-dut sessions (``--count`` > 1: ``target`` then holds one chip per dut, from ``--target``).
    """
    kinds = kinds_of(metafunc.definition)
    if not kinds or "target" not in metafunc.fixturenames:
        return
    if _parametrized_names(metafunc.definition) & {"target", "count"} or dut_count(metafunc.config) > 1:
        return
    register_markers(metafunc.config, kinds)
    metafunc.parametrize("target", [pytest.param(k, id=k, marks=getattr(pytest.mark, k)) for k in kinds],
                         indirect=True)


def _item_targets(item) -> tuple[str, ...] | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("target") if callspec is not None else None
    return split_targets(value) if value is not None else None


def route(config, items) -> None:
    """``pytest_collection_modifyitems``: kind markers on every ``kind=`` test (so ``-m esp32s3`` selects it in
    a multi-dut session too), then deselect those the session's ``--target`` has no dut for.

    A test is deselected when its own ``target`` parameter names a chip not in ``--target``, or when none of its
    kinds is among its duts' targets. Without ``--target`` (or with ``auto``) nothing is deselected: the chip
    check after the dut is up skips what does not fit.
    """
    session = set(split_targets(config.getoption("target", None)))
    kept, dropped = [], []
    for item in items:
        kinds = kinds_of(item)
        own = _item_targets(item)
        if kinds:  # an item with its own target parameter is for that chip only; one without, for all its kinds
            marked = [k for k in kinds if k in own] if own else kinds
            register_markers(config, marked)
            for kind in marked:
                if item.get_closest_marker(kind) is None:
                    item.add_marker(getattr(pytest.mark, kind))
        duts = own if own else tuple(session)
        if kinds and session and ((own and not set(own) <= session) or not set(kinds) & set(duts)):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def dut_index(kinds, targets, duts=()) -> int | None:
    """Which of several duts a ``kind=`` test runs on: the first whose target (``--target "a|b"``, or the chip
    esptool detected, ``dut.serial.target``) is one of its kinds; ``None`` when none is or there is no kind.

    Example:
        >>> dut_index(("esp32s3",), ("esp32", "esp32s3"))
        1
        >>> dut_index(("esp32c3",), ("esp32", "esp32s3")) is None
        True
    """
    if not kinds:
        return None
    kinds = {chip_name(k) for k in kinds}
    targets = tuple(targets) if isinstance(targets, (tuple, list)) else (targets,) * max(len(duts), 1)
    for index, target in enumerate(targets):
        detected = getattr(getattr(duts[index], "serial", None), "target", None) if index < len(duts) else None
        for chip in (target, detected):
            if chip and chip_name(chip) in kinds:
                return index
    return None
