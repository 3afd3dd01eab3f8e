"""The public names of ``import pytest_tinyml as tinyml`` resolve, whatever was imported before."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "before",
    ["", "import pytest_tinyml.tflite.artifact", "import pytest_tinyml.cache", "import pytest_tinyml.conversion"],
)
def test_tinyml_convert_is_a_plain_function(before):
    """``tinyml.convert`` is the function itself, not a callable module, whatever was imported before."""
    code = (
        f"{before}\nimport inspect\nimport pytest_tinyml as tinyml\n"
        "from pytest_tinyml.conversion import convert\n"
        "assert inspect.isfunction(tinyml.convert), type(tinyml.convert)\n"
        "assert tinyml.convert is convert\n"
        "try:\n    tinyml.convert(object(), 'nonsense')\nexcept tinyml.errors.TinyMLError as exc:\n    print('typed', type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("typed"), out.stdout


def test_every_lazy_name_resolves():
    code = "import pytest_tinyml as t\nfor n in t.__all__:\n    getattr(t, n)\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_firmware_ships_inside_the_package():
    """pyproject's package-data takes firmware_src/ (a link to firmware/) into the wheel, so an installed
    pytest-tinyml can build the sim board and flash boards without a checkout."""
    from pathlib import Path

    from pytest_tinyml.board.flash import locate_firmware_dir

    package = Path(__import__("pytest_tinyml").__file__).parent
    assert (package / "firmware_src" / "main" / "core" / "tinyml_core.h").is_file()
    assert locate_firmware_dir().resolve() == (package / "firmware_src").resolve()
    pyproject = (package.parents[1] / "pyproject.toml").read_text()
    assert '"firmware_src/**/*"' in pyproject


def test_runtime_submodules_are_attributes():
    code = (
        "import pytest_tinyml as tinyml\n"
        "assert tinyml.runtime.litert.LiteRTRunner and tinyml.runtime.tflm.TFLMRunner\n"
        "try:\n    tinyml.runtime.nonsense\nexcept AttributeError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
