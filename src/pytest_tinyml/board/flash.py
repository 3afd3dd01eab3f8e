"""Build the benchmark firmware with ESP-IDF when its sources changed, flash it only when the board's differs.

The build is cached by a hash of the firmware sources (``<cache>/firmware/<target>-<hash>``), so a second
run, or a second worker, reuses it. Whether to flash is decided by comparing the firmware build hash the
board reports (``info["build_hash"]``) with the one the sources give: a board already running this firmware
is never reflashed. Flashing goes through esptool's Python API (pytest-embedded's esp service needs its own
pexpect-driven DUT objects, which a plain serial session does not have).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_tinyml import firmware_tools
from pytest_tinyml._files import write_atomic
from pytest_tinyml.errors import FirmwareError

__all__ = ["FirmwareError", "build", "cached_build", "check_current", "device_build_id", "flash", "locate_firmware_dir"]

_INSTALL_HINT = (
    "install ESP-IDF (https://docs.espressif.com/projects/esp-idf/en/stable/esp32/get-started/) and run "
    "`. $IDF_PATH/export.sh` before pytest so that idf.py is on PATH, or flash the board yourself and pass "
    "--tinyml-skip-flash"
)


def locate_firmware_dir(configured: str | None = None) -> Path:
    """The firmware project: ``--tinyml-firmware-dir`` if given, else the ``firmware/`` shipped with us.

    Example:
        >>> locate_firmware_dir().name in ("firmware", "firmware_src")
        True
    """
    if configured:
        path = Path(configured).expanduser().resolve()
        if not path.is_dir():
            raise FirmwareError(f"--tinyml-firmware-dir {configured}: no such directory; give the benchmark "
                                "firmware's ESP-IDF project (the folder with CMakeLists.txt and main/)")
        return path
    shipped = firmware_tools.shipped_firmware_dir()
    if shipped is not None:
        return shipped
    raise FirmwareError(
        f"the benchmark firmware sources were not found next to {Path(__file__).resolve().parents[1]} "
        "(expected firmware/ in the pytest-tinyml checkout); pass --tinyml-firmware-dir=PATH")


def _build_id_module():
    """``firmware/tools/build_id.py`` of the firmware shipped with pytest-tinyml: the one definition of the
    build id, which the firmware's CMake runs too (so boards built by hand report the id we expect)."""
    return firmware_tools.load("build_id", locate_firmware_dir())


def board_config(firmware_dir: Path, name: str):
    """The board configuration ``name`` (a ``--tinyml-target`` value) of ``firmware/tools/targets.py``.

    Example:
        >>> board_config(locate_firmware_dir(), "esp32c3-usb").chip
        'esp32c3'
    """
    configs = firmware_tools.load("targets", firmware_dir).BOARD_CONFIGS
    if name not in configs:
        raise FirmwareError(f"no board configuration {name!r} in {firmware_dir}/tools/targets.py; "
                            f"pass --tinyml-target as one of {', '.join(configs)}")
    return configs[name]


def default_board_config(firmware_dir: Path, chip: str | None) -> str | None:
    """The board configuration used for a board reporting ``chip`` when --tinyml-target is not given."""
    return firmware_tools.load("targets", firmware_dir).DEFAULT_FOR_CHIP.get(chip or "")


def source_files(root: Path, subdir: str | None = None) -> list[Path]:
    """The files that make up the firmware (or one of its subfolders), sorted, build outputs left out."""
    return _build_id_module().source_files(root, subdir)


def source_hash(root: Path, files: list[Path] | None = None, extra: str = "") -> str:
    """sha256 over relative paths and contents of the firmware sources (and ``extra``, e.g. the target).

    Example:
        >>> len(source_hash(locate_firmware_dir()))
        64
    """
    return _build_id_module().source_hash(root, files, extra)


def by_hand_command(root: Path, build_id: str) -> str:
    """The idf.py command that builds and flashes this firmware so that the board reports ``build_id``."""
    return f"idf.py -C {root} -DTINYML_BUILD_ID={build_id} build flash"


def device_build_id(root: Path) -> str:
    """The build id the firmware reports once built from ``root``: a hash of what goes into the image.

    The host program (``host/``) and documentation do not change the image, so they are left out. The
    firmware's CMake computes the same id with the same file (``tools/build_id.py``), and idf.py may also
    receive it as ``-DTINYML_BUILD_ID=<id>``; the board reports it as ``info-build``.

    Example:
        >>> len(device_build_id(locate_firmware_dir()))
        16
    """
    return _build_id_module().build_id(root)


def find_idf() -> list[str]:
    """The command that runs ``idf.py``; ``FirmwareError`` with install instructions when ESP-IDF is missing.

    Example:
        >>> find_idf()  # doctest: +SKIP
        ['/usr/bin/python3', '/opt/esp-idf/tools/idf.py']
    """
    on_path = shutil.which("idf.py")
    if on_path:
        return [on_path]
    idf_path = os.environ.get("IDF_PATH")
    if idf_path and (Path(idf_path) / "tools" / "idf.py").is_file():
        return [sys.executable, str(Path(idf_path) / "tools" / "idf.py")]
    raise FirmwareError("ESP-IDF not found (no idf.py on PATH and IDF_PATH is not set): the benchmark firmware "
                        "cannot be built. " + _INSTALL_HINT)


@dataclass(frozen=True)
class FirmwareBuild:
    """A built firmware image: where it is and the hash the board will report once it runs it."""

    target: str
    build_dir: Path
    build_hash: str

    def flash_files(self) -> tuple[list[tuple[int, str]], dict]:
        """(address, path) pairs and flash settings from ESP-IDF's ``flasher_args.json``."""
        args_file = self.build_dir / "flasher_args.json"
        try:
            args = json.loads(args_file.read_text())
        except (OSError, ValueError) as exc:
            raise FirmwareError(f"{args_file} is missing or unreadable ({exc}): rebuild the firmware "
                                f"(delete {self.build_dir})") from None
        files = [(int(addr, 0), str(self.build_dir / rel)) for addr, rel in sorted(args["flash_files"].items())]
        return files, dict(args.get("flash_settings", {}))


def build(firmware_dir: Path, target: str, cache_dir: Path, expected_hash: str) -> FirmwareBuild:
    """Build ``firmware_dir`` for the board configuration ``target`` (``--tinyml-target``: ``esp32``,
    ``esp32s3-usb``, ...; see ``firmware/tools/targets.py``) with idf.py unless that build is cached.

    ``expected_hash`` is the build id the sources give; it names the cache. The id of the image is the one the
    firmware's CMake wrote (``tinyml_build_id.txt``: sources plus the resolved esp-tflite-micro / esp-nn
    versions), so a board flashed with it is recognised as current later.

    Example:
        >>> build(locate_firmware_dir(), "esp32s3", Path(".tinyml_cache"), "ab12")  # doctest: +SKIP
    """
    config = board_config(firmware_dir, target)
    cached = cached_build(firmware_dir, target, cache_dir, expected_hash)
    if cached is not None:
        return cached
    from filelock import FileLock

    build_dir = Path(cache_dir) / "firmware" / f"{config.name}-{expected_hash[:16]}"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers (or two runs) wanting the same build: one runs idf.py, the others wait and reuse it
    with FileLock(str(build_dir) + ".lock"):
        cached = cached_build(firmware_dir, target, cache_dir, expected_hash)
        if cached is not None:
            return cached
        command = find_idf() + ["-C", str(firmware_dir), "-B", str(build_dir),
                                f"-DSDKCONFIG={build_dir / 'sdkconfig'}", *config.idf_args(firmware_dir), "build"]
        build_dir.mkdir(parents=True, exist_ok=True)
        log_path = build_dir / "idf-build.log"
        with open(log_path, "w") as log:
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise FirmwareError(f"idf.py build of {firmware_dir} for {config.name} failed (exit {proc.returncode}); "
                                f"full log: {log_path}\n{tail}")
        id_file = build_dir / "tinyml_build_id.txt"
        build_hash = id_file.read_text().strip() if id_file.is_file() else expected_hash
        write_atomic(build_dir / "tinyml-build.json",
                     json.dumps({"target": config.name, "chip": config.chip, "build_hash": build_hash}))
    return FirmwareBuild(config.name, build_dir, build_hash)


def cached_build(firmware_dir: Path, target: str, cache_dir: Path, expected_hash: str) -> FirmwareBuild | None:
    """The finished build :func:`build` would return from its cache, or ``None`` when it would run idf.py.

    Example:
        >>> cached_build(locate_firmware_dir(), "esp32s3", Path("/nonexistent"), "ab12") is None
        True
    """
    config = board_config(firmware_dir, target)
    build_dir = Path(cache_dir) / "firmware" / f"{config.name}-{expected_hash[:16]}"
    done = build_dir / "tinyml-build.json"
    if not done.is_file():
        return None
    try:
        return FirmwareBuild(config.name, build_dir, json.loads(done.read_text())["build_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a torn marker: build again


def flash(port: str, firmware: FirmwareBuild, *, baud: int = 460800) -> None:
    """Write the image to the board on ``port`` with esptool and hard-reset it.

    Example:
        >>> flash("/dev/ttyUSB0", build(...))  # doctest: +SKIP
    """
    try:
        from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
    except ImportError:
        raise FirmwareError("esptool is not installed: `pip install pytest-tinyml[board]`, or flash by hand "
                            "and pass --tinyml-skip-flash") from None
    files, settings = firmware.flash_files()
    try:
        with detect_chip(port, baud=baud) as esp:
            esp = run_stub(esp)
            attach_flash(esp)
            write_flash(esp, files, flash_mode=settings.get("flash_mode", "keep"),
                        flash_freq=settings.get("flash_freq", "keep"), flash_size=settings.get("flash_size", "keep"))
            reset_chip(esp, "hard-reset")
    except Exception as exc:  # esptool raises FatalError, SerialException, OSError...
        detail = " ".join(str(exc).split()).rstrip(".")  # esptool's messages span lines
        raise FirmwareError(f"flashing {port} with esptool failed: {detail}. Hold BOOT while pressing RESET to enter "
                            "the bootloader, check the cable, or flash by hand and pass --tinyml-skip-flash",
                            port=port) from None


def check_current(reported: str | None, expected: str, *, port: str, skip_flash: bool, log: str = "",
                  by_hand: str | None = None) -> bool:
    """True when the board must be (re)flashed; under ``skip_flash`` a stale board is a ``FirmwareError``.

    ``by_hand`` is the command that flashes the current firmware by hand, quoted in that error.

    Example:
        >>> check_current("3f9c2e1d0a7b", "3f9c2e1d0a7b55aa", port="/dev/ttyUSB0", skip_flash=True)
        False
    """
    if reported and same_build_hash(reported, expected):
        return False
    if skip_flash:
        raise FirmwareError(
            f"the firmware on {port} is stale: it reports build hash {reported or '(none)'}, the sources in this "
            f"checkout give {expected[:16]}. Flash the current firmware (drop --tinyml-skip-flash to let pytest do "
            f"it{', or by hand: `' + by_hand + '`' if by_hand else ''}) or check out the sources the board was "
            "flashed from", port=port, log=log)
    return True


def same_build_hash(reported: str, expected: str) -> bool:
    """Boards may report a prefix of the hash (short build ids); compare on the common length, >= 8 digits.

    Example:
        >>> same_build_hash("3F9C2E1D", "3f9c2e1d0a7b55aa"), same_build_hash("3f9c", "3f9c2e1d0a7b55aa")
        (True, False)
    """
    reported, expected = reported.strip().lower(), expected.strip().lower()
    if reported == expected:
        return bool(reported)
    common = min(len(reported), len(expected))
    return common >= 8 and reported[:common] == expected[:common]
