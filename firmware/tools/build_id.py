#!/usr/bin/env python3
"""The firmware's build id: a hash of the sources that go into the image. Standard library only.

The board reports it as ``info-build``; pytest-tinyml compares it with the id of the sources it has to decide
whether to flash. Both sides run this file, so a board built by hand with plain ``idf.py build flash`` reports
the same id pytest-tinyml expects: ``main/CMakeLists.txt`` runs it at configure time (and re-configures when a
source changes), and ``pytest_tinyml.board.flash`` imports it.

    python3 firmware/tools/build_id.py firmware           # prints the id
    python3 firmware/tools/build_id.py firmware --files   # the files it covers, ';'-separated (for CMake)
    python3 firmware/tools/build_id.py firmware --components esp-tflite-micro=1.4.0,esp-nn=1.2.3

The id also covers the resolved versions of the kernels' components (esp-tflite-micro, esp-nn): the manifest
asks for ``^1.3.1``, which resolves to whatever is newest, so the same sources can mean other kernels. CMake
passes the versions of the components it actually builds (``--components``); without that flag they are read
from the component manager's ``dependencies.lock`` next to the sources, else from ``managed_components/``, and
an unbuilt checkout (neither present) hashes no versions.
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
# The components whose resolved versions change the kernels, by their short name.
KERNEL_COMPONENTS = ("esp-nn", "esp-tflite-micro")


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


def _lock_versions(text: str) -> dict[str, str]:
    """``espressif/<name>: ... version: X`` entries of a dependencies.lock (YAML, read without a YAML parser)."""
    versions: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            name = line.strip()[:-1].strip("'\"")
            current = name.split("/", 1)[1] if name.startswith("espressif/") else None
        elif current and line.startswith("    version:") and not line.startswith("     "):
            versions[current] = line.split(":", 1)[1].strip().strip("'\"")
        elif line and not line.startswith(" "):
            current = None
    return versions


def component_versions(root: Path) -> dict[str, str]:
    """Resolved versions of esp-tflite-micro and esp-nn for the sources in ``root``, or {} when not built.

    Example:
        >>> component_versions(Path("/nonexistent"))
        {}
    """
    root = Path(root)
    lock = root / "dependencies.lock"
    found: dict[str, str] = {}
    if lock.is_file():
        found = _lock_versions(lock.read_text(errors="replace"))
    else:
        for manifest in sorted((root / "managed_components").glob("*/idf_component.yml")):
            for line in manifest.read_text(errors="replace").splitlines():
                if line.startswith("version:"):
                    found[manifest.parent.name.split("__", 1)[-1]] = line.split(":", 1)[1].strip().strip("'\"")
    return {name: found[name] for name in KERNEL_COMPONENTS if name in found}


def parse_components(text: str) -> dict[str, str]:
    """``esp-tflite-micro=1.4.0,esp-nn=1.2.3`` -> a dict of the kernel components; ``unknown`` versions dropped."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    found = {name.strip().split("__", 1)[-1].split("/", 1)[-1]: version.strip() for name, version in pairs}
    return {n: found[n] for n in KERNEL_COMPONENTS if found.get(n) not in (None, "", "unknown")}


def build_id(root: Path, components: dict[str, str] | None = None) -> str:
    """The id the board reports when built from ``root`` with these kernel component versions.

    ``components`` defaults to :func:`component_versions` (the lock file of the last build in ``root``).
    """
    versions = component_versions(root) if components is None else components
    extra = "".join(f"component {name}={versions[name]}\n" for name in sorted(versions))
    return source_hash(root, image_files(root), extra)[:ID_LENGTH]


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0]).resolve()
    if "--files" in argv[1:]:
        print(";".join(p.as_posix() for p in image_files(root)))
    elif "--components" in argv[1:]:
        at = argv.index("--components")
        print(build_id(root, parse_components(argv[at + 1] if at + 1 < len(argv) else "")))
    else:
        print(build_id(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
