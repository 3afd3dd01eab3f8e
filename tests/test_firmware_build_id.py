"""One build id: the firmware's CMake (tools/build_id.cmake -> tools/build_id.py) and the plugin agree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tinyml.board import flash

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def test_script_and_plugin_agree():
    out = subprocess.run([sys.executable, str(FIRMWARE / "tools" / "build_id.py"), str(FIRMWARE)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == flash.device_build_id(FIRMWARE)
    assert len(out.stdout.strip()) == 16


def test_id_follows_image_sources_only(tmp_path):
    copy = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, copy, ignore=shutil.ignore_patterns("build*", "__pycache__"))
    before = flash.device_build_id(copy)
    (copy / "README.md").write_text("docs change nothing in the image\n")
    (copy / "host" / "extra.c").write_text("/* host-only */\n")
    (copy / "sdkconfig").write_text("# generated per checkout\n")
    assert flash.device_build_id(copy) == before
    with open(copy / "main" / "app_main.cc", "a") as handle:
        handle.write("\n// a change to the image\n")
    assert flash.device_build_id(copy) != before


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_function_gives_the_same_id(tmp_path):
    driver = tmp_path / "driver.cmake"
    driver.write_text(
        f'include("{(FIRMWARE / "tools" / "build_id.cmake").as_posix()}")\n'
        f'tinyml_build_id(ID "{Path(sys.executable).as_posix()}" "{FIRMWARE.as_posix()}")\n'
        'message(STATUS "ID=${ID}")\n'
    )
    out = subprocess.run(["cmake", "-P", str(driver)], capture_output=True, text=True, check=True)
    assert f"ID={flash.device_build_id(FIRMWARE)}" in out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_function_leaves_id_unset_when_the_script_fails(tmp_path):
    driver = tmp_path / "driver.cmake"
    driver.write_text(
        f'include("{(FIRMWARE / "tools" / "build_id.cmake").as_posix()}")\n'
        f'tinyml_build_id(ID "{Path(sys.executable).as_posix()}" "{tmp_path.as_posix()}")\n'
        'if(DEFINED ID)\n  message(FATAL_ERROR "id set: ${ID}")\nendif()\n'
    )
    out = subprocess.run(["cmake", "-P", str(driver)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ELF hash" in out.stderr
