"""Estimates in the history, kept apart from measurements: ``estimates/<chip>/<time>-<id>.json``.

The latency gate reads ``records/`` only (:class:`~pytest_tinyml.history.store.HistoryStore`); an estimate is
never a latency record, so it can never be a baseline of a measurement, nor a measurement of an estimate
(``Record`` refuses ``where="estimate"``). Each ``assert_budget(target=...)`` writes one
:class:`EstimateRecord`: the estimate alone (no board), or the estimate beside what a board of that chip
measured and their ratio (measured / estimate, for latency and arena), keyed by chip, model sha256 and the
board's identity. ``pytest-tinyml estimate calibrate`` reads the ratios back
(:mod:`pytest_tinyml.estimation.calibration`). Imports nothing heavy.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pytest_tinyml._files import write_atomic
from pytest_tinyml.errors import HistoryError

DIRECTORY = "estimates"
SCHEMA = 1


def measured_over_estimate(measured: dict, estimate: dict) -> dict:
    """``{"latency": ..., "arena": ...}``: measured / estimate of ``latency_ms`` and ``arena_bytes``, None where
    either side is missing or zero. The report's ratios and the record's are this one computation.

    Example:
        >>> measured_over_estimate({"latency_ms": 6.0, "arena_bytes": None}, {"latency_ms": 5.0, "arena_bytes": 900})
        {'latency': 1.2, 'arena': None}
    """
    return {name: measured[key] / estimate[key] if measured.get(key) and estimate.get(key) else None
            for name, key in (("latency", "latency_ms"), ("arena", "arena_bytes"))}


@dataclass
class EstimateRecord:
    """One estimate of one model on one chip, with the board's measurement beside it when there was one.

    ``estimate``: ``latency_ms``, ``arena_bytes``, ``cpu_mhz`` (uncalibrated: the ratio calibrates the model
    itself). ``measured``: ``where``, ``board`` (``BoardIdentity.as_dict()``), ``latency_ms`` (median),
    ``arena_bytes``, ``runs``. ``ratios``: ``latency`` and ``arena``, measured / estimate.

    Example:
        >>> r = EstimateRecord.new(test_id="t.py::test_b", target="esp32s3", model_sha256="ab" * 32,
        ...                        estimate={"latency_ms": 5.0, "arena_bytes": 1000})
        >>> r.where, r.ratios
        ('estimate', None)
    """

    test_id: str
    target: str
    model_sha256: str
    estimate: dict
    time: str
    model: str | None = None
    recipe: str | None = None
    measured: dict | None = None
    ratios: dict | None = None
    git: dict = field(default_factory=lambda: {"commit": None, "dirty": None})
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    where: str = "estimate"

    @classmethod
    def new(cls, *, test_id: str, target: str, model_sha256: str, estimate: dict, measured: dict | None = None,
            model: str | None = None, recipe: str | None = None, git_dir: str | None = None) -> EstimateRecord:
        """An estimate record; with ``measured``, the ratios measured / estimate are computed here."""
        from pytest_tinyml.history.store import git_info, utc_now

        ratios = None
        if measured is not None:
            if measured.get("where") != "device" or (measured.get("board") or {}).get("chip") != target:
                raise HistoryError(f"only a device of chip {target} measures a {target} estimate; got "
                                   f"{measured.get('where')} chip {(measured.get('board') or {}).get('chip')}")
            ratios = measured_over_estimate(measured, estimate)
        return cls(test_id=test_id, target=target, model_sha256=model_sha256, estimate=dict(estimate),
                   time=utc_now(), model=model, recipe=recipe, measured=measured, ratios=ratios,
                   git=git_info(git_dir or os.getcwd()))

    @property
    def board_key(self) -> str | None:
        """The board that measured: chip, clock and firmware build (None without a measurement)."""
        if self.measured is None:
            return None
        board = self.measured.get("board") or {}
        return "/".join(str(board.get(k)) for k in ("chip", "revision", "cpu_mhz", "firmware_hash"))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **{k: getattr(self, k) for k in self.__dataclass_fields__}}

    @classmethod
    def from_dict(cls, data: dict) -> EstimateRecord:
        """Parse a stored estimate; ``ValueError`` naming what is wrong (a latency record is not one)."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("where") != "estimate":
            raise ValueError(f"not a schema-{SCHEMA} estimate record (where=estimate)")
        missing = [k for k in ("test_id", "target", "model_sha256", "estimate", "time") if k not in data]
        if missing:
            raise ValueError(f"missing fields {missing}")
        # What calibration reads must be what it means: a ratio is a positive finite number, or absent.
        wrong = [k for k in ("test_id", "target", "model_sha256", "time") if not isinstance(data[k], str)]
        wrong += [k for k in ("estimate", "measured", "ratios") if data.get(k) is not None and not isinstance(data[k], dict)]
        measured = data.get("measured") if isinstance(data.get("measured"), dict) else {}
        wrong += [f"measured.{k}" for k, kind in (("board", dict), ("run_id", str))
                  if measured.get(k) is not None and not isinstance(measured[k], kind)]
        if wrong:
            raise ValueError(f"fields {wrong} have the wrong type")
        for name, ratio in (data.get("ratios") or {}).items():
            if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                                      or not math.isfinite(ratio) or ratio <= 0):
                raise ValueError(f"ratio {name}={ratio!r} is not a positive number")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class EstimateLog:
    """The ``estimates/`` part of a history directory.

    Example:
        >>> import tempfile
        >>> log = EstimateLog(tempfile.mkdtemp())
        >>> _ = log.add(EstimateRecord.new(test_id="t", target="esp32", model_sha256="ab" * 32,
        ...                                estimate={"latency_ms": 1.0, "arena_bytes": 10}))
        >>> [r.target for r in log.records()]
        ['esp32']
    """

    def __init__(self, root) -> None:
        self.root = Path(root)

    def add(self, record: EstimateRecord) -> Path:
        import filelock

        stamp = re.sub(r"[^0-9]", "", record.time)[:20]
        chip = re.sub(r"[^A-Za-z0-9_.-]+", "_", record.target) or "x"
        path = self.root / DIRECTORY / chip / f"{stamp}-{record.id}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with filelock.FileLock(str(self.root / ".lock"), timeout=60):
                return write_atomic(path, json.dumps(record.to_dict(), indent=1, sort_keys=True), prefix=".tmp-")
        except OSError as exc:
            raise HistoryError(f"cannot write estimate record {path}: {exc}; point --tinyml-history at a writable "
                               "directory") from None

    def records(self, target: str | None = None) -> list[EstimateRecord]:
        """Readable estimate records (of one chip), oldest first; an unreadable file is skipped with a warning."""
        import warnings

        from pytest_tinyml.history.store import HistoryWarning

        base = self.root / DIRECTORY
        paths = sorted(p for p in base.glob("*/*.json") if not p.name.startswith(".tmp-")) if base.is_dir() else []
        found = []
        for path in paths:
            try:
                found.append(EstimateRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError) as exc:
                warnings.warn(HistoryWarning(f"unreadable estimate record {path} ({type(exc).__name__}: {exc}); "
                                             "skipped"), stacklevel=2)
        return sorted((r for r in found if target is None or r.target == target), key=lambda r: r.time)


def observe(*, target: str, model_sha256: str, estimate: dict, measured: dict | None = None,
            model: str | None = None, recipe: str | None = None) -> EstimateRecord | None:
    """Store an estimate (and a board's measurement of it) for the running test; nothing outside pytest.

    Example:
        >>> observe(target="esp32s3", model_sha256="ab" * 32, estimate={"latency_ms": 5.0, "arena_bytes": 900})  # doctest: +SKIP
    """
    from pytest_tinyml import options, report

    item = report.current_item()
    if item is None:
        return None
    record = EstimateRecord.new(test_id=item.nodeid, target=target, model_sha256=model_sha256, estimate=estimate,
                                measured=measured, model=model, recipe=recipe, git_dir=str(item.config.rootpath))
    EstimateLog(options.of(item.config).history_dir).add(record)
    return record
