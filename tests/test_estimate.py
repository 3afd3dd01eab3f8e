"""tinyml.estimate and assert_budget(target=...): device figures without a board, labelled where=estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.errors import ConfigError, TinyMLAssertionError
from pytest_tinyml.espnn import OPTIMIZED, PLAIN_C, REFERENCE
from pytest_tinyml.estimation import latency, published

BUILTIN = Path(__file__).resolve().parents[1] / "firmware" / "models" / "builtin.tflite"


def test_estimate_has_every_field_and_says_estimate(cnn_int8):
    est = tinyml.estimate(cnn_int8, target="esp32s3")
    assert est.where == "estimate" and est.target == "esp32s3" and est.cpu_mhz == 240
    low, high = est.latency_ms_range
    assert 0 < low < est.latency_ms < high
    assert est.latency_ms == pytest.approx(sum(o.ms for o in est.per_op))
    conv = [o for o in est.per_op if o.op == "CONV_2D"]
    assert conv and all(o.macs > 0 and o.kernel == OPTIMIZED for o in conv)
    assert {o.kernel for o in est.per_op} <= {OPTIMIZED, PLAIN_C, REFERENCE}
    assert "where=estimate" in est.summary() and est.as_dict()["where"] == "estimate"


def test_kernel_paths_and_clock_change_the_latency(cnn_int8):
    s3 = tinyml.estimate(cnn_int8, target="esp32s3")
    c3 = tinyml.estimate(cnn_int8, target="esp32c3")
    assert c3.latency_ms > s3.latency_ms  # no SIMD, slower clock
    assert c3.arena_bytes == s3.arena_bytes  # reference-kernel arena: the same on every chip
    half = tinyml.estimate(cnn_int8, target="esp32s3", cpu_mhz=120)
    assert half.latency_ms == pytest.approx(2 * s3.latency_ms)


@pytest.mark.parametrize("target", ["esp32p4", "stm32", ""])
def test_unknown_target_is_a_config_error(target):
    with pytest.raises(ConfigError, match="no latency model for target"):
        tinyml.estimate(BUILTIN, target=target)


@pytest.mark.parametrize("mhz", [0, -5, "240", True, 1e6])
def test_bad_clock_is_a_config_error(mhz):
    with pytest.raises(ConfigError, match="cpu_mhz"):
        tinyml.estimate(BUILTIN, target="esp32", cpu_mhz=mhz)


def test_calibration_reproduces_its_own_rows_and_holds_out_the_rest():
    for row in published.MODEL_ROWS:
        predicted = latency.graph_ms(published.PERSON_DETECTION_OPS, row["chip"], row["mhz"], row["esp_nn"])
        if row["role"] == "calibration":
            assert predicted == pytest.approx(row["ms"], rel=1e-6)
        else:  # the estimate's range claims to hold the published figure
            assert row["ms"] * (1 - latency.BAND) <= predicted <= row["ms"] * (1 + latency.BAND), row["id"]
    held_out = [r for r in published.MODEL_ROWS + published.OP_ROWS if r["role"] == "held-out"]
    assert {r["chip"] for r in held_out if r in published.MODEL_ROWS} == {"esp32s3", "esp32c3"}


def test_a_wrong_published_figure_falls_outside_the_band():
    """The wrong input for the band check: S3 with ESP-NN published at twice its figure is out of the range."""
    row = next(r for r in published.MODEL_ROWS if r["id"] == "person detection esp32s3 esp-nn")
    predicted = latency.graph_ms(published.PERSON_DETECTION_OPS, row["chip"], row["mhz"], True)
    assert not (2 * row["ms"] * (1 - latency.BAND) <= predicted <= 2 * row["ms"] * (1 + latency.BAND))


def test_assert_budget_with_target_uses_the_estimate(cnn_int8):
    est = tinyml.estimate(cnn_int8, target="esp32s3")
    figures = tinyml.assert_budget(cnn_int8, arena_kb=est.arena_kb + 0.01, latency_ms=est.latency_ms + 0.01,
                                   target="esp32s3")
    assert figures["arena_kb"] == est.arena_kb and figures["latency_ms"] == est.latency_ms
    from pytest_tinyml.runtime import tflm

    assert figures["arena_kb"] < tflm.arena(cnn_int8).arena_kb  # the 32-bit figure, not the host's


def test_assert_budget_over_the_estimate_fails_and_says_estimate(cnn_int8):
    est = tinyml.estimate(cnn_int8, target="esp32c3")
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(cnn_int8, latency_ms=est.latency_ms * 0.5, target="esp32c3")
    text = str(info.value)
    assert "OVER" in text and "where=estimate" in text and "esp32c3" in text and "slowest ops" in text
    with pytest.raises(TinyMLAssertionError, match="32-bit estimate"):
        tinyml.assert_budget(cnn_int8, arena_kb=est.arena_kb - 0.1, target="esp32c3")


def test_latency_budget_needs_a_target(cnn_int8):
    with pytest.raises(ConfigError, match="needs target="):
        tinyml.assert_budget(cnn_int8, latency_ms=10)


def test_summary_and_json_label_the_estimate(pytester):
    pytester.makepyfile(f'''
        import pytest_tinyml as tinyml
        def test_budget():
            tinyml.assert_budget({str(BUILTIN)!r}, arena_kb=64, latency_ms=100, target="esp32")
        def test_host():
            tinyml.assert_budget({str(BUILTIN)!r}, arena_kb=64)
    ''')
    report = pytester.path / "report.json"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--tinyml-report={report}", "-n", "0")
    result.assert_outcomes(passed=2)
    import json

    rows = {row["test"].split("::")[-1]: row for row in json.loads(report.read_text())["tests"]}
    assert rows["test_budget"]["where"] == "estimate" and rows["test_budget"]["target"] == "esp32"
    assert rows["test_host"]["where"] == "host" and "latency_ms" not in rows["test_host"]
    result.stdout.fnmatch_lines(["*test_budget*estimate*"])
