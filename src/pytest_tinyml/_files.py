"""Atomic file writes whose result has the mode any other file the user writes would have.

``tempfile.mkstemp`` creates 0600 files (right for a temp file, wrong for a report a CI job uploads or a
colleague reads): after the rename, the file gets ``0666 & ~umask``, like ``open(path, "w")``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells (Linux ``/proc``).

    Example:
        >>> 0 <= current_umask() <= 0o777
        True
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read is a set-and-restore
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str, *, prefix: str | None = None) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename, so a reader never
    sees half a file; the file's mode follows the umask (``0666 & ~umask``). Returns the path.

    Example:
        >>> import tempfile, os
        >>> p = write_atomic(os.path.join(tempfile.mkdtemp(), "r.json"), "{}")
        >>> p.read_text()
        '{}'
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
