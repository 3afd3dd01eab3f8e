"""The latency history on disk: one JSON file per measurement, baselines beside them.

Layout under the history directory (``--tinyml-history``, default ``.tinyml_history``)::

    records/<series>/<time>-<id>.json        every observation, with its context and raw samples
    baselines/<name>/<series>/<build>.json    a copy of the record saved as baseline NAME for one build
    corrupt/                                  records that could not be read, moved aside (never deleted)
    .lock                                     filelock: one writer at a time (pytest-xdist workers, CI jobs)

Every write goes to a temporary file in the same directory and is renamed into place (``os.replace``), so a
reader never sees half a record. A record that cannot be read is moved to ``corrupt/`` with a
:class:`HistoryWarning` naming the file; reading carries on without it. Imports nothing heavy.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.latency import LatencyStats

SCHEMA = 1
KINDS = ("board", "host")
DEFAULT_BASELINE = "last"
_LOCK_TIMEOUT_S = 60.0
_GIT_TIMEOUT_S = 2.0
# Board-info keys that identify a firmware build: two results are compared only when these agree.
BUILD_KEYS = ("chip", "cpu_mhz", "firmware_hash", "idf_version", "tflm_version", "esp_nn_version", "build_flags")
# Host-info keys that identify a machine.
HOST_KEYS = ("system", "machine", "cpu_model", "python")


class HistoryWarning(UserWarning):
    """Something in the latency history needs attention but did not stop the run (no baseline, corrupt file)."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:limit] or "x"


def _digest(value: Any, length: int = 12) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


@functools.lru_cache(maxsize=8)
def git_info(directory: str) -> dict:
    """Commit and dirty flag of the git checkout holding ``directory``; ``None`` values without git.

    Example:
        >>> sorted(git_info("/"))
        ['commit', 'dirty']
    """

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT_S, check=False)
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def host_info() -> dict:
    """This machine's fingerprint for host latencies (OS, architecture, CPU model, Python).

    Example:
        >>> sorted(host_info())[:3]
        ['cpu_count', 'cpu_model', 'implementation']
    """
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": ".".join(platform.python_version_tuple()[:2]),
        "python_full": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def _clean_samples(samples_us) -> list[float]:
    try:
        values = [float(v) for v in samples_us]
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"latency samples must be numbers in microseconds, got {samples_us!r:.80}: {exc}") from None
    if not values:
        raise HistoryError("no latency samples: give the per-run times in microseconds (e.g. [812.0, 815.5, ...])")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise HistoryError(f"latency samples must be finite and >= 0 microseconds; got {bad[:3]}")
    return values


@dataclass
class Record:
    """One latency measurement of one test on one board (or the host), with everything that explains it.

    Example:
        >>> r = Record.new(test_id="t.py::test_a", kind="host", samples_us=[10, 11, 12], context={})
        >>> r.where, r.stats.median
        ('host', 11.0)
    """

    test_id: str
    kind: str
    where: str
    samples_us: list[float]
    time: str
    model_sha256: str | None = None
    recipe: str | None = None
    board: dict | None = None
    host: dict | None = None
    git: dict = field(default_factory=lambda: {"commit": None, "dirty": None})
    context: dict = field(default_factory=dict)
    verdict: dict | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    baseline_name: str | None = None
    saved_at: str | None = None

    @classmethod
    def new(cls, *, test_id: str, kind: str, samples_us, context: dict | None, git_dir: str | None = None) -> Record:
        """Build a record from an observation; board info comes from ``context["board"]`` (or ``"info"``)."""
        if kind not in KINDS:
            raise HistoryError(f"latency kind must be 'board' or 'host', got {kind!r} (test {test_id})")
        context = dict(context or {})
        board = host = None
        if kind == "board":
            board = dict(context.get("board") or context.get("info") or {})
            for key in BUILD_KEYS + ("revision", "where"):
                if key in context and key not in board:
                    board[key] = context[key]
            sim = str(board.get("where", "")) in ("host-sim", "sim") or board.get("chip") == "sim"
            where = "sim" if sim else str(board.get("chip") or "board")
        else:
            host = host_info()
            where = "host"
        return cls(
            test_id=test_id, kind=kind, where=where, samples_us=_clean_samples(samples_us), time=_now(),
            model_sha256=context.get("model_sha256"), recipe=context.get("recipe"), board=board, host=host,
            git=git_info(git_dir or os.getcwd()), context=_plain(context),
        )

    @property
    def series(self) -> str:
        """What a baseline is kept for: the test and where it ran (``"t.py::test_a @ sim"``)."""
        return f"{self.test_id} @ {self.where}"

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples_us)

    def build(self) -> dict:
        """What must be equal for two records to be compared: the firmware build, or the host machine."""
        if self.kind == "board":
            return {k: self.board.get(k) for k in BUILD_KEYS if (self.board or {}).get(k) is not None}
        return {k: (self.host or {}).get(k) for k in HOST_KEYS}

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **{k: getattr(self, k) for k in self.__dataclass_fields__}}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """Parse a stored record; raise ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a schema-{SCHEMA} history record")
        missing = [k for k in ("test_id", "kind", "where", "samples_us", "time") if k not in data]
        if missing:
            raise ValueError(f"missing fields {missing}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        record = cls(**fields)
        if record.kind not in KINDS:
            raise ValueError(f"bad kind {record.kind!r}")
        record.samples_us = _clean_samples(record.samples_us)
        return record


def _plain(value):
    from pytest_tinyml.report import plain  # one JSON-safe conversion for the whole package

    return plain(value)


def incompatibility(baseline: Record, current: Record) -> str | None:
    """Why two records must not be compared, or ``None`` when they may be.

    Example:
        >>> a = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "firmware_hash": "aa"}})
        >>> b = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "firmware_hash": "bb"}})
        >>> incompatibility(a, b)
        'firmware build differs: firmware_hash aa (baseline) vs bb (now)'
    """
    if baseline.kind != current.kind or baseline.where != current.where:
        return f"ran elsewhere: baseline on {baseline.where} ({baseline.kind}), now on {current.where} ({current.kind})"
    old, new = baseline.build(), current.build()
    diffs = [f"{k} {old.get(k)} (baseline) vs {new.get(k)} (now)" for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k)]
    if not diffs:
        return None
    what = "firmware build differs" if current.kind == "board" else "host machine differs"
    return f"{what}: " + "; ".join(diffs)


class HistoryStore:
    """Records and baselines under one directory; safe with several writers (file lock + atomic rename).

    Example:
        >>> import tempfile
        >>> store = HistoryStore(tempfile.mkdtemp())
        >>> path = store.add(Record.new(test_id="t.py::test_a", kind="host", samples_us=[5, 6], context={}))
        >>> [r.test_id for r in store.records()]
        ['t.py::test_a']
    """

    def __init__(self, root) -> None:
        self.root = Path(root)

    def _lock(self):
        import filelock

        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot create the latency history {self.root}: {exc}; "
                               "point --tinyml-history at a writable directory") from None
        return filelock.FileLock(str(self.root / ".lock"), timeout=_LOCK_TIMEOUT_S)

    @staticmethod
    def _series_dir(record: Record) -> str:
        return f"{_slug(record.test_id.split('::')[-1])}-{_digest(record.series)}"

    def _write(self, path: Path, data: dict) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def add(self, record: Record) -> Path:
        """Store one record; returns its path."""
        stamp = re.sub(r"[^0-9]", "", record.time)[:20]
        path = self.root / "records" / self._series_dir(record) / f"{stamp}-{record.id}.json"
        try:
            with self._lock():
                return self._write(path, record.to_dict())
        except OSError as exc:
            raise HistoryError(f"cannot write latency record {path}: {exc}") from None

    def save_baseline(self, record: Record, name: str = DEFAULT_BASELINE) -> Path:
        """Save ``record`` as baseline ``name`` for its series and build (replacing an older one)."""
        saved = Record.from_dict(record.to_dict())
        saved.baseline_name, saved.saved_at = name, _now()
        path = self.root / "baselines" / name / self._series_dir(record) / f"{_digest(record.build())}.json"
        try:
            with self._lock():
                return self._write(path, saved.to_dict())
        except OSError as exc:
            raise HistoryError(f"cannot write latency baseline {path}: {exc}") from None

    def _read(self, path: Path) -> Record | None:
        try:
            return Record.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None  # moved aside by another process meanwhile
        except (OSError, ValueError, TypeError, HistoryError) as exc:
            self._quarantine(path, exc)
            return None

    def _quarantine(self, path: Path, error: Exception) -> None:
        """Move an unreadable file to corrupt/ (keeping it for inspection) and warn with its name."""
        relative = path.relative_to(self.root)
        target = self.root / "corrupt" / "__".join(relative.parts)
        with self._lock():
            if not path.exists():
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target = target.with_name(f"{target.stem}-{uuid.uuid4().hex[:6]}{target.suffix}")
            os.replace(path, target)
        warnings.warn(
            HistoryWarning(f"corrupt latency history file {path} ({type(error).__name__}: {error}); "
                           f"moved it to {target} and carried on without it"),
            stacklevel=3,
        )

    def _glob(self, *parts: str) -> list[Path]:
        base = self.root.joinpath(*parts)
        return sorted(p for p in base.glob("**/*.json") if not p.name.startswith(".tmp-")) if base.is_dir() else []

    def records(self, test_id: str | None = None, where: str | None = None) -> list[Record]:
        """Every readable record (optionally of one test and place), oldest first."""
        found = [r for r in map(self._read, self._glob("records")) if r is not None]
        found = [r for r in found if (test_id is None or r.test_id == test_id) and (where is None or r.where == where)]
        return sorted(found, key=lambda r: r.time)

    def baselines(self, record: Record | None = None, name: str | None = None) -> list[Record]:
        """Saved baselines (of ``record``'s series, of one name), oldest save first.

        With a record only its series' directories are read, so a test's lookup does not grow with the suite.
        """
        if record is None:
            paths = self._glob(*(["baselines"] + ([name] if name else [])))
        else:
            pattern = f"{name or '*'}/{self._series_dir(record)}/*.json"
            base = self.root / "baselines"
            paths = sorted(p for p in base.glob(pattern) if not p.name.startswith(".tmp-")) if base.is_dir() else []
        found = [b for b in map(self._read, paths) if b is not None]
        if record is not None:
            found = [b for b in found if b.series == record.series]
        return sorted(found, key=lambda b: b.saved_at or b.time)

    def baseline_for(self, record: Record, name: str | None = None) -> tuple[Record | None, str | None]:
        """The baseline to compare ``record`` with, or ``(None, why there is none)``.

        Without a name: the last baseline saved for the same test, place and build. With a name: that
        baseline; if it exists only for another build, the reason names the difference.
        """
        candidates = self.baselines(record, name)
        label = f"baseline {name!r}" if name else "baseline"
        if not candidates:
            return None, f"no {label} yet for {record.series}"
        same_build = [b for b in candidates if incompatibility(b, record) is None]
        if same_build:
            return same_build[-1], None
        return None, f"not compared with {label} of {candidates[-1].time[:19]}: {incompatibility(candidates[-1], record)}"
