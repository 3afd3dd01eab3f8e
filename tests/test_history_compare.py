"""The latency gate's statistics: run medians against the between-run spread of a window of runs (seeded)."""

from __future__ import annotations

import math
import random

import pytest

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.history import compare as cmp
from pytest_tinyml.history.compare import Gate


def run(seed: int, median: float = 1000.0, n: int = 30, cv: float = 0.01) -> list[float]:
    rng = random.Random(seed)
    sigma = math.sqrt(math.log1p(cv * cv))
    return [median * rng.lognormvariate(0.0, sigma) for _ in range(n)]


def window(medians, n: int = 30, cv: float = 0.01) -> list[list[float]]:
    return [run(100 + i, m, n, cv) for i, m in enumerate(medians)]


CALM = window([1000, 1004, 997, 1002, 999, 1001, 996, 1003])
BOARD = Gate(min_effect=0.05)


def test_unchanged_run_is_unchanged_and_a_slower_one_is_a_regression():
    same = cmp.compare_runs(CALM, run(1, 1002.0), gate=BOARD)
    assert same.verdict == cmp.UNCHANGED and abs(same.change) < 0.01
    slow = cmp.compare_runs(CALM, run(2, 1200.0), gate=BOARD)
    assert slow.verdict == cmp.REGRESSION and slow.is_regression and 0.17 < slow.change < 0.23
    assert slow.runs == 8 and slow.baseline_n == 30


def test_a_shift_within_the_between_run_spread_is_not_a_regression():
    """Each run is tight inside (CV 1%), but run medians wander +-8% (frequency, caches): a rank test on the
    samples calls +8% 'hugely significant'; the spread of the window says it is the usual."""
    wandering = window([1000, 1080, 940, 1050, 960, 1070, 930, 1020, 990, 1060])
    assert cmp.compare_runs(wandering, run(3, 1080.0), gate=BOARD).verdict == cmp.UNCHANGED
    assert cmp.compare_runs(wandering, run(4, 1400.0), gate=BOARD).verdict == cmp.REGRESSION


def test_one_baseline_run_is_inconclusive_whatever_the_change():
    one = cmp.compare_samples([1000.0], [5000.0 + i for i in range(20)])
    assert one.verdict == cmp.INCONCLUSIVE and one.verdict != cmp.UNCHANGED
    assert f"{one.change:+.0%}" == "+401%" and "too little history: 1 baseline run(s) of 1 sample" in one.reason
    two = cmp.compare_runs(CALM[:2], run(5, 5000.0), gate=BOARD)
    assert two.verdict == cmp.INCONCLUSIVE and "3 needed" in two.reason
    three = cmp.compare_runs(CALM[:3], run(5, 5000.0), gate=BOARD)  # enough runs: the same data decides
    assert three.verdict == cmp.REGRESSION


def test_faster_holds_to_the_same_rule_as_slower():
    assert cmp.compare_runs(CALM, run(6, 800.0), gate=BOARD).verdict == cmp.FASTER
    assert cmp.compare_runs(CALM, run(7, 980.0), gate=BOARD).verdict == cmp.UNCHANGED  # -2%: noise


def test_timer_ticks_are_not_a_change():
    """The sim counts whole microseconds: a 3 us model moving by one tick is +33%, and still the clock."""
    ticks = [[3.0] * 20 for _ in range(5)]
    gate = Gate(min_effect=0.1, floor_us=2.0)
    assert cmp.compare_runs(ticks, [4.0] * 20, gate=gate).verdict == cmp.UNCHANGED
    assert cmp.compare_runs(ticks, [6.0] * 20, gate=gate).verdict == cmp.REGRESSION
    assert cmp.compare_runs(ticks, [4.0] * 20, gate=Gate(min_effect=0.1, floor_us=0.0)).verdict == cmp.REGRESSION


def test_a_doubtful_run_is_measured_again_and_the_majority_decides():
    calls = []

    def again_normal():
        calls.append(1)
        return run(10 + len(calls), 1001.0)

    spike = cmp.compare_runs(CALM, run(8, 1300.0), gate=BOARD, remeasure=again_normal)
    assert spike.verdict == cmp.UNCHANGED and len(calls) == 2 and len(spike.medians_us) == 3
    assert abs(spike.now.median - 1001.0) < 15  # the deciding measurement's samples are kept

    calls.clear()

    def again_slow():
        calls.append(1)
        return run(20 + len(calls), 1300.0)

    real = cmp.compare_runs(CALM, run(9, 1300.0), gate=BOARD, remeasure=again_slow)
    assert real.verdict == cmp.REGRESSION and len(calls) == 1  # two of two agree: no third measurement

    calls.clear()
    quiet = cmp.compare_runs(CALM, run(9, 1001.0), gate=BOARD, remeasure=again_slow)
    assert quiet.verdict == cmp.UNCHANGED and calls == []  # nothing in doubt: nothing re-measured
    assert cmp.compare_runs(CALM, run(9, 1300.0), gate=Gate(min_effect=0.05, reruns=0),
                            remeasure=again_normal).verdict == cmp.REGRESSION


def test_an_unreliable_host_makes_a_change_inconclusive_not_a_failure():
    busy = cmp.compare_runs(CALM, run(30, 1500.0), gate=BOARD, unreliable="load average 6 now, 0.5 then")
    assert busy.verdict == cmp.INCONCLUSIVE and "unreliable measurement: load average 6" in busy.reason
    assert cmp.compare_runs(CALM, run(31, 1000.0), gate=BOARD, unreliable="load").verdict == cmp.UNCHANGED


def test_a_run_disturbed_halfway_is_inconclusive_a_uniformly_slower_one_a_regression():
    """Measured on the sim under -n 2 next to a training test: half the samples normal, then the CPU taken."""
    split = run(60, 1000.0)[:15] + run(61, 3700.0)[:15]
    disturbed = cmp.compare_runs(CALM, split, gate=BOARD)
    assert disturbed.verdict == cmp.INCONCLUSIVE and "the host was disturbed while it measured" in disturbed.reason
    assert cmp.compare_runs(CALM, run(62, 2350.0), gate=BOARD).verdict == cmp.REGRESSION  # same median, every sample


def test_noise_that_came_and_went_widens_the_allowed_deviation():
    """A host in a slow mode now and then (+40%, seen and gone): the next such run is not a regression."""
    assert cmp.compare_runs(CALM, run(40, 1350.0), gate=BOARD).verdict == cmp.REGRESSION
    seen = cmp.compare_runs(CALM, run(40, 1350.0), gate=BOARD, excursions=[1400.0])
    assert seen.verdict == cmp.UNCHANGED and seen.allowed_us > 400
    assert cmp.compare_runs(CALM, run(41, 2000.0), gate=BOARD, excursions=[1400.0]).verdict == cmp.REGRESSION


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"min_effect": -0.1}, "min_effect"), ({"min_effect": "x"}, "min_effect"), ({"spread_k": 0}, "spread_k"),
    ({"window": 1}, "window"), ({"min_runs": 1}, "min_runs"), ({"reruns": -1}, "reruns"),
    ({"floor_us": float("nan")}, "floor_us"), ({"seen_margin": 0.5}, "seen_margin"),
    ({"window": 3, "min_runs": 5}, "cannot exceed"),
])
def test_bad_thresholds_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Gate(**kwargs)


def test_regression_message_has_everything_to_act_on():
    result = cmp.compare_runs(CALM, run(50, 1250.0), gate=BOARD, remeasure=lambda: run(51, 1251.0))
    text = cmp.regression_message(result, series="t.py::test_a @ esp32s3", baseline_label="baseline 'last'",
                                  now_label="now", changes=["model sha256 aa -> bb", "firmware hash 1 -> 2"],
                                  accept_hint="pytest --tinyml-save-baseline")
    first, base_line, now_line, allowed, changed, hint = text.splitlines()
    assert first.startswith("latency regression in t.py::test_a @ esp32s3: median 100") and "(+2" in first
    assert "median of 8 run medians" in base_line and "between-run spread" in base_line
    assert "n = 30" in now_line and "measured 2x" in now_line
    assert "min_effect 5%" in allowed and "floor 2 us" in allowed
    assert changed == "  changed since the baseline: model sha256 aa -> bb; firmware hash 1 -> 2"
    assert hint.endswith("pytest --tinyml-save-baseline")


def test_error_rates_on_a_board_like_noise_model():
    """A small seeded version of benchmarks/regression_detector.py: within-run CV 0.5%, between-run CV 1%,
    whole-microsecond ticks, 1 ms model; a 10% slowdown is caught, unchanged runs are not flagged."""
    rng = random.Random(11)

    def board_run(scale: float) -> list[float]:
        offset = rng.lognormvariate(0.0, 0.01)
        return [float(round(1000.0 * scale * offset * rng.lognormvariate(0.0, 0.005))) for _ in range(20)]

    trials, false_alarms, detected = 200, 0, 0
    for _ in range(trials):
        base = [board_run(1.0) for _ in range(10)]
        false_alarms += cmp.compare_runs(base, board_run(1.0), gate=BOARD,
                                         remeasure=lambda: board_run(1.0)).is_regression
        detected += cmp.compare_runs(base, board_run(1.1), gate=BOARD, remeasure=lambda: board_run(1.1)).is_regression
    assert false_alarms / trials <= 0.01
    assert detected / trials >= 0.95
