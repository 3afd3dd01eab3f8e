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


LOCK = """dependencies:
  espressif/esp-nn:
    component_hash: 0123
    dependencies:
    - name: idf
      require: private
      version: '>=4.2'
    source:
      registry_url: https://components.espressif.com/
      type: service
    version: 1.2.3
  espressif/esp-tflite-micro:
    component_hash: 4567
    source:
      type: service
    version: 1.4.0
  idf:
    source:
      type: idf
    version: 5.3.1
direct_dependencies:
- espressif/esp-tflite-micro
manifest_hash: 89ab
target: esp32s3
version: 2.0.0
"""


def _build_id_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fw_build_id", FIRMWARE / "tools" / "build_id.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resolved_kernel_versions_are_part_of_the_id(tmp_path):
    ids = _build_id_module()
    copy = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, copy, ignore=shutil.ignore_patterns("build*", "__pycache__", "dependencies.lock"))
    unbuilt = ids.build_id(copy)
    (copy / "dependencies.lock").write_text(LOCK)
    assert ids.component_versions(copy) == {"esp-nn": "1.2.3", "esp-tflite-micro": "1.4.0"}
    locked = ids.build_id(copy)
    assert locked != unbuilt
    assert locked == ids.build_id(copy, ids.parse_components("espressif__esp-tflite-micro=1.4.0,espressif__esp-nn=1.2.3"))
    # One kernel version more or less is another id: ^1.3.1 resolving to 1.4.0 is not the same build.
    (copy / "dependencies.lock").write_text(LOCK.replace("version: 1.4.0", "version: 1.3.8"))
    assert ids.build_id(copy) not in (locked, unbuilt)
    assert ids.parse_components("esp-tflite-micro=unknown,esp-nn=unknown") == {}


def test_versions_come_from_managed_components_without_a_lock(tmp_path):
    ids = _build_id_module()
    (tmp_path / "managed_components" / "espressif__esp-nn").mkdir(parents=True)
    (tmp_path / "managed_components" / "espressif__esp-nn" / "idf_component.yml").write_text('version: "1.2.3"\n')
    assert ids.component_versions(tmp_path) == {"esp-nn": "1.2.3"}


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_function_hashes_the_components_it_is_given(tmp_path):
    ids = _build_id_module()
    driver = tmp_path / "driver.cmake"
    driver.write_text(
        f'include("{(FIRMWARE / "tools" / "build_id.cmake").as_posix()}")\n'
        f'tinyml_build_id(ID "{Path(sys.executable).as_posix()}" "{FIRMWARE.as_posix()}" '
        '"esp-tflite-micro=1.4.0,esp-nn=1.2.3")\n'
        'message(STATUS "ID=${ID}")\n'
    )
    out = subprocess.run(["cmake", "-P", str(driver)], capture_output=True, text=True, check=True)
    expected = ids.build_id(FIRMWARE, {"esp-tflite-micro": "1.4.0", "esp-nn": "1.2.3"})
    assert f"ID={expected}" in out.stdout + out.stderr and expected != ids.build_id(FIRMWARE, {})
