"""Capture what C and C++ code prints, at file-descriptor level.

TFLite Micro reports errors and the RecordingMicroAllocator summary with ``printf``-style logging on the C
``stderr`` (this build; other builds use ``stdout``), which ``sys.stdout``/``sys.stderr`` redirection never
sees. :func:`capture` points file descriptors 1 and 2 at one temporary file with ``os.dup2``, flushing C
stdio before and after so that buffered text lands on the right side of the switch.

Example:
    >>> with capture() as captured:
    ...     interpreter.print_allocations()  # doctest: +SKIP
    >>> "Arena allocation total" in captured.text  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading

_lock = threading.RLock()  # re-entrant: a captured call may capture again
_spill: str | None = None
_depth = 0


def spill_to(path: str | None) -> None:
    """Capture into the named file ``path`` (appending) instead of an anonymous one, so that what native code
    printed before it killed the process survives it: a child process sets this, its parent reads the file.
    """
    global _spill
    _spill = path


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle (unusual platforms): nothing we can flush
        pass


class Captured:
    """Holds the captured text once the ``with`` block has ended."""

    text: str = ""


@contextlib.contextmanager
def capture(fds: tuple[int, ...] = (1, 2)):
    """Redirect file descriptors ``fds`` (default: stdout and stderr) into ``Captured.text`` for the block."""
    captured = Captured()
    with _lock, _sink() as sink:
        start = sink.seek(0, os.SEEK_END)
        _flush_all()
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            try:
                yield captured
            finally:
                _flush_all()
                for fd, copy in zip(fds, saved, strict=True):
                    os.dup2(copy, fd)
        finally:
            for copy in saved:
                os.close(copy)
        sink.seek(start)
        captured.text = sink.read().decode("utf-8", errors="replace")


@contextlib.contextmanager
def _sink():
    global _depth
    # Only the outermost capture spills: an inner one keeps its own text out of the outer one's.
    handle = open(_spill, "a+b") if _spill and _depth == 0 else tempfile.TemporaryFile()
    _depth += 1
    try:
        with handle:
            yield handle
    finally:
        _depth -= 1
