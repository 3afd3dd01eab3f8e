"""The firmware's own Python tools (``firmware/tools/*.py``: build id, board configurations), loaded by path.

They are standard-library only, so loading one costs nothing and the plugin can validate
``--tinyml-target`` at parse time. The firmware's CMake runs the same files, which keeps one definition of
the build id and of the board configurations for pytest-tinyml and for boards built by hand.

Example:
    >>> "esp32c3-usb" in load("targets", shipped_firmware_dir()).BOARD_CONFIGS
    True
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from pytest_tinyml.errors import FirmwareError


def shipped_firmware_dir() -> Path | None:
    """The ``firmware/`` shipped with pytest-tinyml (the wheel's ``firmware_src`` or the checkout's), if any."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "firmware_src", package.parents[1] / "firmware"):
        if candidate.is_dir():
            return candidate
    return None


def load(name: str, firmware_dir: Path | None = None):
    """``<firmware_dir>/tools/<name>.py`` as a module (default: the shipped firmware)."""
    root = firmware_dir or shipped_firmware_dir()
    path = Path(root or ".") / "tools" / f"{name}.py"
    module_name = f"_tinyml_firmware_{name}_{abs(hash(str(path.resolve()))):x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FirmwareError(f"{path} is missing: the firmware sources are incomplete; reinstall pytest-tinyml "
                            "or point --tinyml-firmware-dir at a complete checkout of firmware/")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def board_config_names() -> tuple[str, ...]:
    """The ``--tinyml-target`` values: the board configurations of the shipped firmware."""
    return tuple(load("targets").BOARD_CONFIGS)


def project_name(firmware_dir: Path | None = None) -> str:
    """The ESP-IDF project name of the firmware (``project(...)`` in its ``CMakeLists.txt``): what idf.py writes
    as ``project_name`` in a build's ``project_description.json``.

    Example:
        >>> project_name()
        'tinyml_bench'
    """
    path = Path(firmware_dir or shipped_firmware_dir() or ".") / "CMakeLists.txt"
    try:
        found = re.search(r"^\s*project\(\s*([A-Za-z0-9_.+-]+)", path.read_text(errors="replace"), re.MULTILINE)
    except OSError:
        found = None
    if found is None:
        raise FirmwareError(f"{path} has no project(...) line: the firmware sources are incomplete; reinstall "
                            "pytest-tinyml or point --tinyml-firmware-dir at a complete checkout of firmware/")
    return found.group(1)
