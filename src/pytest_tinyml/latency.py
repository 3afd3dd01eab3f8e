"""Latency statistics over per-run samples (microseconds). Pure Python: no numpy, cheap to import."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


def _percentile(sorted_samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (the same definition as numpy's default)."""
    if not sorted_samples:
        return math.nan
    pos = (len(sorted_samples) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in microseconds.

    Example:
        >>> s = LatencyStats.from_samples([100, 110, 120])
        >>> s.median
        110.0
    """

    samples: tuple[float, ...] = field(repr=False)
    min: float
    p10: float
    median: float
    mean: float
    p90: float
    max: float
    stdev: float

    @classmethod
    def from_samples(cls, samples) -> LatencyStats:
        values = [float(v) for v in samples]
        if not values:
            raise ValueError("LatencyStats needs at least one sample")
        ordered = sorted(values)
        return cls(
            samples=tuple(values),
            min=ordered[0],
            p10=_percentile(ordered, 0.1),
            median=_percentile(ordered, 0.5),
            mean=statistics.fmean(values),
            p90=_percentile(ordered, 0.9),
            max=ordered[-1],
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        )

    @property
    def n(self) -> int:
        return len(self.samples)

    def as_dict(self) -> dict:
        return {
            "n": self.n, "min": self.min, "p10": self.p10, "median": self.median, "mean": self.mean,
            "p90": self.p90, "max": self.max, "stdev": self.stdev,
        }


def median(values) -> float:
    """Median of numbers (``nan`` for none).

    Example:
        >>> median([3, 1, 2, 10])
        2.5
    """
    return _percentile(sorted(float(v) for v in values), 0.5)


def robust_spread(values) -> float:
    """Robust standard deviation: 1.4826 x the median absolute deviation (equal to sigma for normal data).

    One wild value moves it little, unlike the standard deviation: the right measure of how much the median
    of a benchmark run wanders from run to run on a machine that sometimes hiccups.

    Example:
        >>> round(robust_spread([100, 101, 99, 100, 250]), 3)
        1.483
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        return 0.0
    center = median(values)
    return 1.4826 * median(abs(v - center) for v in values)
