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
    # esp32c3 runs ESP-NN's generic C code like esp32; esp32s3's conv kernels request scratch buffers
    assert c3.arena_bytes == tinyml.estimate(cnn_int8, target="esp32").arena_bytes < s3.arena_bytes
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


def _held_out(kind: str) -> list:
    return [r for r in latency.comparison() if r["kind"] == kind and r["role"] == "held-out"]


def test_calibration_reproduces_its_own_rows_and_the_band_covers_every_held_out_figure():
    """The range is checked on latency.comparison() (what benchmarks/estimate.py prints): every held-out
    end-to-end figure lies inside the range an estimate() of that graph would return."""
    for r in latency.comparison():
        if r["role"] == "calibration":
            assert r["predicted"] == pytest.approx(r["published"], rel=1e-6), r["id"]
    held_out = _held_out("model")
    assert {r["id"].split()[2] for r in held_out} == {"esp32s3", "esp32c3"}
    low, high = latency.RANGE
    for r in held_out:
        assert r["predicted"] * low <= r["published"] <= r["predicted"] * high, (r["id"], r["error"])


def test_a_wrong_published_figure_falls_outside_the_range():
    """The wrong input for the range check: S3 with ESP-NN published at twice, or at half, its figure is out."""
    row = next(r for r in latency.comparison() if r["id"] == "person detection esp32s3 esp-nn")
    low, high = latency.RANGE
    assert row["predicted"] * low <= row["published"] <= row["predicted"] * high
    for wrong in (2 * row["published"], row["published"] / 2):
        assert not (row["predicted"] * low <= wrong <= row["predicted"] * high)


def test_estimate_returns_the_range_the_benchmark_checks(cnn_int8):
    est = tinyml.estimate(cnn_int8, target="esp32c3")
    assert est.latency_ms_range == pytest.approx((est.latency_ms * latency.RANGE[0], est.latency_ms * latency.RANGE[1]))


def _perturbed(monkeypatch, role: str) -> dict:
    """calibration() after every ``role`` row's published figure is multiplied by 3."""
    import copy

    op_rows, model_rows = copy.deepcopy(published.OP_ROWS), copy.deepcopy(published.MODEL_ROWS)
    element_rows = copy.deepcopy(published.ELEMENT_ROWS)
    for row in op_rows + element_rows:
        if row["role"] == role:
            row["ansi"] *= 3
            row["optimized"] *= 3
    for row in model_rows:
        if row["role"] == role:
            row["ms"] *= 3
    monkeypatch.setattr(published, "OP_ROWS", op_rows)
    monkeypatch.setattr(published, "MODEL_ROWS", model_rows)
    monkeypatch.setattr(published, "ELEMENT_ROWS", element_rows)
    latency.calibration.cache_clear()
    try:
        return {table: latency.calibration(table) for table in published.TABLES}
    finally:
        latency.calibration.cache_clear()


def test_calibration_never_reads_a_held_out_row(monkeypatch):
    clean = {table: latency.calibration(table) for table in published.TABLES}
    assert _perturbed(monkeypatch, "held-out") == clean
    assert {r["role"] for rows in latency.calibration_rows() for r in rows} == {"calibration"}


def test_calibration_does_read_the_calibration_rows(monkeypatch):
    """The wrong input for the test above: changing the calibration rows changes the fit."""
    clean = {table: latency.calibration(table) for table in published.TABLES}
    assert _perturbed(monkeypatch, "calibration") != clean


def test_each_figure_is_predicted_with_its_own_esp_nn_table():
    """ESP-NN's S3 1x1 convolution got faster from the 2022-01 table to v1.2.1's; each S3 figure uses its own."""
    old, new = (latency.calibration(t)["esp32s3"][OPTIMIZED]["CONV_2D/1x1"] for t in ("2022-01", "v1.2.1"))
    assert old == pytest.approx(428675 / 409600) and new == pytest.approx(331008 / 409600)
    rows = {r["id"]: r for r in latency.comparison()}
    s3_2022, s3_121 = rows["person detection esp32s3 esp-nn"], rows["person detection esp32s3 esp-nn 1.2.1"]
    assert (s3_2022["table"], s3_121["table"]) == ("2022-01", "v1.2.1")
    assert s3_2022["predicted"] > s3_121["predicted"]
    assert s3_121["predicted"] == pytest.approx(
        latency.graph_ms(published.PERSON_DETECTION_OPS, "esp32s3", 240, True))  # estimate()'s default table
    with pytest.raises(ConfigError, match="no ESP-NN kernel table"):
        latency.calibration("2019")


def test_kernel_rows_count_macs_as_esp_nn_s_tests_shape_them():
    """Depthwise rows count channels x multiplier outputs (the 5x5 row: 4 channels x 8); the 3x3 conv reads 10x10."""
    by_name = {r["id"]: r for r in published.OP_ROWS if r["table"] == "v1.2.1"}
    assert latency._op_row_macs(by_name["s3 v1.2.1 depthwise 5x5 4x8 12x12 pad1"]) == (80000, 3200)
    assert latency._op_row_macs(by_name["s3 v1.2.1 conv 3x3 3->64 10x10"]) == (110592, 4096)
    assert latency._op_row_macs(by_name["s3 v1.2.1 fully connected 271x3"]) == (813, 3)


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
    # Before, a clock without a target was ignored: the host's arena judged, as if at 80 MHz.
    with pytest.raises(ConfigError, match=r"cpu_mhz=80\) is the clock of target='s estimate: give target="):
        tinyml.assert_budget(cnn_int8, arena_kb=64, cpu_mhz=80)


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


def test_a_row_whose_figures_come_from_two_places_names_both(pytester):
    """Before, the row took the last call's where: an esp32 estimate's arena and latency sat in a row labelled
    where=host (beside a host accuracy), and a sim latency in one labelled where=estimate."""
    pytester.makepyfile(f'''
        import numpy as np
        import pytest_tinyml as tinyml
        M = {str(BUILTIN)!r}
        X = np.random.default_rng(3).uniform(0, 16, (20,) + tinyml.TFLiteArtifact.from_path(M).inputs[0].shape[1:]).astype(np.float32)
        def test_estimate_then_host():
            tinyml.assert_budget(M, arena_kb=64, latency_ms=100, target="esp32")
            tinyml.assert_accuracy_drop(M, M, X, tinyml.outputs(M, X).argmax(axis=1))
        def test_estimate_then_host_budget():
            tinyml.assert_budget(M, arena_kb=64, latency_ms=100, target="esp32")
            tinyml.assert_budget(M, arena_kb=64)
    ''')
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--tinyml-report={report}", "-n", "0")
    result.assert_outcomes(passed=2)
    import json

    rows = {row["test"].split("::")[-1]: row for row in json.loads(report.read_text())["tests"]}
    mixed = rows["test_estimate_then_host"]
    assert mixed["where"] == "estimate+host"
    assert mixed["where_of"]["arena_kb"] == mixed["where_of"]["latency_ms"] == "estimate"
    assert mixed["where_of"]["accuracy"] == "host"
    # The second budget replaces every figure of the first: one place, no where_of.
    replaced = rows["test_estimate_then_host_budget"]
    assert replaced["where"] == "host" and "where_of" not in replaced and "latency_ms" not in replaced
    result.stdout.fnmatch_lines(["*test_estimate_then_host *estimate+host*"])


def test_non_mac_ops_cost_esp_nn_s_published_per_element_figures():
    """ADD on the S3: ESP-NN's optimized figure where it runs, its ANSI C one on plain C or the reference
    kernel, scaled to another chip by the reference speed; an op without a benchmark gets the assumed rate."""
    def kernel_ticks(op, work, chip, path):
        return latency.op_cycles(op, 0, work, chip, path) - latency.OVERHEAD_CYCLES

    assert kernel_ticks("ADD", 1615, "esp32s3", OPTIMIZED) == pytest.approx(74440)
    assert kernel_ticks("ADD", 1615, "esp32s3", REFERENCE) == pytest.approx(281337)
    assert kernel_ticks("ADD", 1615, "esp32s3", REFERENCE) != pytest.approx(74440)
    scale = latency.calibration()["esp32"]["scale"]
    assert scale > 1  # the esp32's reference kernels take more cycles than the S3's
    assert kernel_ticks("ADD", 1615, "esp32", PLAIN_C) == pytest.approx(281337 * scale)
    assert kernel_ticks("RESHAPE", 100, "esp32", REFERENCE) == pytest.approx(latency.ELEMENT_CYCLES * 100 * scale)


def test_pooling_costs_per_input_element(cnn_int8):
    """The pool's work is the elements it reads (1x4x4x4 in, 1x2x2x4 out), not its outputs."""
    est = tinyml.estimate(cnn_int8, target="esp32s3")
    pool = next(o for o in est.per_op if o.op == "AVERAGE_POOL_2D")
    assert pool.shape == (1, 2, 2, 4)
    expected = latency.op_cycles("AVERAGE_POOL_2D", 0, 64, "esp32s3", pool.kernel) / (240 * 1000)
    assert pool.ms == pytest.approx(expected)
    assert pool.ms != pytest.approx(latency.op_cycles("AVERAGE_POOL_2D", 0, 16, "esp32s3", pool.kernel) / 240e3)


def _benchmark_main():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "estimate.py"
    spec = importlib.util.spec_from_file_location("estimate_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_benchmark_prints_every_published_figure_held_out_marked_and_the_worst(capsys):
    _benchmark_main()()
    out = capsys.readouterr().out
    rows = latency.comparison()
    width = out.splitlines()[0].index("table") - 3  # the figure column; the table column is 8 wide, right-aligned
    by_id = {line[:width].strip(): line for line in out.splitlines()[1:]}
    for r in rows:  # one line per figure, with its error and its role
        line = by_id[r["id"]]
        assert line.rstrip().endswith("HELD-OUT" if r["role"] == "held-out" else "calibration"), line
        assert f"{r['error']:+.1%}" in line
    worst = max(_held_out("model"), key=lambda r: abs(r["error"]))
    assert f"worst held-out end-to-end error: {worst['error']:+.1%} ({worst['id']})" in out


def test_benchmark_worst_line_follows_the_held_out_rows(capsys, monkeypatch):
    """The wrong input: a held-out figure 3x off must become the printed worst; a calibration row never is."""
    rows = latency.comparison()
    fake = [dict(r) for r in rows]
    far = next(r for r in fake if r["kind"] == "model" and r["role"] == "held-out")
    far["error"] = 2.0
    calibrated = next(r for r in fake if r["kind"] == "model" and r["role"] == "calibration")
    calibrated["error"] = 9.0
    monkeypatch.setattr(latency, "comparison", lambda: fake)
    _benchmark_main()()
    out = capsys.readouterr().out
    assert f"worst held-out end-to-end error: +200.0% ({far['id']})" in out


@pytest.mark.parametrize("maker", ["mlp_float_bytes", "hybrid_conv_bytes"])
def test_a_model_that_is_not_int8_is_refused_not_estimated(maker):
    # The latency model is calibrated on int8 kernels only: a float32 or hybrid model must not get a figure.
    import runtime_models as models

    with pytest.raises(ConfigError, match="int8 models only.*convert with the int8 recipe"):
        tinyml.estimate(getattr(models, maker)(), target="esp32")
