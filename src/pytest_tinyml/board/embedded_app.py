"""The app pytest-embedded flashes for a ``tinyml_board`` test, when its idf service is active.

pytest-tinyml never opens or flashes the port itself under ``--tinyml-board=embedded``; with
``--embedded-services esp,idf`` pytest-embedded's ``IdfSerial`` flashes the test's ``app`` (an ``IdfApp``:
``flasher_args.json``, ``config/sdkconfig.json`` of a build directory) when it makes the ``dut``. So:

- The user names the app (``--app-path``, or ``app_path`` parametrized): before the serial is made, and so
  before anything is flashed, :func:`check_app` makes sure it is a build of tinyml-bench (its
  ``project_description.json`` names the firmware's project; its target is one of the test's kinds; its build id,
  ``tinyml_build_id.txt``, is the one this checkout's firmware sources give). After the dut is up, the board
  must report the app's build id (:func:`app_build_id`, checked in ``embedded.check_firmware``).
- No app named: :func:`our_build` builds tinyml-bench as for a serial board (``flash.build``, cached by source
  hash) and the fixtures of ``embedded_plugin`` hand it to pytest-embedded as the test's ``app_path`` and
  ``build_dir``: its ``IdfApp`` parses our build and its ``IdfSerial`` flashes it at dut setup, over the port
  it opened.

Nothing here imports pytest-embedded: its objects arrive through its fixtures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pytest_tinyml import firmware_tools, options
from pytest_tinyml.board import embedded_targets
from pytest_tinyml.errors import ConfigError, FirmwareError

_BUILDS = pytest.StashKey[dict]()  # board config name -> FirmwareBuild, or the error building it raised
_DECISION = pytest.StashKey[tuple]()  # per test: (FirmwareBuild | None, dut index)
NEEDS_APP = ("pytest-embedded's idf service needs an app for the dut even when it does not flash "
             "(--skip-autoflash / --tinyml-skip-flash), and tinyml-bench has no finished build in {cache} for "
             "{config}: pass --app-path <a tinyml-bench build>, drop the skip flag once so pytest-tinyml builds "
             "it, or run with `--embedded-services esp` (no idf) to keep what is on the board")


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("y", "yes", "true", "1")
    return bool(value)


def skip_flash(config) -> bool:
    """``--tinyml-skip-flash`` (or ini), or pytest-embedded's ``--skip-autoflash y``.

    Example:
        >>> skip_flash(request.config)  # doctest: +SKIP
        True
    """
    return options.of(config).skip_flash or _truthy(config.getoption("skip_autoflash", None))


def at(value, index: int):
    """One dut's value of a pytest-embedded fixture (a tuple with ``--count`` > 1)."""
    return value[index] if isinstance(value, (tuple, list)) else value


def replaced(value, index: int, new):
    """``value`` with dut ``index``'s entry replaced by ``new`` (the value itself for one dut)."""
    if isinstance(value, (tuple, list)):
        return tuple(new if i == index else v for i, v in enumerate(value))
    return new


def uses_board(request) -> bool:
    return "tinyml_board" in request.fixturenames


def user_app_given(request) -> bool:
    """``--app-path`` on the command line, or ``app_path`` parametrized by the test."""
    callspec = getattr(request.node, "callspec", None)
    return bool(request.config.getoption("app_path", None)) or (
        callspec is not None and "app_path" in callspec.params)


def dut_index(request) -> int | None:
    """Which dut the test's board is, before the duts exist: 0 for one dut; with several, the one whose
    ``--target`` is the test's kind (``None`` when that cannot be told yet)."""
    targets = request.getfixturevalue("target")
    if not isinstance(targets, (tuple, list)):
        return 0
    return embedded_targets.dut_index(embedded_targets.kinds_of(request.node), targets)


def our_build(request):
    """(the tinyml-bench build pytest-embedded should flash for this test, its dut index), or ``(None, index)``
    when the test does not use ``tinyml_board``, names its own app, or its dut has no idf service."""
    stash = request.node.stash
    if _DECISION in stash:
        return stash[_DECISION]
    decision = (None, None)
    if uses_board(request):
        index = dut_index(request)
        services = str(at(request.getfixturevalue("embedded_services"), index or 0) or "")
        if index is not None and not user_app_given(request) and "idf" in services.split(","):
            decision = (_build_for(request, index), index)
        else:
            decision = (None, index)
    stash[_DECISION] = decision
    return decision


def _build_for(request, index: int):
    from pytest_tinyml.board import flash

    config = request.config
    resolved = options.of(config)
    fw_dir = flash.locate_firmware_dir(resolved.firmware_dir)
    kinds = embedded_targets.kinds_of(request.node)
    chip = (embedded_targets.split_targets(at(request.getfixturevalue("target"), index)) or kinds or (None,))[0]
    name = resolved.target or flash.default_board_config(fw_dir, chip)
    if not name:
        which = f"chip {chip} has no default board configuration" if chip else "no --target"
        raise FirmwareError(f"cannot tell which chip to build tinyml-bench for ({which}): pass pytest-embedded's "
                            "--target (esp32, esp32s3, esp32c3), --tinyml-target (a board configuration, e.g. "
                            "esp32s3-usb), or mark the test tinyml_board(kind=...)")
    board_chip = flash.board_config(fw_dir, name).chip
    if chip and board_chip != chip:
        raise FirmwareError(f"--tinyml-target {name} builds tinyml-bench for {board_chip}, but pytest-embedded's "
                            f"target for this dut is {chip}: pass a --tinyml-target for {chip}, or drop it")
    builds = config.stash.setdefault(_BUILDS, {})
    if name not in builds:
        expected = flash.device_build_id(fw_dir)
        try:
            if skip_flash(config):
                found = flash.cached_build(fw_dir, name, resolved.cache_dir, expected)
                if found is None:
                    raise ConfigError(NEEDS_APP.format(cache=resolved.cache_dir, config=name))
                builds[name] = found
            else:
                builds[name] = flash.build(fw_dir, name, resolved.cache_dir, expected)
        except Exception as exc:  # kept: the next test of this session fails fast with the same words
            builds[name] = exc
    if isinstance(builds[name], Exception):
        raise builds[name]
    return builds[name]


def project_of(build_dir) -> str | None:
    """``project_name`` of an idf.py build directory's ``project_description.json`` (``None`` if unreadable)."""
    try:
        return json.loads((Path(build_dir) / "project_description.json").read_text()).get("project_name")
    except (OSError, ValueError, AttributeError):
        return None


def app_build_id(app) -> str | None:
    """The build id a board running ``app`` reports (``info-build``): the firmware's CMake writes it to
    ``tinyml_build_id.txt``; without it the board reports the first 16 hex digits of the ELF's SHA-256.

    Example:
        >>> app_build_id(dut.app)  # doctest: +SKIP
        '3f9c2e1d0a7b4c55'
    """
    binary = getattr(app, "binary_path", None)
    if not binary:
        return None
    id_file = Path(binary) / "tinyml_build_id.txt"
    if id_file.is_file():
        return id_file.read_text(errors="replace").strip() or None
    elf = getattr(app, "elf_file", None)
    if elf and Path(elf).is_file():
        return hashlib.sha256(Path(elf).read_bytes()).hexdigest()[:16]
    return None


def is_idf_app(app) -> bool:
    """pytest-embedded-idf's ``IdfApp`` (what its ``IdfSerial`` flashes), told by its attributes."""
    return app is not None and hasattr(app, "flash_files") and hasattr(app, "sdkconfig")


def check_app(app, request, index: int = 0) -> None:
    """Refuse, before pytest-embedded flashes it, an app that is not this checkout's tinyml-bench build.

    Example:
        >>> check_app(app, request)  # doctest: +SKIP
        Traceback (most recent call last):
        FirmwareError: pytest-embedded's app /src/blink/build is the ESP-IDF project 'blink', not tinyml-bench ...
    """
    from pytest_tinyml.board import flash

    fw_dir = flash.locate_firmware_dir(options.of(request.config).firmware_dir)
    where = getattr(app, "binary_path", None)
    fix = (f"build it (`idf.py -C {fw_dir} build`, then --app-path {fw_dir} --build-dir build), or drop --app-path "
           "(for these tests: parametrize `app_path` indirectly on the others): pytest-tinyml then builds "
           "tinyml-bench and pytest-embedded flashes that")
    if not where:
        raise FirmwareError(f"pytest-embedded's app for this tinyml_board test ({app.app_path}) has no build "
                            f"directory: {fix}")
    want = firmware_tools.project_name(fw_dir)
    name = project_of(where)
    if name != want:
        what = f"the ESP-IDF project {name!r}" if name else "not an idf.py build (no project_description.json)"
        raise FirmwareError(f"pytest-embedded's app {where} is {what}, not tinyml-bench ({want}): it would be "
                            f"flashed and tinyml_board could not talk to it. Point --app-path at a tinyml-bench "
                            f"build: {fix}")
    kinds = embedded_targets.kinds_of(request.node)
    chips = kinds or embedded_targets.split_targets(at(request.getfixturevalue("target"), index))
    if chips and embedded_targets.chip_name(app.target) not in chips:
        whose = "the test's tinyml_board(kind=...) is for" if kinds else "the dut's target is"
        raise FirmwareError(f"the tinyml-bench build {where} is for {app.target}, {whose} {' or '.join(chips)}: "
                            f"build it for that chip (`idf.py -C {app.app_path} set-target {chips[0]} build`), or "
                            "drop --app-path")
    built = app_build_id(app)
    expected = flash.device_build_id(fw_dir)
    if (Path(where) / "tinyml_build_id.txt").is_file() and not flash.same_build_hash(built or "", expected):
        raise FirmwareError(f"the tinyml-bench build {where} is build {built}, the firmware sources in this checkout "
                            f"({fw_dir}) give {expected}: it is stale; rebuild it (`idf.py -C {app.app_path} "
                            "build`), or drop --app-path to let pytest-tinyml build the current one")


def not_flashed(port: str, reported: str, app, *, skipping: bool, can_flash: bool) -> str:
    """Why a board does not run the app pytest-embedded has for its dut, and what to do (after the dut is up)."""
    if skipping:
        why = ("--skip-autoflash / --tinyml-skip-flash kept what was on the board: drop them so pytest-embedded "
               "flashes the app")
    elif not can_flash:
        why = ("the idf service parses the app but only the esp service flashes it: run with "
               "--embedded-services esp,idf")
    else:
        why = ("pytest-embedded did not flash it: its session cache took the board on this port for current "
               "(add --confirm-target-elf-sha256 y), or the board was reset into another image")
    return (f"{port} runs build {reported or '(none)'}, not the app pytest-embedded has for this dut "
            f"({app.binary_path}, build {app_build_id(app)}). {why}")
