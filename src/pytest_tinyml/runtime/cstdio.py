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
    with _lock, tempfile.TemporaryFile() as sink:
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
        sink.seek(0)
        captured.text = sink.read().decode("utf-8", errors="replace")
