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
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_tinyml._files import write_atomic
from pytest_tinyml.errors import CorruptBaseline, HistoryError
from pytest_tinyml.latency import LatencyStats

SCHEMA = 1
KINDS = ("board", "host")
DEFAULT_BASELINE = "last"
_LOCK_TIMEOUT_S = 60.0
_GIT_TIMEOUT_S = 2.0
# What makes two records comparable: the same hardware. A board of another chip, revision or clock, or another
# host machine (the sim is timed by the host's clock, so it needs both), is never compared; the reason is said.
BOARD_MACHINE_KEYS = ("chip", "revision", "cpu_mhz")
HOST_MACHINE_KEYS = ("system", "machine", "cpu_model", "cpu_count", "python")
# What may change between comparable records and is named in a regression message: the software measured.
BUILD_KEYS = ("firmware_hash", "idf_version", "tflm_version", "esp_nn_version", "build_flags")
# Libraries whose version is part of the host fingerprint (read from package metadata, nothing imported).
LIBRARIES = ("tensorflow", "keras", "ai-edge-litert", "tflite-runtime", "tflite-micro", "numpy", "pytest-tinyml")
# Verdicts whose run joins the moving baseline 'last' (a regression or an unreliable run does not).
_ACCEPTED = ("unchanged", "faster", "no-baseline", "accepted")


class HistoryWarning(UserWarning):
    """Something in the latency history needs attention but did not stop the run (no baseline, corrupt file)."""


def utc_now() -> str:
    """The time stamp of records: UTC, ISO 8601 with microseconds (sorts as text)."""
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
        "libraries": _library_versions(),
    }


def _library_versions() -> dict:
    from importlib import metadata

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def host_load() -> dict:
    """How busy this host is right now: 1-minute load average, cores, pytest-xdist workers of this run.

    Example:
        >>> sorted(host_load())
        ['cpu_count', 'load_1m', 'xdist_workers']
    """
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # Windows has no load average
        load = None
    try:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        workers = 1
    return {"load_1m": load, "cpu_count": os.cpu_count(), "xdist_workers": workers}


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
    run: str | None = None  # one id per pytest session (shared by xdist workers): the x of the trend plot
    load: dict | None = None  # host_load() when measured on the host's clock (host, sim)

    @classmethod
    def new(cls, *, test_id: str, kind: str, samples_us, context: dict | None, git_dir: str | None = None) -> Record:
        """Build a record from an observation; board info comes from ``context["board"]`` (or ``"info"``)."""
        if kind not in KINDS:
            raise HistoryError(f"latency kind must be 'board' or 'host', got {kind!r} (test {test_id})")
        context = dict(context or {})
        if "estimate" in (str((context.get("board") or {}).get("where")), str(context.get("where"))):
            raise HistoryError(f"an estimate is not a latency measurement (test {test_id}): estimates go to "
                               "pytest_tinyml.history.estimates, never to the records the gate compares")
        board = host = None
        if kind == "board":
            board = dict(context.get("board") or context.get("info") or {})
            for key in BOARD_MACHINE_KEYS + BUILD_KEYS + ("where",):
                if key in context and key not in board:
                    board[key] = context[key]
            sim = str(board.get("where", "")) in ("host-sim", "sim") or board.get("chip") == "sim"
            where = "sim" if sim else str(board.get("chip") or "board")
        else:
            where = "host"
        if where in ("host", "sim"):  # timed by this host's clock: its fingerprint and load explain the figure
            host = host_info()
        return cls(
            test_id=test_id, kind=kind, where=where, samples_us=_clean_samples(samples_us), time=utc_now(),
            model_sha256=context.get("model_sha256"), recipe=context.get("recipe"), board=board, host=host,
            git=git_info(git_dir or os.getcwd()), context=_plain(context),
            load=host_load() if where in ("host", "sim") else None,
        )

    @property
    def series(self) -> str:
        """What a baseline is kept for: the test and where it ran (``"t.py::test_a @ sim"``)."""
        return f"{self.test_id} @ {self.where}"

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples_us)

    def machine(self) -> dict:
        """What must be equal for two records to be compared: the board's hardware, the host machine, or both
        for the sim (its figures come from the host's clock)."""
        found = {}
        if self.kind == "board":
            found.update({k: self.board.get(k) for k in BOARD_MACHINE_KEYS if (self.board or {}).get(k) is not None})
        if self.host is not None:
            found.update({f"host {k}": self.host.get(k) for k in HOST_MACHINE_KEYS})
        return found

    def software(self) -> dict:
        """What was measured, which may change between comparable runs: model, recipe, firmware build, libraries,
        commit. A regression message names every difference."""
        found = {"model sha256": self.model_sha256, "recipe": self.recipe}
        found.update({k.replace("_", " "): (self.board or {}).get(k) for k in BUILD_KEYS})
        found.update({f"{k} version": v for k, v in ((self.host or {}).get("libraries") or {}).items()})
        found["commit"] = (self.git or {}).get("commit")
        return {k: v for k, v in found.items() if v is not None}

    @property
    def accepted(self) -> bool:
        """Whether this run joins the moving baseline: it passed the gate (or was accepted explicitly)."""
        verdict = self.verdict or {}
        if "accepted" in verdict:
            return bool(verdict["accepted"])
        return verdict.get("verdict") in _ACCEPTED  # records written before 'accepted' was stored

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
        if record.where == "estimate" or (record.board or {}).get("where") == "estimate":
            raise ValueError("an estimate, not a latency measurement (estimates live in estimates/)")
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
        >>> a = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "cpu_mhz": 240}})
        >>> b = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "cpu_mhz": 160}})
        >>> incompatibility(a, b)
        'board differs: cpu_mhz 240 (baseline) vs 160 (now)'
    """
    if "estimate" in (baseline.where, current.where):  # never one against a measurement, nor two estimates
        return "an estimate is never compared by the latency gate"
    if baseline.kind != current.kind or baseline.where != current.where:
        return f"ran elsewhere: baseline on {baseline.where} ({baseline.kind}), now on {current.where} ({current.kind})"
    old, new = baseline.machine(), current.machine()
    diffs = [f"{k} {old.get(k)} (baseline) vs {new.get(k)} (now)" for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k)]
    if not diffs:
        return None
    board_side = any(not k.startswith("host ") and old.get(k) != new.get(k) for k in old.keys() | new.keys())
    what = "board differs" if board_side else "host machine differs"
    return f"{what}: " + "; ".join(diffs)


def changes(baseline: Record, current: Record) -> list[str]:
    """What was measured differently between a baseline run and now (model, recipe, firmware, libraries, commit).

    Example:
        >>> a = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "firmware_hash": "aa"}})
        >>> b = Record.new(test_id="t", kind="board", samples_us=[1], context={"board": {"chip": "esp32", "firmware_hash": "bb"}})
        >>> changes(a, b)
        ['firmware hash aa -> bb']
    """
    old, new = baseline.software(), current.software()

    def short(value) -> str:
        text = str(value)
        return text[:12] if len(text) >= 40 and all(c in "0123456789abcdef" for c in text) else text

    found = [f"{k} {short(old.get(k, '-'))} -> {short(new.get(k, '-'))}" for k in old.keys() | new.keys()
             if old.get(k) != new.get(k) and k != "commit"]
    if old.get("commit") != new.get("commit") and new.get("commit"):
        found.append(f"commit {short(old.get('commit', '-'))} -> {short(new.get('commit'))}")
    if (current.git or {}).get("dirty") and (baseline.git or {}).get("dirty") is False:
        found.append("uncommitted changes now (the baseline's checkout was clean)")
    return sorted(found, key=lambda t: (t.startswith(("commit", "uncommitted")), t))


@dataclass
class Baseline:
    """What a run is compared with: the baseline's accepted runs, its known excursions, or why there are none."""

    name: str
    runs: list[Record]
    excursions: list[Record]
    why: str | None


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
        return write_atomic(path, json.dumps(data, indent=1, sort_keys=True), prefix=".tmp-")

    def add(self, record: Record) -> Path:
        """Store one record; returns its path."""
        stamp = re.sub(r"[^0-9]", "", record.time)[:20]
        path = self.root / "records" / self._series_dir(record) / f"{stamp}-{record.id}.json"
        try:
            with self._lock():
                return self._write(path, record.to_dict())
        except OSError as exc:
            raise HistoryError(f"cannot write latency record {path}: {exc}") from None

    def _baseline_path(self, record: Record, name: str) -> Path:
        return self.root / "baselines" / name / self._series_dir(record) / f"{_digest(record.machine())}.json"

    def save_baseline(self, name: str, record: Record, runs: list[Record], excursions: list[Record] = ()) -> Path:
        """Save ``runs`` (oldest first, ``record`` last) as baseline ``name`` of ``record``'s series and machine,
        replacing what was there (a corrupt file is moved to corrupt/ first, never lost)."""
        if name == DEFAULT_BASELINE:
            raise HistoryError(f"baseline {DEFAULT_BASELINE!r} is the moving window of accepted runs; it is not saved "
                               "to a file")
        path = self._baseline_path(record, name)
        data = {"schema": SCHEMA, "baseline": name, "saved_at": utc_now(), "series": record.series,
                "runs": [r.to_dict() for r in runs], "excursions": [r.to_dict() for r in excursions]}
        try:
            with self._lock():
                if path.exists():
                    try:
                        json.loads(path.read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        self._move_aside(path)
                return self._write(path, data)
        except OSError as exc:
            raise HistoryError(f"cannot write latency baseline {path}: {exc}") from None

    def baseline_names(self) -> list[str]:
        """Names of the saved baselines, plus 'last' (always there: the moving window).

        Example:
            >>> import tempfile
            >>> HistoryStore(tempfile.mkdtemp()).baseline_names()
            ['last']
        """
        base = self.root / "baselines"
        saved = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        return [DEFAULT_BASELINE] + [n for n in saved if n != DEFAULT_BASELINE]

    def window(self, record: Record, size: int) -> Baseline:
        """The moving baseline 'last' of ``record``: its series' last ``size`` accepted runs on the same machine,
        since the last accepted change, with the excursions among them (runs that failed the gate but were
        followed by accepted runs: noise that came and went, which the spread must know); ``why`` says why
        there are no runs (e.g. they ran on another machine).

        Example:
            >>> import tempfile
            >>> store = HistoryStore(tempfile.mkdtemp())
            >>> store.window(Record.new(test_id="t", kind="host", samples_us=[1], context={}), 10).why
            'no earlier run of t @ host'
        """
        pattern = self.root / "records" / self._series_dir(record)
        paths = sorted(p for p in pattern.glob("*.json") if not p.name.startswith(".tmp-")) if pattern.is_dir() else []
        earlier = sorted((r for r in map(self._read, paths) if r is not None and r.series == record.series
                          and r.id != record.id), key=lambda r: r.time)
        same = [r for r in earlier if incompatibility(r, record) is None]
        if not same:
            if earlier:
                return Baseline(DEFAULT_BASELINE, [], [], f"not compared with the {len(earlier)} earlier run(s): "
                                f"{incompatibility(earlier[-1], record)}")
            return Baseline(DEFAULT_BASELINE, [], [], f"no earlier run of {record.series}")
        runs: list[Record] = []
        excursions: list[Record] = []
        for r in reversed(same):
            if not r.accepted:
                if runs and (r.verdict or {}).get("verdict") in ("regression", "faster"):
                    excursions.append(r)  # an accepted run came after it: it was noise, not a change
                continue
            runs.append(r)
            if len(runs) == size or (r.verdict or {}).get("reset"):
                break
        if not runs:
            return Baseline(DEFAULT_BASELINE, [], [], f"none of the {len(same)} earlier run(s) of {record.series} "
                            "passed the gate")
        return Baseline(DEFAULT_BASELINE, runs[::-1], excursions[::-1], None)

    def named(self, record: Record, name: str) -> Baseline:
        """Baseline ``name`` of ``record``'s series and machine; ``([], why)`` when it has none. Raises
        :class:`CorruptBaseline` (the file stays where it is) when it cannot be read."""
        path = self._baseline_path(record, name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "runs" not in data:  # written before baselines were windows
                data = {"runs": [data]}
            runs = [Record.from_dict(r) for r in data["runs"]]
            excursions = [Record.from_dict(r) for r in data.get("excursions", [])]
            if not runs:
                raise ValueError("no runs")
        except FileNotFoundError:
            others = [p.parent.name for p in (self.root / "baselines" / name).glob(f"{self._series_dir(record)}/*.json")]
            why = (f"baseline {name!r} of {record.series} was saved on another machine" if others
                   else f"no baseline {name!r} for {record.series}")
            return Baseline(name, [], [], f"{why}; save one with --tinyml-save-baseline={name}")
        except (OSError, ValueError, TypeError, KeyError, HistoryError) as exc:
            raise CorruptBaseline(
                f"baseline {name!r} of {record.series} is corrupt: {path} ({type(exc).__name__}: {exc}); it was left "
                f"in place: restore it, or replace it with this run's window: --tinyml-save-baseline={name}"
            ) from None
        return Baseline(name, runs, excursions, None)

    def _read(self, path: Path) -> Record | None:
        try:
            return Record.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None  # moved aside by another process meanwhile
        except (OSError, ValueError, TypeError, HistoryError) as exc:
            self._quarantine(path, exc)
            return None

    def _move_aside(self, path: Path) -> Path:
        """Move ``path`` to corrupt/ (caller holds the lock); returns where it went."""
        relative = path.relative_to(self.root)
        target = self.root / "corrupt" / "__".join(relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}-{uuid.uuid4().hex[:6]}{target.suffix}")
        os.replace(path, target)
        return target

    def _quarantine(self, path: Path, error: Exception) -> None:
        """Move an unreadable record to corrupt/ (keeping it for inspection) and warn with its name."""
        with self._lock():
            if not path.exists():
                return
            target = self._move_aside(path)
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
