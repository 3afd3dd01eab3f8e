#!/usr/bin/env python3
"""The firmware's build id: a hash of the sources that go into the image. Standard library only.

The board reports it as ``info-build``; pytest-tinyml compares it with the id of the sources it has to decide
whether to flash. Both sides run this file, so a board built by hand with plain ``idf.py build flash`` reports
the same id pytest-tinyml expects: ``main/CMakeLists.txt`` runs it at configure time (and re-configures when a
source changes), and ``pytest_tinyml.board.flash`` imports it.

    python3 firmware/tools/build_id.py firmware           # prints the id
    python3 firmware/tools/build_id.py firmware --files   # the files it covers, ';'-separated (for CMake)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

# Outputs and per-checkout state that must not change the id.
IGNORED_DIRS = {"build", "managed_components", ".git", "__pycache__", ".cache"}
IGNORED_FILES = {"sdkconfig", "sdkconfig.old", "dependencies.lock", ".DS_Store"}
ID_LENGTH = 16


def source_files(root: Path, subdir: str | None = None) -> list[Path]:
    """The files that make up the firmware (or one of its subfolders), sorted, build outputs left out."""
    base = Path(root) / subdir if subdir else Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("build"))
        found.extend(Path(dirpath) / f for f in filenames if f not in IGNORED_FILES and not f.endswith((".o", ".pyc")))
    return sorted(found)


def source_hash(root: Path, files: list[Path] | None = None, extra: str = "") -> str:
    """sha256 over relative paths and contents of ``files`` (default: every source file), and ``extra``."""
    root = Path(root)
    digest = hashlib.sha256(extra.encode())
    for path in files if files is not None else source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def image_files(root: Path) -> list[Path]:
    """What goes into the image: everything but the host program (``host/``) and documentation."""
    root = Path(root)
    return [f for f in source_files(root) if f.relative_to(root).parts[0] != "host" and f.suffix != ".md"]


def build_id(root: Path) -> str:
    """The id the board reports when built from ``root``."""
    return source_hash(root, image_files(root))[:ID_LENGTH]


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0]).resolve()
    if "--files" in argv[1:]:
        print(";".join(p.as_posix() for p in image_files(root)))
    else:
        print(build_id(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
