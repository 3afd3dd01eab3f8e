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
            "n": self.n, "min": self.min, "median": self.median, "mean": self.mean,
            "p90": self.p90, "max": self.max, "stdev": self.stdev,
        }
