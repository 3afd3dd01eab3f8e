"""Is this latency a regression? The new run's median against the between-run spread of recent runs.

Timings vary twice: inside a run (one inference to the next) and between runs (CPU frequency, cache and
memory layout, a busy neighbour). A test on the samples of one run against one baseline run (Mann-Whitney U
did this) treats the second kind as impossible, so any shift between runs is "hugely significant": on
unchanged code it failed one run in three. The gate here compares run medians with run medians:

- the baseline is a window of the last ``window`` accepted runs (their medians);
- the allowed deviation is the largest of ``spread_k`` x their robust spread (1.4826 x MAD of the run
  medians), ``min_effect`` x their median, and ``floor_ticks`` ticks of the timer (the sim and the boards
  count whole microseconds, so 1 us jumps are the clock, not the code);
- beyond it upwards is a regression, downwards "faster" (the same rule both ways); when the first
  measurement is beyond, it is measured again (``reruns``, bounded) and the majority decides;
- interference only adds time, so a change must move the fastest samples (p10) too; a run whose samples
  spread over ``DISTURBED_SPREAD`` x wider than the baseline runs' was disturbed while it measured;
- fewer than ``min_runs`` runs in the window (a single baseline run, ``runs=1`` firmware figures), a host
  busier than at the baseline or a disturbed run is ``inconclusive``, never ``unchanged``.

Pure Python; ``benchmarks/regression_detector.py`` measures its false-alarm and detection rates on recorded
reruns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.latency import LatencyStats, median, robust_spread

REGRESSION = "regression"
FASTER = "faster"
UNCHANGED = "unchanged"
INCONCLUSIVE = "inconclusive"
NO_BASELINE = "no-baseline"
VERDICTS = (REGRESSION, FASTER, UNCHANGED, INCONCLUSIVE, NO_BASELINE)
# Outcomes of a test that are not a comparison: the test failed, or --tinyml-save-baseline accepted a change.
NOT_COMPARED = "not-compared"
ACCEPTED = "accepted"

DEFAULT_MIN_EFFECT = {"board": 0.05, "host": 0.10}
DEFAULT_SPREAD_K = 4.0
DEFAULT_WINDOW = 10
MIN_RUNS = 3
DEFAULT_RERUNS = 2
DEFAULT_SEEN_MARGIN = 1.25
# A run whose samples spread this many times wider than the baseline runs' (p10-p90 over the median) was
# disturbed while it was measured (a neighbour took the CPU halfway through): its median says nothing.
DISTURBED_SPREAD = 4.0
FLOOR_TICKS = 2
BOARD_TICK_US = 1.0  # esp_timer and the sim's clock count whole microseconds



def default_min_effect(kind: str, where: str) -> float:
    """5% on a board, 10% on the host -- and on the sim, which is timed by the host's clock under host noise.

    Example:
        >>> default_min_effect("board", "esp32s3"), default_min_effect("board", "sim")
        (0.05, 0.1)
    """
    return DEFAULT_MIN_EFFECT["host" if kind == "host" or where == "sim" else "board"]


@dataclass(frozen=True)
class Gate:
    """The thresholds of one comparison (per test: ``@pytest.mark.tinyml_latency(min_effect=0.2, ...)``).

    Example:
        >>> Gate(min_effect=0.1, floor_us=2.0).allowed_us(center=100.0, spread=1.0)
        10.0
    """

    min_effect: float = 0.05
    spread_k: float = DEFAULT_SPREAD_K
    window: int = DEFAULT_WINDOW
    min_runs: int = MIN_RUNS
    reruns: int = DEFAULT_RERUNS
    floor_us: float = FLOOR_TICKS * BOARD_TICK_US
    seen_margin: float = DEFAULT_SEEN_MARGIN

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> ConfigError:
            return ConfigError(f"tinyml_latency({name}=...) must be {want}, got {getattr(self, name)!r}")

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if not (number(self.min_effect) and self.min_effect >= 0):
            raise bad("min_effect", "a fraction of the median, >= 0 (e.g. 0.05 for 5%)")
        if not (number(self.spread_k) and self.spread_k > 0):
            raise bad("spread_k", "a multiple of the between-run spread, > 0 (e.g. 4)")
        if not (number(self.seen_margin) and self.seen_margin >= 1):
            raise bad("seen_margin", "a factor >= 1 on the largest deviation already seen (e.g. 1.25)")
        if not (number(self.floor_us) and self.floor_us >= 0):
            raise bad("floor_us", "microseconds, >= 0 (e.g. 2 for two 1 us ticks)")
        for name, low in (("window", 2), ("min_runs", 2), ("reruns", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise bad(name, f"a whole number >= {low}")
        if self.min_runs > self.window:
            raise ConfigError(f"tinyml_latency(min_runs={self.min_runs}) cannot exceed window={self.window}")

    def allowed_us(self, *, center: float, spread: float, seen: float = 0.0) -> float:
        """How far (us) a run median may stray from the baseline's before it counts as a change; ``seen`` is the
        largest deviation in that direction among the baseline's runs and excursions."""
        return max(self.spread_k * spread, self.seen_margin * seen, self.min_effect * center, self.floor_us)


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing one run (plus any re-measurements) with a window of baseline runs.

    ``change`` is the relative change of the median (0.2 = 20% slower); ``allowed_us`` the deviation the gate
    tolerates; ``medians_us`` the medians of every measurement of this run (first, then re-measurements).

    Example:
        >>> base = [[100, 101, 99], [102, 100, 101], [99, 100, 98], [101, 100, 102]]
        >>> c = compare_runs(base, [125, 126, 124], gate=Gate(min_effect=0.05))
        >>> c.verdict, round(c.change, 3)
        ('regression', 0.244)
    """

    verdict: str
    now: LatencyStats
    baseline_medians: tuple[float, ...]
    baseline_n: int
    center: float
    spread: float
    allowed_us: float
    change: float
    gate: Gate
    reason: str = ""
    medians_us: tuple[float, ...] = field(default=())
    allowed_down_us: float = math.nan

    @property
    def is_regression(self) -> bool:
        return self.verdict == REGRESSION

    @property
    def runs(self) -> int:
        return len(self.baseline_medians)

    def summary(self) -> str:
        """One line: medians, change, allowed deviation, window size (and why, when inconclusive)."""
        if not self.baseline_medians:
            return self.reason
        text = (f"median {self.center:.1f} -> {self.now.median:.1f} us ({self.change:+.1%}), "
                f"allowed +{self.allowed_us:.1f}/-{self.allowed_down_us:.1f} us, baseline of {self.runs} run(s)")
        if len(self.medians_us) > 1:
            text += f", measured {len(self.medians_us)}x: " + ", ".join(f"{m:.1f}" for m in self.medians_us)
        return f"{text}; {self.reason}" if self.reason else text

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict, "change": self.change, "center_us": self.center, "spread_us": self.spread,
            "allowed_us": self.allowed_us, "allowed_down_us": self.allowed_down_us, "runs": self.runs, "baseline_medians_us": list(self.baseline_medians),
            "medians_us": list(self.medians_us), "reason": self.reason, "now": self.now.as_dict(),
            "gate": {"min_effect": self.gate.min_effect, "spread_k": self.gate.spread_k, "window": self.gate.window,
                     "min_runs": self.gate.min_runs, "floor_us": self.gate.floor_us,
                     "seen_margin": self.gate.seen_margin},
        }


def _direction(value: float, center: float, up: float, down: float) -> str:
    if value > center + up:
        return REGRESSION
    if value < center - down:
        return FASTER
    return UNCHANGED


def _dispersion(stats: LatencyStats) -> float:
    return (stats.p90 - stats.p10) / stats.median if stats.median > 0 else 0.0


def _disturbed(now: LatencyStats, runs: list[LatencyStats]) -> str | None:
    """Why ``now`` looks disturbed (its samples spread far wider than the baseline runs'), or ``None``.

    A slower build moves every sample; a neighbour that takes the CPU halfway through a run splits the
    samples in two. Timer ticks (a p10-p90 of zero) count as a 1% spread.

    Example:
        >>> calm = [LatencyStats.from_samples([100, 101, 102, 103, 101, 102]) for _ in range(3)]
        >>> _disturbed(LatencyStats.from_samples([100, 101, 102, 350, 360, 380]), calm) is not None
        True
        >>> _disturbed(LatencyStats.from_samples([120, 121, 122, 124, 121, 122]), calm) is None
        True
    """
    if now.n < 5 or any(r.n < 5 for r in runs):
        return None  # too few samples to tell a spread
    usual = max(median(_dispersion(r) for r in runs), 0.01)
    if _dispersion(now) > DISTURBED_SPREAD * usual:
        return (f"its samples spread {_dispersion(now):.0%} of the median (p10-p90), over {DISTURBED_SPREAD:g}x the "
                f"baseline runs' {usual:.0%}: the host was disturbed while it measured")
    return None


def _fastest_unmoved(verdict: str, now: LatencyStats, runs: list[LatencyStats], gate: Gate) -> str | None:
    """Why a change of the median is not a change of the code: its fastest samples (p10) did not move.

    Interference only adds time: a neighbour that takes the CPU for part of a run lifts the median and leaves
    the fastest inferences where they were, while a slower build lifts them all. So a change must show in the
    p10 too, judged by the same rule against the baseline runs' p10s.
    """
    if verdict == UNCHANGED:
        return None
    p10s = [r.p10 for r in runs]
    center, spread = median(p10s), robust_spread(p10s)
    if verdict == REGRESSION:
        allowed = gate.allowed_us(center=center, spread=spread, seen=max(p - center for p in p10s))
        moved = now.p10 > center + allowed
    else:
        allowed = gate.allowed_us(center=center, spread=spread, seen=max(center - p for p in p10s))
        moved = now.p10 < center - allowed
    if moved:
        return None
    return (f"the median moved but the fastest samples did not (p10 {now.p10:.1f} us, baseline {center:.1f} us "
            f"+/-{allowed:.1f}): something else took the CPU during the measurement")


def compare_runs(baseline_runs: Sequence[Sequence[float]], now_us: Sequence[float], *, gate: Gate = Gate(),
                 excursions: Sequence[float] = (), remeasure: Callable[[], Sequence[float] | None] | None = None,
                 unreliable: str | None = None) -> Comparison:
    """Compare this run's samples (us) with the samples of the baseline's runs: the gate of the plugin and CLI.

    ``excursions`` are medians of earlier runs that failed the gate but were followed by accepted runs (noise
    that came and went): the allowed deviation covers the largest deviation seen among them and the baseline
    runs, times ``gate.seen_margin``. ``remeasure`` (optional) measures the same thing again and returns new
    samples; it is called at most ``gate.reruns`` times and only when the first measurement is beyond the
    allowed deviation. ``unreliable`` (a reason, e.g. "load 3.1 vs 0.4 at the baseline") turns a would-be
    regression or speed-up into ``inconclusive``.

    Example:
        >>> runs = [[1000 + d] * 5 for d in (0, 4, -3, 2, -1)]
        >>> compare_runs(runs, [1003] * 5, gate=Gate(min_effect=0.05)).verdict
        'unchanged'
        >>> compare_runs(runs[:1], [5000] * 5).verdict   # one baseline run says nothing about noise
        'inconclusive'
    """
    now = LatencyStats.from_samples(now_us)
    runs = [LatencyStats.from_samples(r) for r in baseline_runs]
    medians = tuple(r.median for r in runs)
    baseline_n = min((r.n for r in runs), default=0)
    if not runs:
        return Comparison(NO_BASELINE, now, (), 0, math.nan, math.nan, math.nan, math.nan, gate,
                          "no baseline runs", (now.median,))
    center, spread = median(medians), robust_spread(medians)
    seen = list(medians) + [float(m) for m in excursions]
    up = gate.allowed_us(center=center, spread=spread, seen=max(m - center for m in seen))
    down = gate.allowed_us(center=center, spread=spread, seen=max(center - m for m in seen))

    def change_of(value: float) -> float:
        return (value / center - 1.0) if center > 0 else (math.inf if value > 0 else 0.0)

    if len(runs) < gate.min_runs:
        samples = f" of {baseline_n} sample" + ("s" if baseline_n != 1 else "") if baseline_n <= 1 else ""
        reason = (f"too little history: {len(runs)} baseline run(s){samples}, {gate.min_runs} needed to know "
                  f"the run-to-run spread")
        return Comparison(INCONCLUSIVE, now, medians, baseline_n, center, spread, up, change_of(now.median),
                          gate, reason, (now.median,), down)
    measured = [now]
    first = _direction(now.median, center, up, down)
    if first != UNCHANGED and remeasure is not None:
        votes = 1
        while len(measured) < 1 + gate.reruns and votes < 2 and len(measured) - votes < 2:
            samples = remeasure()
            if samples is None:  # the observer could not measure again (e.g. the board went away)
                break
            again = LatencyStats.from_samples(samples)
            measured.append(again)
            votes += _direction(again.median, center, up, down) == first
    # The measurement that decides: the middle one (of two, the one nearer the baseline).
    ordered = sorted(measured, key=lambda s: s.median)
    chosen = ordered[len(ordered) // 2] if len(ordered) % 2 else min(ordered, key=lambda s: abs(s.median - center))
    verdict, reason = _direction(chosen.median, center, up, down), ""
    disturbed = _disturbed(chosen, runs) or _fastest_unmoved(verdict, chosen, runs, gate)
    if verdict != UNCHANGED and (unreliable or disturbed):
        verdict, reason = INCONCLUSIVE, f"unreliable measurement: {unreliable or disturbed}"
    return Comparison(verdict, chosen, medians, baseline_n, center, spread, up, change_of(chosen.median),
                      gate, reason, tuple(s.median for s in measured), down)


def compare_samples(baseline_us, now_us, *, gate: Gate = Gate()) -> Comparison:
    """One baseline run against one new run: always ``inconclusive`` (one run says nothing about the
    run-to-run spread), whatever the change. Use :func:`compare_runs` with several baseline runs.

    Example:
        >>> c = compare_samples([1000.0], [5000 + i for i in range(20)])
        >>> c.verdict, f"{c.change:+.0%}"
        ('inconclusive', '+401%')
    """
    return compare_runs([baseline_us], now_us, gate=gate)


def regression_message(comparison: Comparison, *, series: str, baseline_label: str, now_label: str,
                       changes: Sequence[str] = (), accept_hint: str) -> str:
    """The failure text of a regression: baseline window vs now, the allowed deviation, what changed
    between them (model, recipe, firmware, host), and the next step.

    Example:
        >>> base = [[100, 101, 99], [102, 100, 101], [99, 100, 98], [101, 100, 102]]
        >>> c = compare_runs(base, [125, 126, 124], gate=Gate(min_effect=0.05))
        >>> print(regression_message(c, series="t.py::test_a @ sim", baseline_label="baseline 'last'",
        ...                          now_label="now", accept_hint="pytest --tinyml-save-baseline").splitlines()[0])
        latency regression in t.py::test_a @ sim: median 100.5 -> 125.0 us (+24.4%), allowed +5.0 us (+5.0%)
    """
    c = comparison
    n, g = c.now, c.gate
    width = max(len(baseline_label), len(now_label))
    lines = [
        f"latency regression in {series}: median {c.center:.1f} -> {n.median:.1f} us ({c.change:+.1%}), "
        f"allowed +{c.allowed_us:.1f} us ({c.allowed_us / c.center if c.center else math.inf:+.1%})",
        f"  {baseline_label:<{width}}  median of {c.runs} run medians {c.center:10.1f} us   "
        f"between-run spread {c.spread:.2f} us ({min(c.baseline_medians):.1f}-{max(c.baseline_medians):.1f})",
        f"  {now_label:<{width}}  median {n.median:10.1f} us   p10-p90 {n.p10:.1f}-{n.p90:.1f} us   n = {n.n}"
        + (f"   measured {len(c.medians_us)}x: " + ", ".join(f"{m:.1f}" for m in c.medians_us)
           if len(c.medians_us) > 1 else ""),
        f"  allowed = max({g.spread_k:g} x spread {g.spread_k * c.spread:.1f} us, {g.seen_margin:g} x the largest "
        f"slowdown seen {max(m - c.center for m in c.baseline_medians):.1f} us, min_effect {g.min_effect:.0%} "
        f"{g.min_effect * c.center:.1f} us, floor {g.floor_us:.3g} us)",
    ]
    lines.append("  changed since the baseline: " + "; ".join(changes) if changes else
                 "  changed since the baseline: nothing recorded (same model, recipe, build and host)")
    lines.append(f"  if this slowdown is expected, accept it as the new baseline: {accept_hint}")
    return "\n".join(lines)
