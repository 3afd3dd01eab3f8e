"""Facts that are pure functions of bytes, computed once per content hash and kept on disk.

Vetting a model in a child, bisecting its TFLite Micro arena, probing which operators the micro op resolver
has: each answer depends only on the model's bytes (its sha256) and the runtime's version, and each costs a
child process. :func:`remember` computes such a fact once and keeps it as one JSON file under
``<root>/facts/<kind>/``, so the next run (or the next pytest-xdist worker) reads it instead.

The root is the cache directory: inside pytest the ``--tinyml-cache-dir`` directory (set by the plugin at
start-up), outside pytest the root of the first :class:`~pytest_tinyml.cache.TinyMLCache` created, or the one
given to :func:`set_root`; with no root, facts are remembered for the process only. Processes started from
this one inherit the root (:data:`ENV`). Only JSON is stored
(never pickle): a tampered file can give a wrong verdict, not run code. A file that does not parse, names
another key or does not match its checksum is recomputed and rewritten. Writes are atomic
(``os.replace``); a cache directory that cannot be written only costs the saving.

Example:
    >>> set_root(None)
    >>> remember("demo", {"sha256": "0" * 64}, lambda: {"ok": True})
    {'ok': True}
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1
FACTS = "facts"
# The root is handed to processes started from this one (the sim's engine process, for one) through this
# variable, so they keep and find the same facts.
ENV = "PYTEST_TINYML_FACTS_ROOT"

_lock = threading.Lock()
_root: Path | None = Path(os.environ[ENV]) if os.environ.get(ENV) else None
_process: dict[str, Any] = {}  # key -> value, for this process (also when there is no root)
stats = {"computed": 0, "loaded": 0, "recomputed_corrupt": 0}


def root() -> Path | None:
    """The cache directory facts are kept in, or None (process memory only).

    Example:
        >>> set_root("/tmp/tinyml-facts-demo"); str(root())
        '/tmp/tinyml-facts-demo'
    """
    return _root


def set_root(path: str | os.PathLike | None) -> Path | None:
    """Keep facts under ``path`` from now on (None: process memory only); returns the previous root.

    Example:
        >>> previous = set_root(None)
    """
    global _root
    with _lock:
        previous, _root = _root, (Path(path) if path is not None else None)
        _process.clear()  # another root may hold other answers (e.g. a test's fresh directory)
        if _root is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = str(_root)
    return previous


def adopt(path: str | os.PathLike) -> None:
    """Use ``path`` as the root unless one is set already (what a new ``TinyMLCache`` does).

    Example:
        >>> set_root(None); adopt("/tmp/a"); adopt("/tmp/b"); str(root())
        '/tmp/a'
    """
    if _root is None:
        set_root(path)


@functools.cache
def version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (None if it is not installed), looked up once.

    Example:
        >>> version("pytest") is not None
        True
    """
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions(*distributions: str) -> dict[str, str | None]:
    """``{"pytest-tinyml": ..., distribution: ...}``: what a fact's key must include besides the bytes."""
    return {name: version(name) for name in ("pytest-tinyml", *distributions)}


def key(kind: str, parts: dict) -> str:
    """sha256 of ``kind`` and ``parts`` (canonical JSON).

    Example:
        >>> len(key("vet", {"sha256": "ab"}))
        64
    """
    text = json.dumps({"format": FORMAT, "kind": kind, "parts": parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def path_of(kind: str, parts: dict) -> Path | None:
    """The file that holds (or would hold) the fact, or None without a root.

    Example:
        >>> set_root("/c"); str(path_of("vet", {"sha256": "ab"})).startswith("/c/facts/vet/")
        True
    """
    if _root is None:
        return None
    digest = key(kind, parts)
    return _root / FACTS / kind / digest[:2] / f"{digest}.json"


def _checksum(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def lookup(kind: str, parts: dict) -> tuple[bool, Any]:
    """``(True, value)`` if the fact is known (this process, or a sound file), else ``(False, None)``."""
    digest = key(kind, parts)
    with _lock:
        if digest in _process:
            return True, _process[digest]
    path = path_of(kind, parts)
    if path is None:
        return False, None
    try:
        entry = json.loads(path.read_text())
        if entry["key"] != digest or entry["checksum"] != _checksum(entry["value"]):
            raise ValueError("key or checksum mismatch")
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError, KeyError, TypeError):
        stats["recomputed_corrupt"] += 1
        return False, None
    stats["loaded"] += 1
    with _lock:
        _process[digest] = entry["value"]
    return True, entry["value"]


def store(kind: str, parts: dict, value: Any) -> Path | None:
    """Keep ``value`` (JSON-able) for ``(kind, parts)``: in this process, and atomically in a file under the
    root. Returns the file, or None (no root, or it could not be written).
    """
    digest = key(kind, parts)
    with _lock:
        _process[digest] = value
    path = path_of(kind, parts)
    if path is None:
        return None
    entry = {"format": FORMAT, "kind": kind, "key": digest, "parts": parts, "value": value,
             "checksum": _checksum(value)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(entry, out, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:  # a read-only cache directory costs the saving, never the answer
        return None
    return path


def discard(kind: str, parts: dict) -> None:
    """Forget the fact, in this process and on disk: the next :func:`remember` computes it again."""
    digest = key(kind, parts)
    with _lock:
        _process.pop(digest, None)
    path = path_of(kind, parts)
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def remember(kind: str, parts: dict, compute: Callable[[], Any]) -> Any:
    """The kept value of ``(kind, parts)``, or ``compute()`` (JSON-able) kept for next time.

    Example:
        >>> remember("demo", {"n": 2}, lambda: 4), remember("demo", {"n": 2}, lambda: 5)
        (4, 4)
    """
    found, value = lookup(kind, parts)
    if found:
        return value
    value = compute()
    stats["computed"] += 1
    store(kind, parts, value)
    return value
