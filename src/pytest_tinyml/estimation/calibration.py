"""Per-chip calibration of the latency estimate from a user's own board runs.

On a board, ``assert_budget(target=...)`` records measured / estimate ratios in the history
(:mod:`pytest_tinyml.history.estimates`). ``pytest-tinyml estimate calibrate`` turns the ratios of one chip into
a :class:`Calibration` (the median ratio as a latency scale factor, its robust spread, the count of runs,
models and boards) and writes it to ``<cache dir>/calibration.json`` (or a file you name).
:func:`pytest_tinyml.estimation.estimate` applies the file's scale when it has the chip, and says so
(``Estimate.calibration``: ``calibrated from 6 board runs ...``). The ratios are always taken against the
uncalibrated estimate, so calibrating again never compounds.

The band of a calibrated estimate: 3 x the ratios' relative spread, at least 5%; while fewer than
:data:`MIN_MODELS` models were measured, at least the uncalibrated band (one model's ratio says little about
another's). The arena ratio is reported, not applied: the arena is a per-model figure, not a rate.

Example:
    >>> cal = Calibration("esp32s3", latency_scale=1.2, latency_spread=0.01, latency_ratio_range=(1.19, 1.21),
    ...                   arena_ratio=1.0, runs=4, models=3, boards=1)
    >>> cal.describe()
    'calibrated from 4 board runs (3 models, 1 board): latency x1.200 +/- 0.010'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from pytest_tinyml.errors import EstimateCalibrationError

FILE_NAME = "calibration.json"
SCHEMA = 1
MIN_RUNS = 3
MIN_MODELS = 3
MIN_BAND = 0.05
_SPREAD_BANDS = 3.0


@dataclass(frozen=True)
class Calibration:
    """One chip's latency scale factor (median of measured / estimate) with its spread and counts."""

    chip: str
    latency_scale: float
    latency_spread: float
    latency_ratio_range: tuple
    arena_ratio: float | None
    runs: int
    models: int
    boards: int
    history: str | None = None
    created: str | None = None

    def describe(self) -> str:
        return (f"calibrated from {self.runs} board runs ({self.models} model{'s' * (self.models != 1)}, "
                f"{self.boards} board{'s' * (self.boards != 1)}): latency x{self.latency_scale:.3f} "
                f"+/- {self.latency_spread:.3f}")

    def range_factors(self, uncalibrated: tuple) -> tuple:
        """(low, high) of the calibrated range as factors of the calibrated latency; ``uncalibrated`` is the
        uncalibrated range's (e.g. (0.7, 1.4)), kept while fewer than MIN_MODELS models were measured."""
        band = max(_SPREAD_BANDS * self.latency_spread / self.latency_scale, MIN_BAND)
        low, high = 1 - band, 1 + band
        if self.models < MIN_MODELS:
            low, high = min(low, uncalibrated[0]), max(high, uncalibrated[1])
        return max(low, 0.0), high

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["latency_ratio_range"] = list(self.latency_ratio_range)
        return data


def _one_per_run(records: list) -> list:
    """One record per benchmark run: a ``BoardResult`` judged by several ``assert_budget`` calls is one run."""
    seen, kept = set(), []
    for record in records:
        run_id = (record.measured or {}).get("run_id")
        if run_id is not None and run_id in seen:
            continue
        seen.add(run_id)
        kept.append(record)
    return kept


def from_records(records, chip: str, *, min_runs: int = MIN_RUNS, history: str | None = None) -> Calibration:
    """The calibration of ``chip`` from estimate records (:class:`~pytest_tinyml.history.estimates.EstimateRecord`).

    Only records a device of that chip measured against this latency model (``estimate["estimator"]`` is
    :func:`~pytest_tinyml.estimation.latency.fingerprint`) count. Raises :class:`EstimateCalibrationError` when
    there are none, or fewer than ``min_runs``.

    Example:
        >>> from pytest_tinyml.estimation.latency import fingerprint
        >>> from pytest_tinyml.history.estimates import EstimateRecord
        >>> runs = [EstimateRecord.new(test_id="t", target="esp32", model_sha256=str(i) * 64,
        ...                            estimate={"latency_ms": 10.0, "arena_bytes": 100, "estimator": fingerprint()},
        ...                            measured={"where": "device", "board": {"chip": "esp32"},
        ...                                      "latency_ms": 10.0 * r, "arena_bytes": 100})
        ...         for i, r in enumerate([1.1, 1.2, 1.3])]
        >>> from_records(runs, "esp32").latency_scale
        1.2
    """
    from pytest_tinyml.estimation.latency import fingerprint
    from pytest_tinyml.history.store import utc_now
    from pytest_tinyml.latency import median, robust_spread

    of_chip = [r for r in records if r.target == chip]
    runs = [r for r in of_chip if r.measured is not None and (r.ratios or {}).get("latency")]
    # A ratio taken against another latency model (an older pytest-tinyml's constants) says nothing of this one.
    measured = _one_per_run([r for r in runs if (r.estimate or {}).get("estimator") == fingerprint()])
    where = f" in {history}" if history else ""
    if runs and not measured:
        raise EstimateCalibrationError(
            f"the {len(runs)} board run(s) of {chip}{where} were compared with another latency model than this "
            f"pytest-tinyml's (estimator {fingerprint()}): run the assert_budget(target={chip!r}) tests on the "
            "board again to calibrate this one")
    if not measured:
        chips = sorted({r.target for r in records if r.measured is not None})
        raise EstimateCalibrationError(
            f"no board runs of {chip}{where}: {len(of_chip)} estimate(s) of {chip} without a board"
            + (f"; board runs exist for {', '.join(chips)}" if chips else "")
            + f". Run the assert_budget(target={chip!r}) tests with --tinyml-board on a {chip} first")
    if len(measured) < min_runs:
        raise EstimateCalibrationError(
            f"only {len(measured)} board run(s) of {chip}{where}, {min_runs} needed for a scale and its spread: "
            f"run the assert_budget(target={chip!r}) tests on the board again, or pass --min-runs")
    ratios = [float(r.ratios["latency"]) for r in measured]
    arena = [float(r.ratios["arena"]) for r in measured if (r.ratios or {}).get("arena")]
    return Calibration(chip=chip, latency_scale=median(ratios), latency_spread=robust_spread(ratios),
                       latency_ratio_range=(min(ratios), max(ratios)),
                       arena_ratio=median(arena) if arena else None, runs=len(measured),
                       models=len({r.model_sha256 for r in measured}), boards=len({r.board_key for r in measured}),
                       history=history, created=utc_now())


def default_path() -> Path:
    """``<cache dir>/calibration.json``: the running pytest's ``--tinyml-cache-dir``, else ``.tinyml_cache``.

    Example:
        >>> default_path().name
        'calibration.json'
    """
    from pytest_tinyml import options, report

    item = report.current_item()
    cache = options.of(item.config).cache_dir if item is not None else options.DEFAULT_CACHE_DIR
    return Path(cache) / FILE_NAME


def load(path) -> dict[str, Calibration]:
    """The calibrations in ``path`` by chip; :class:`EstimateCalibrationError` when it is missing or corrupt."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a schema-{SCHEMA} calibration file")
        found = {}
        for chip, fields in data["chips"].items():
            fields = dict(fields)
            fields["latency_ratio_range"] = tuple(fields["latency_ratio_range"])
            cal = Calibration(**fields)
            problem = _implausible(cal)
            if problem or cal.chip != chip:
                raise ValueError(f"{chip}: {problem or f'entry names chip {cal.chip!r}'}")
            found[chip] = cal
        return found
    except FileNotFoundError:
        raise EstimateCalibrationError(f"no calibration file {path}: write one with `pytest-tinyml estimate "
                                       "calibrate`") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EstimateCalibrationError(f"calibration file {path} is unreadable ({type(exc).__name__}: {exc}): "
                                       "write it again with `pytest-tinyml estimate calibrate`, or delete it "
                                       "for uncalibrated estimates") from None


def _number(value, low: float = 0.0) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value >= low)


def _implausible(cal: Calibration) -> str | None:
    """What makes a stored calibration unusable (a scale of -1, NaN or inf would make every estimate wrong)."""
    if not (_number(cal.latency_scale) and cal.latency_scale > 0):
        return f"latency_scale {cal.latency_scale!r} is not a positive finite number"
    if not _number(cal.latency_spread):
        return f"latency_spread {cal.latency_spread!r} is not a finite number >= 0"
    if len(cal.latency_ratio_range) != 2 or not all(_number(v) for v in cal.latency_ratio_range):
        return f"latency_ratio_range {list(cal.latency_ratio_range)!r} is not two finite numbers"
    for name in ("runs", "models", "boards"):
        value = getattr(cal, name)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return f"{name} {value!r} is not a whole number >= 1"
    if cal.arena_ratio is not None and not (_number(cal.arena_ratio) and cal.arena_ratio > 0):
        return f"arena_ratio {cal.arena_ratio!r} is not a positive finite number"
    return None


def write(path, calibrations: list[Calibration]) -> Path:
    """Write ``calibrations`` into ``path``, keeping the other chips already there (replacing a corrupt file)."""
    from pytest_tinyml._files import write_atomic

    path = Path(path)
    try:
        kept = {chip: cal.as_dict() for chip, cal in load(path).items()} if path.exists() else {}
    except EstimateCalibrationError:
        kept = {}
    kept.update({cal.chip: cal.as_dict() for cal in calibrations})
    os.makedirs(path.parent, exist_ok=True)
    return write_atomic(path, json.dumps({"schema": SCHEMA, "chips": kept}, indent=1, sort_keys=True),
                        prefix=".tmp-calibration-")


def lookup(chip: str, calibration) -> Calibration | None:
    """The calibration ``estimate()`` applies: ``"auto"`` = the default file's entry for ``chip`` when the file
    exists; ``None``/``False`` = none; a path = that file, which must have ``chip``."""
    if calibration is None or calibration is False:
        return None
    if not isinstance(calibration, (str, os.PathLike)):
        raise EstimateCalibrationError(f"calibration={calibration!r}: give 'auto' (the cache dir's "
                                       f"{FILE_NAME}), a file path, or None for the uncalibrated estimate")
    if calibration == "auto":
        path = default_path()
        return load(path).get(chip) if path.is_file() else None
    found = load(calibration)
    if chip not in found:
        raise EstimateCalibrationError(f"calibration file {calibration} has no entry for {chip} (it has: "
                                       f"{', '.join(sorted(found)) or 'none'}): calibrate that chip first")
    return found[chip]


def apply(estimate, calibration: Calibration | None):
    """``estimate`` scaled by ``calibration`` (per-op times too), its range from the calibration's band."""
    if calibration is None:
        return estimate
    scale = calibration.latency_scale
    low, high = estimate.latency_ms_range
    raw = (low / estimate.latency_ms, high / estimate.latency_ms) if estimate.latency_ms else (1.0, 1.0)
    latency = estimate.latency_ms * scale
    low_factor, high_factor = calibration.range_factors(raw)
    per_op = [dataclasses.replace(op, ms=op.ms * scale) for op in estimate.per_op]
    return dataclasses.replace(estimate, latency_ms=latency, latency_ms_range=(latency * low_factor,
                               latency * high_factor), per_op=per_op, calibration=calibration.describe())
