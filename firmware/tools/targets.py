#!/usr/bin/env python3
"""Board configurations of the firmware: the values of ``--tinyml-target``. Standard library only.

A board configuration is an ESP-IDF target (the chip) plus the sdkconfig defaults files for one family of
boards: with or without PSRAM, console on a UART bridge or on the chip's own USB-Serial-JTAG port. ESP-IDF
reads ``SDKCONFIG_DEFAULTS`` in order and appends ``<file>.<target>`` where it exists, so every build gets
``sdkconfig.defaults``, then ``sdkconfig.defaults.<chip>``, then the family file under ``boards/``.

    python3 firmware/tools/targets.py                    # the table
    python3 firmware/tools/targets.py esp32c3-usb        # the idf.py arguments for that config
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BoardConfig:
    """One ``--tinyml-target`` value: its chip, its extra defaults file (under ``boards/``) and what it is for."""

    name: str
    chip: str
    overlay: str | None
    boards: str

    def defaults_files(self, root: Path) -> list[Path]:
        """The SDKCONFIG_DEFAULTS list, absolute (ESP-IDF adds ``sdkconfig.defaults.<chip>`` after the first)."""
        files = [Path(root).resolve() / "sdkconfig.defaults"]
        if self.overlay:
            files.append(Path(root).resolve() / "boards" / self.overlay)
        return files

    def idf_args(self, root: Path) -> list[str]:
        """idf.py arguments that select this config: ``-DSDKCONFIG_DEFAULTS=...`` and ``set-target <chip>``.

        Example:
            >>> BOARD_CONFIGS["esp32c3-usb"].idf_args(Path("/fw"))[-2:]
            ['set-target', 'esp32c3']
        """
        defaults = ";".join(p.as_posix() for p in self.defaults_files(root))
        return [f"-DSDKCONFIG_DEFAULTS={defaults}", "set-target", self.chip]


BOARD_CONFIGS = {c.name: c for c in (
    BoardConfig("esp32", "esp32", None, "ESP32 without PSRAM (WROOM-32 DevKitC, NodeMCU-32S): no PSRAM cache workaround"),
    BoardConfig("esp32-psram", "esp32", "esp32-psram.defaults", "ESP32 with PSRAM (WROVER): PSRAM on, with the "
                "ESP32 cache workaround that slows all code"),
    BoardConfig("esp32s3", "esp32s3", None, "ESP32-S3 through its USB-UART bridge (DevKitC 'UART' connector); "
                "quad PSRAM when present"),
    BoardConfig("esp32s3-usb", "esp32s3", "esp32s3-usb.defaults", "ESP32-S3 through the chip's USB-Serial-JTAG "
                "(DevKitC 'USB' connector, XIAO ESP32S3)"),
    BoardConfig("esp32c3", "esp32c3", None, "ESP32-C3 through a USB-UART bridge (DevKitM/DevKitC-02)"),
    BoardConfig("esp32c3-usb", "esp32c3", "esp32c3-usb.defaults", "ESP32-C3 whose only port is the chip's "
                "USB-Serial-JTAG (C3 SuperMini, XIAO ESP32C3)"),
)}

# The chip a board reports (info-chip) -> the config used when --tinyml-target is not given.
DEFAULT_FOR_CHIP = {"esp32": "esp32", "esp32s3": "esp32s3", "esp32c3": "esp32c3"}


def main(argv: list[str]) -> int:
    if not argv:
        for config in BOARD_CONFIGS.values():
            print(f"{config.name:12} {config.chip:8} {config.boards}")
        return 0
    config = BOARD_CONFIGS.get(argv[0])
    if config is None:
        print(f"unknown board config {argv[0]!r}; one of {', '.join(BOARD_CONFIGS)}", file=sys.stderr)
        return 2
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    print(" ".join(config.idf_args(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
