"""Is this latency a regression? Mann-Whitney U on the per-run samples plus a minimum effect on the median.

A regression needs both:
- significance: the one-sided Mann-Whitney U test (``now`` slower than ``baseline``) gives ``p <= alpha``;
- size: the median slowed down by at least ``min_effect`` (a fraction: 0.05 = 5%).

The rank test is robust to the long right tail of timing noise (interrupts, cache misses); the effect floor
keeps a tiny but real shift (thermal drift, a 1% change) from failing a test. scipy is imported inside
:func:`compare_samples` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.latency import LatencyStats

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = {"board": 0.05, "host": 0.10}

REGRESSION = "regression"
UNCHANGED = "unchanged"
FASTER = "faster"
NO_BASELINE = "no-baseline"
NOT_COMPARED = "not-compared"
ACCEPTED = "accepted"


def default_min_effect(kind: str, where: str) -> float:
    """5% on a board, 10% on the host -- and on the sim, which is timed by the host's clock under host noise.

    Example:
        >>> default_min_effect("board", "esp32s3"), default_min_effect("board", "sim")
        (0.05, 0.1)
    """
    return DEFAULT_MIN_EFFECT["host" if kind == "host" or where == "sim" else "board"]


def check_thresholds(alpha: float, min_effect: float) -> None:
    """Raise :class:`ConfigError` for an ``alpha`` outside (0, 1) or a negative ``min_effect``."""
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"tinyml_latency(alpha=...) must be between 0 and 1 (e.g. 0.01), got {alpha!r}")
    if not (isinstance(min_effect, (int, float)) and math.isfinite(min_effect) and min_effect >= 0):
        raise ConfigError(
            f"tinyml_latency(min_effect=...) is a fraction of the median, >= 0 (e.g. 0.05 for 5%), got {min_effect!r}"
        )


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing latency samples with a baseline.

    ``change`` is the relative change of the median (0.2 = 20% slower); ``p_value`` is the one-sided
    Mann-Whitney U p-value for "now is slower".

    Example:
        >>> c = compare_samples([100, 101, 102] * 10, [120, 121, 122] * 10)
        >>> c.verdict, round(c.change, 3)
        ('regression', 0.198)
    """

    verdict: str
    baseline: LatencyStats
    now: LatencyStats
    change: float
    p_value: float
    alpha: float
    min_effect: float

    @property
    def is_regression(self) -> bool:
        return self.verdict == REGRESSION

    def summary(self) -> str:
        """One line: medians, change, p-value and sample counts."""
        return (
            f"median {self.baseline.median:.1f} -> {self.now.median:.1f} us ({self.change:+.1%}), "
            f"p90 {self.baseline.p90:.1f} -> {self.now.p90:.1f} us, p = {self.p_value:.2g}, "
            f"n = {self.baseline.n}/{self.now.n}"
        )

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict, "change": self.change, "p_value": self.p_value, "alpha": self.alpha,
            "min_effect": self.min_effect, "baseline": self.baseline.as_dict(), "now": self.now.as_dict(),
        }


def compare_samples(baseline_us, now_us, *, alpha: float = DEFAULT_ALPHA, min_effect: float = 0.05) -> Comparison:
    """Compare two sets of per-run latencies (microseconds): the gate the plugin and the CLI use.

    Example:
        >>> compare_samples([100, 102, 101, 99, 100], [100, 101, 99, 102, 100]).verdict
        'unchanged'
    """
    check_thresholds(alpha, min_effect)
    base, now = LatencyStats.from_samples(baseline_us), LatencyStats.from_samples(now_us)
    if base.n < 2 or now.n < 2:
        # One sample a side has no rank information; only an effect could speak, and noise is unknown.
        p_value = 1.0
    elif len(set(base.samples) | set(now.samples)) == 1:
        p_value = 1.0  # all equal: scipy would divide by a zero variance
    else:
        from scipy.stats import mannwhitneyu

        p_value = float(mannwhitneyu(now.samples, base.samples, alternative="greater").pvalue)
    change = (now.median / base.median - 1.0) if base.median > 0 else (math.inf if now.median > 0 else 0.0)
    if p_value <= alpha and change >= min_effect:
        verdict = REGRESSION
    elif change < 0 and base.n >= 2 and now.n >= 2 and _faster_p(base, now) <= alpha:
        verdict = FASTER
    else:
        verdict = UNCHANGED
    return Comparison(verdict, base, now, change, p_value, alpha, min_effect)


def _faster_p(base: LatencyStats, now: LatencyStats) -> float:
    from scipy.stats import mannwhitneyu

    if len(set(base.samples) | set(now.samples)) == 1:
        return 1.0
    return float(mannwhitneyu(now.samples, base.samples, alternative="less").pvalue)


def regression_message(comparison: Comparison, *, series: str, baseline_label: str, now_label: str,
                       accept_hint: str) -> str:
    """The failure text of a regression: baseline vs now (median, p90), change, p-value, counts, next step.

    Example:
        >>> c = compare_samples([100, 101, 102] * 10, [120, 121, 122] * 10)
        >>> print(regression_message(c, series="t.py::test_a @ sim", baseline_label="baseline 'last'",
        ...                          now_label="now", accept_hint="pytest --tinyml-save-baseline").splitlines()[0])
        latency regression in t.py::test_a @ sim: median +19.8% (limit +5.0%), p = 8e-12 <= 0.01
    """
    c = comparison
    b, n = c.baseline, c.now
    width = max(len(baseline_label), len(now_label))
    return "\n".join([
        f"latency regression in {series}: median {c.change:+.1%} (limit +{c.min_effect:.1%}), "
        f"p = {c.p_value:.2g} <= {c.alpha:g}",
        f"  {baseline_label:<{width}}  median {b.median:10.1f} us   p90 {b.p90:10.1f} us   n = {b.n}",
        f"  {now_label:<{width}}  median {n.median:10.1f} us   p90 {n.p90:10.1f} us   n = {n.n}",
        f"  change: median {c.change:+.1%}, p90 {(n.p90 / b.p90 - 1) if b.p90 else math.inf:+.1%}; "
        f"Mann-Whitney U one-sided (slower) p = {c.p_value:.3g}",
        f"  if this slowdown is expected, accept it as the new baseline: {accept_hint}",
    ])
