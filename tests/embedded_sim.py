"""Helpers of the pytest-embedded tests: the sim on a pty as pytest-embedded's ``--port``, an inner pytest run
with pytest-embedded's plugin enabled, and an ESP-IDF build directory laid out as idf.py lays it out.

The build directory is what pytest-embedded-idf's ``IdfApp`` reads (``flasher_args.json``,
``config/sdkconfig.json``, the ``.bin``/``.elf`` at the top), plus ``project_description.json`` and the
``tinyml_build_id.txt`` the firmware's CMake writes, with the build id from the firmware's own
``tools/build_id.py`` and the chip from its ``tools/targets.py``. The images in it are placeholders: nothing
here runs idf.py or esptool.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_tinyml.board import flash, sim

# idf.py's offsets: the second-stage bootloader sits at 0x1000 on the ESP32, at 0x0 on the S3 and C3.
BOOTLOADER_AT = {"esp32": "0x1000"}


def start_sim(cache: Path, build: str | None = None) -> sim.SimProcess:
    """tinyml-host on a fresh pty; ``build`` is the build id it reports (default: its own, from the sources)."""
    fw_dir = flash.locate_firmware_dir(None)
    binary, build_id = sim.build_host(fw_dir, cache)
    return sim.start(binary, build or build_id, log_dir=cache / "sim", cache_dir=cache,
                     builtin_model=sim.builtin_model(fw_dir))


def run(pytester, port: str, cache, *args: str, services: str = "serial"):
    return pytester.runpytest_subprocess(
        # --port=PTY in one word: as two words pytest takes the port for a path and its dir (/dev/pts) for
        # the rootdir, where the history cannot be written
        "-p", "pytest_embedded", "--embedded-services", services, f"--port={port}", "--tinyml-board=embedded",
        f"--tinyml-cache-dir={cache}", "-p", "no:cacheprovider", *args, timeout=180)


def idf_build_dir(path: Path, board_config: str = "esp32s3", *, project: str = "tinyml_bench",
                  build_id: str | None = None) -> Path:
    """Lay out an idf.py build directory of the firmware for ``board_config`` at ``path``; its build id is the
    one the sources give unless ``build_id`` says otherwise (``""``: no ``tinyml_build_id.txt``)."""
    fw_dir = flash.locate_firmware_dir(None)
    chip = flash.board_config(fw_dir, board_config).chip
    path.mkdir(parents=True, exist_ok=True)
    files = {BOOTLOADER_AT.get(chip, "0x0"): "bootloader/bootloader.bin", "0x8000": "partition_table/partition-table.bin",
             "0x10000": f"{project}.bin"}
    for rel in files.values():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(b"\xe9placeholder image")
    (path / f"{project}.elf").write_bytes(b"\x7fELF placeholder")
    settings = {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "80m"}
    entries = {"bootloader": "bootloader/bootloader.bin", "partition-table": "partition_table/partition-table.bin",
               "app": f"{project}.bin"}
    (path / "flasher_args.json").write_text(json.dumps({
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "80m"],
        "flash_settings": settings,
        "flash_files": files,
        **{name: {"offset": next(a for a, r in files.items() if r == rel), "file": rel, "encrypted": "false"}
           for name, rel in entries.items()},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": chip},
    }, indent=4))
    (path / "config").mkdir(exist_ok=True)
    (path / "config" / "sdkconfig.json").write_text(json.dumps({"IDF_TARGET": chip, "APP_BUILD_TYPE_APP_2NDBOOT": True}))
    (path / "project_description.json").write_text(json.dumps({
        "project_name": project, "target": chip, "app_elf": f"{project}.elf", "app_bin": f"{project}.bin",
        "build_dir": str(path), "project_path": str(fw_dir)}, indent=4))
    built = flash.device_build_id(fw_dir) if build_id is None else build_id
    if built:
        (path / "tinyml_build_id.txt").write_text(built + "\n")
    return path


def cached_build_dir(cache: Path, board_config: str = "esp32s3") -> Path:
    """The build directory ``flash.build`` would make in ``cache`` for ``board_config``, laid out and marked done
    as it marks it, so ``flash.build`` returns it without running idf.py."""
    fw_dir = flash.locate_firmware_dir(None)
    expected = flash.device_build_id(fw_dir)
    path = idf_build_dir(Path(cache) / "firmware" / f"{board_config}-{expected[:16]}", board_config)
    (path / "tinyml-build.json").write_text(json.dumps({"target": board_config, "build_hash": expected}))
    assert flash.cached_build(fw_dir, board_config, cache, expected).build_dir == path
    return path


def fake_idf(bin_dir: Path, calls: Path, *, seconds: float = 0.0) -> Path:
    """An ``idf.py`` on PATH for machines without ESP-IDF: it appends its arguments to ``calls`` (one line per
    run), waits ``seconds`` (a build takes time: others must wait for it, not start their own) and lays out
    the ``-B`` directory with :func:`idf_build_dir` for the ``set-target`` chip, as a real build would."""
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "idf.py"
    script.write_text(f"""#!{sys.executable}
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
args = sys.argv[1:]
with open({str(calls)!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
time.sleep({seconds!r})
from pathlib import Path
from embedded_sim import idf_build_dir
idf_build_dir(Path(args[args.index("-B") + 1]), args[args.index("set-target") + 1])
""")
    script.chmod(0o755)
    return script
