"""What can be checked of the ESP-IDF firmware without ESP-IDF: manifest lint (idf-component-manager),
Kconfig style (esp-idf-kconfig's kconfcheck), the project layout, the portable core's independence from
ESP-IDF, and the built-in model against its C array and the op resolver."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from firmware_host import FIRMWARE

BIN = Path(sys.executable).parent


def _compote() -> list[str]:
    exe = shutil.which("compote", path=str(BIN)) or shutil.which("compote")
    if exe is None:
        pytest.skip("idf-component-manager (compote) is not installed: pip install idf-component-manager")
    return [exe]


def _kconfcheck() -> list[str]:
    pytest.importorskip("kconfcheck", reason="esp-idf-kconfig is not installed: pip install esp-idf-kconfig")
    return [sys.executable, "-m", "kconfcheck"]


def test_component_manifest_lints_clean():
    proc = subprocess.run([*_compote(), "-W", "manifest", "lint", str(FIRMWARE / "main" / "idf_component.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_manifest_lint_rejects_a_broken_manifest(tmp_path):
    # The negative control: the lint really looks at the file.
    bad = tmp_path / "idf_component.yml"
    bad.write_text('dependencies:\n  espressif/esp-tflite-micro:\n    version: "^^1.x"\n  idf: 5\n')
    proc = subprocess.run([*_compote(), "manifest", "lint", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0


def test_manifest_depends_on_esp_tflite_micro():
    import yaml

    manifest = yaml.safe_load((FIRMWARE / "main" / "idf_component.yml").read_text())
    deps = manifest["dependencies"]
    assert deps["espressif/esp-tflite-micro"]["version"].startswith("^1.")
    assert deps["idf"]["version"] == ">=5.1"  # esp-tflite-micro's own floor


def test_kconfig_passes_kconfcheck(tmp_path):
    # kconfcheck writes a .new file next to a file it would change: run it on a copy.
    copy = tmp_path / "Kconfig.projbuild"
    shutil.copy(FIRMWARE / "main" / "Kconfig.projbuild", copy)
    proc = subprocess.run([*_kconfcheck(), str(copy)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"{copy}: OK" in proc.stdout, proc.stdout + proc.stderr
    assert not list(tmp_path.glob("*.new"))


def test_kconfcheck_rejects_bad_indentation(tmp_path):
    bad = tmp_path / "Kconfig.projbuild"
    bad.write_text('menu "x"\n  config TINYML_X\n   int "x"\n   default 1\nendmenu\n')
    proc = subprocess.run([*_kconfcheck(), str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0


def _kconfig_symbols() -> set[str]:
    text = (FIRMWARE / "main" / "Kconfig.projbuild").read_text()
    return set(re.findall(r"^\s*config (\w+)$", text, flags=re.M))


def test_sdkconfig_defaults_set_only_options_that_exist():
    ours = _kconfig_symbols()
    assert {"TINYML_ARENA_SIZE", "TINYML_ARENA_PSRAM_FALLBACK", "TINYML_MAX_RUNS", "TINYML_DB_MAX",
            "TINYML_BAUD"} <= ours
    for path in [*FIRMWARE.glob("sdkconfig.defaults*"), *(FIRMWARE / "boards").glob("*.defaults")]:
        for name in re.findall(r"^CONFIG_(TINYML_\w+)=", path.read_text(), flags=re.M):
            assert name in ours, f"{path.name} sets CONFIG_{name}, which main/Kconfig.projbuild does not define"
    defaults = (FIRMWARE / "sdkconfig.defaults").read_text()
    assert "CONFIG_NN_OPTIMIZED=y" in defaults and "CONFIG_ESP_CONSOLE_UART_BAUDRATE=921600" in defaults
    for target in ("esp32", "esp32s3"):
        assert "CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y" in (FIRMWARE / f"sdkconfig.defaults.{target}").read_text()
    # Every CONFIG_TINYML_* the C/C++ sources read is defined.
    used = set()
    for path in (FIRMWARE / "main").glob("*.cc"):
        used |= set(re.findall(r"CONFIG_(TINYML_\w+)", path.read_text()))
    assert used and used <= ours, used - ours


def test_idf_project_layout():
    for rel in ["CMakeLists.txt", "main/CMakeLists.txt", "main/idf_component.yml", "main/Kconfig.projbuild",
                "sdkconfig.defaults", "main/app_main.cc", "main/tflm_engine.cc", "main/model_data.cc",
                "PROTOCOL.md", "host/ENGINE_RPC.md", "host/Makefile"]:
        assert (FIRMWARE / rel).is_file(), rel
    assert "project.cmake" in (FIRMWARE / "CMakeLists.txt").read_text()
    main_cmake = (FIRMWARE / "main" / "CMakeLists.txt").read_text()
    for source in ("app_main.cc", "tflm_engine.cc", "model_data.cc", "core/*.c"):
        assert source in main_cmake


def test_portable_core_includes_nothing_from_esp_idf():
    allowed = {"stdarg.h", "stddef.h", "stdint.h", "stdio.h", "string.h"}
    for path in sorted((FIRMWARE / "main" / "core").iterdir()):
        for include in re.findall(r'#include [<"]([^>"]+)[>"]', path.read_text()):
            assert include in allowed or include.startswith("tinyml_"), f"{path.name} includes {include}"


def _camel_to_op(name: str) -> str:
    """AddFullyConnected -> FULLY_CONNECTED, AddConv2D -> CONV_2D, AddRelu6 -> RELU6."""
    special = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "AveragePool2D": "AVERAGE_POOL_2D",
               "MaxPool2D": "MAX_POOL_2D", "UnidirectionalSequenceLSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM",
               "PadV2": "PADV2", "SplitV": "SPLIT_V", "Relu6": "RELU6"}
    return special.get(name, re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper())


def test_builtin_model_is_the_c_array_and_its_ops_are_registered():
    tflite = (FIRMWARE / "models" / "builtin.tflite").read_bytes()
    cc = (FIRMWARE / "main" / "model_data.cc").read_text()
    array = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", cc.split("{", 1)[1]))
    assert array == tflite and tflite[4:8] == b"TFL3"
    assert f"g_model_len = {len(tflite)};" in cc
    assert "alignas(16)" in cc  # TFLM reads tensors in place

    from pytest_tinyml.analyze import analyze

    ops = {op.op for op in analyze(tflite).ops}
    engine = (FIRMWARE / "main" / "tflm_engine.cc").read_text()
    registered = {_camel_to_op(name) for name in re.findall(r"r\.Add(\w+)\(\);", engine)}
    assert ops == {"FULLY_CONNECTED", "SOFTMAX"}
    assert ops <= registered
    count = int(re.search(r"kMaxOps = (\d+);", engine).group(1))
    assert len(registered) <= count  # MicroMutableOpResolver<kMaxOps> has room for every Add*


def _targets():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fw_targets", FIRMWARE / "tools" / "targets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def _settings(files: list[Path]) -> dict[str, str]:
    """The CONFIG_ values a list of defaults files leaves, later files winning (as kconfgen applies them)."""
    values: dict[str, str] = {}
    for path in files:
        for name, value in re.findall(r"^CONFIG_(\w+)=(.*)$", path.read_text(), flags=re.M):
            values[name] = value
    return values


def _applied(config) -> list[Path]:
    """SDKCONFIG_DEFAULTS as ESP-IDF expands it: each file, then <file>.<chip> where it exists."""
    files = []
    for path in config.defaults_files(FIRMWARE):
        files.append(path)
        if path.with_name(f"{path.name}.{config.chip}").is_file():
            files.append(path.with_name(f"{path.name}.{config.chip}"))
    return files


def test_board_configs_name_themselves_and_set_psram_and_console_per_family():
    configs = _targets().BOARD_CONFIGS
    assert set(configs) == {"esp32", "esp32-psram", "esp32s3", "esp32s3-usb", "esp32c3", "esp32c3-usb"}
    for name, config in configs.items():
        files = _applied(config)
        assert all(f.is_file() for f in files), files
        values = _settings(files)
        assert values["TINYML_BOARD_CONFIG"] == f'"{name}"', name
        usb = values.get("ESP_CONSOLE_USB_SERIAL_JTAG") == "y"
        assert usb == name.endswith("-usb"), name
    # D5: the plain ESP32 config must not turn on PSRAM (and with it the cache workaround).
    assert "SPIRAM" not in _settings(_applied(configs["esp32"]))
    assert _settings(_applied(configs["esp32-psram"]))["SPIRAM"] == "y"
    args = configs["esp32c3-usb"].idf_args(FIRMWARE)
    assert args[-2:] == ["set-target", "esp32c3"] and args[0].endswith("boards/esp32c3-usb.defaults")


def test_board_config_check_sees_a_wrong_name(tmp_path):
    # The negative control of the check above: a family file naming another config is caught.
    bad = tmp_path / "x.defaults"
    bad.write_text('CONFIG_TINYML_BOARD_CONFIG="esp32"\n')
    assert _settings([FIRMWARE / "boards" / "esp32c3-usb.defaults", bad])["TINYML_BOARD_CONFIG"] != '"esp32c3-usb"'
