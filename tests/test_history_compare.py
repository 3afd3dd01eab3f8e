"""The latency gate's statistics: Mann-Whitney U one-sided plus a minimum effect on the median (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.history import compare as cmp


def lognormal(seed: int, n: int = 30, median: float = 1000.0, cv: float = 0.03) -> list[float]:
    sigma = math.sqrt(math.log1p(cv * cv))
    return list(median * np.random.default_rng(seed).lognormal(0.0, sigma, n))


def test_same_distribution_is_unchanged():
    result = cmp.compare_samples(lognormal(1), lognormal(2), min_effect=0.05)
    assert result.verdict == cmp.UNCHANGED
    assert result.p_value > 0.01
    assert abs(result.change) < 0.03


def test_twenty_percent_slower_is_a_regression():
    result = cmp.compare_samples(lognormal(1), lognormal(2, median=1200.0), min_effect=0.05)
    assert result.verdict == cmp.REGRESSION and result.is_regression
    assert result.p_value < 1e-8
    assert 0.15 < result.change < 0.25
    assert (result.baseline.n, result.now.n) == (30, 30)


def test_significant_but_small_slowdown_passes():
    """With many samples and little noise a 2% shift is significant, yet below the 5% effect floor."""
    result = cmp.compare_samples(lognormal(3, n=400, cv=0.01), lognormal(4, n=400, cv=0.01, median=1020.0),
                                 min_effect=0.05)
    assert result.p_value <= 0.01
    assert result.verdict == cmp.UNCHANGED


def test_large_but_noisy_slowdown_needs_significance():
    """Three samples a side cannot reach p <= 0.01 even for a big median change."""
    result = cmp.compare_samples([100, 150, 90], [140, 160, 100], min_effect=0.05)
    assert result.change > 0.05
    assert result.p_value > 0.01
    assert result.verdict == cmp.UNCHANGED


def test_faster_is_reported_as_faster():
    result = cmp.compare_samples(lognormal(5), lognormal(6, median=800.0))
    assert result.verdict == cmp.FASTER
    assert result.change < -0.1


def test_identical_constant_samples_do_not_crash():
    result = cmp.compare_samples([100.0] * 10, [100.0] * 10)
    assert (result.verdict, result.p_value, result.change) == (cmp.UNCHANGED, 1.0, 0.0)


def test_single_sample_cannot_be_significant():
    assert cmp.compare_samples([100.0], [300.0]).verdict == cmp.UNCHANGED


@pytest.mark.parametrize(("alpha", "min_effect"), [(0, 0.05), (1.5, 0.05), (0.01, -0.1), ("x", 0.05)])
def test_bad_thresholds_are_config_errors(alpha, min_effect):
    with pytest.raises(ConfigError, match="tinyml_latency"):
        cmp.compare_samples([1, 2], [1, 2], alpha=alpha, min_effect=min_effect)


def test_regression_message_has_everything_to_act_on():
    result = cmp.compare_samples(lognormal(7), lognormal(8, median=1250.0), min_effect=0.05)
    text = cmp.regression_message(result, series="t.py::test_a @ esp32s3", baseline_label="baseline 'last'",
                                  now_label="now", accept_hint="pytest --tinyml-save-baseline")
    first, base_line, now_line, change_line, hint = text.splitlines()
    assert first.startswith("latency regression in t.py::test_a @ esp32s3: median +")
    assert "(limit +5.0%)" in first and "<= 0.01" in first
    assert f"{result.baseline.median:.1f}" in base_line and f"{result.baseline.p90:.1f}" in base_line
    assert f"{result.now.median:.1f}" in now_line and "n = 30" in now_line
    assert "Mann-Whitney U" in change_line and "p90 +" in change_line
    assert hint.endswith("pytest --tinyml-save-baseline")


def test_error_rates_at_board_defaults():
    """A small seeded version of benchmarks/regression_detector.py: CV 5%, 30 samples a side."""
    rng = np.random.default_rng(11)
    sigma = math.sqrt(math.log1p(0.05**2))
    false_alarms = detected = 0
    trials = 200
    for _ in range(trials):
        base = 1000 * rng.lognormal(0, sigma, 30)
        false_alarms += cmp.compare_samples(base, 1000 * rng.lognormal(0, sigma, 30)).is_regression
        detected += cmp.compare_samples(base, 1100 * rng.lognormal(0, sigma, 30)).is_regression
    assert false_alarms / trials <= 0.01
    assert detected / trials >= 0.95
