"""pytest-tinyml estimate calibrate: board ratios in the history -> a per-chip latency scale estimate() applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.cli import main
from pytest_tinyml.errors import EstimateCalibrationError
from pytest_tinyml.estimation import calibration
from pytest_tinyml.history.estimates import EstimateLog, EstimateRecord

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"
S3 = {"chip": "esp32s3", "cpu_mhz": 240, "firmware_hash": "aa", "where": "device"}


def _run(target: str, ratio: float | None, sha: str = "ab", board: dict = S3,
         estimator: str | None = None) -> EstimateRecord:
    from pytest_tinyml.estimation.latency import fingerprint

    est = {"latency_ms": 10.0, "arena_bytes": 1000, "estimator": estimator or fingerprint()}
    measured = None if ratio is None else {"where": "device", "board": {**board, "chip": target},
                                           "latency_ms": 10.0 * ratio, "arena_bytes": 1100}
    return EstimateRecord.new(test_id="t", target=target, model_sha256=sha * 32, estimate=est, measured=measured)


def test_scale_is_the_median_ratio_of_that_chips_board_runs_only():
    records = [_run("esp32s3", r, sha) for r, sha in ((1.1, "aa"), (1.2, "bb"), (1.4, "cc"), (1.2, "aa"))]
    records += [_run("esp32s3", None), _run("esp32c3", 3.0), _run("esp32c3", 3.0), _run("esp32c3", 3.0)]
    cal = calibration.from_records(records, "esp32s3")
    assert cal.latency_scale == pytest.approx(1.2) and cal.latency_ratio_range == pytest.approx((1.1, 1.4))
    assert (cal.runs, cal.models, cal.boards) == (4, 3, 1) and cal.arena_ratio == pytest.approx(1.1)
    assert cal.latency_spread == pytest.approx(1.4826 * 0.05)
    assert cal.describe().startswith("calibrated from 4 board runs (3 models, 1 board): latency x1.200")


def test_no_board_runs_and_too_few_runs_are_clear_errors():
    with pytest.raises(EstimateCalibrationError, match="no board runs of esp32s3.*1 estimate.*board runs exist for "
                                                       "esp32c3"):
        calibration.from_records([_run("esp32s3", None), _run("esp32c3", 2.0)], "esp32s3")
    with pytest.raises(EstimateCalibrationError, match="only 2 board run"):
        calibration.from_records([_run("esp32s3", 1.0), _run("esp32s3", 1.1)], "esp32s3")
    assert calibration.from_records([_run("esp32s3", 1.0), _run("esp32s3", 1.1)], "esp32s3", min_runs=2).runs == 2


def test_estimate_applies_a_calibration_file_and_says_so(tmp_path):
    raw = tinyml.estimate(MODEL, target="esp32s3", calibration=None)
    path = calibration.write(tmp_path / "cal.json", [calibration.from_records(
        [_run("esp32s3", r, sha) for r, sha in ((2.0, "aa"), (2.1, "bb"), (1.9, "cc"))], "esp32s3")])
    cal = tinyml.estimate(MODEL, target="esp32s3", calibration=path)
    assert cal.latency_ms == pytest.approx(2.0 * raw.latency_ms)
    assert sum(o.ms for o in cal.per_op) == pytest.approx(cal.latency_ms)
    low, high = cal.latency_ms_range
    assert low < cal.latency_ms < high and (high - low) < (raw.latency_ms_range[1] - raw.latency_ms_range[0]) * 2
    assert cal.calibration.startswith("calibrated from 3 board runs") and cal.calibration in cal.summary()
    assert raw.calibration is None and "calibrated" not in raw.summary()
    assert cal.arena_bytes == raw.arena_bytes  # the arena ratio is reported, not applied
    # The wrong input: a file without the chip, a corrupt file, a missing file.
    with pytest.raises(EstimateCalibrationError, match="no entry for esp32c3"):
        tinyml.estimate(MODEL, target="esp32c3", calibration=path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 1, "chips": {"esp32s3": {"chip": "esp32s3", "latency_scale": -1}}}))
    with pytest.raises(EstimateCalibrationError, match="unreadable"):
        tinyml.estimate(MODEL, target="esp32s3", calibration=bad)
    with pytest.raises(EstimateCalibrationError, match="no calibration file"):
        tinyml.estimate(MODEL, target="esp32s3", calibration=tmp_path / "none.json")


def test_cli_calibrate_writes_the_file_and_keeps_other_chips(tmp_path, capsys):
    log = EstimateLog(tmp_path / "h")
    for ratio, sha in ((1.5, "aa"), (1.6, "bb"), (1.4, "cc")):
        log.add(_run("esp32s3", ratio, sha))
    out = tmp_path / "cal.json"
    calibration.write(out, [calibration.Calibration("esp32", 3.0, 0.1, (2.9, 3.1), None, 5, 3, 1)])
    assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "esp32s3" in text and "1.500" in text and f"wrote {out}" in text
    assert calibration.load(out)["esp32s3"].runs == 3 and calibration.load(out)["esp32"].latency_scale == 3.0
    assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "--cache-dir", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "calibration.json").is_file()


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("nothing", [], "no estimates in the history"),
    ("estimates only", [], "no board runs in"),
    ("two runs", [], "only 2 board run"),
    ("two runs", ["--chip", "esp32c3"], "no board runs of esp32c3"),
])
def test_cli_calibrate_errors_name_the_problem(tmp_path, capsys, setup, args, message):
    log = EstimateLog(tmp_path / "h")
    if setup == "estimates only":
        log.add(_run("esp32s3", None))
    if setup == "two runs":
        log.add(_run("esp32s3", 1.0))
        log.add(_run("esp32s3", 1.1))
    out = tmp_path / "cal.json"
    assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "-o", str(out), *args]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("corrupt", [{"ratios": {"latency": "abc"}}, {"ratios": {"latency": -1.0}},
                                     {"ratios": {"latency": float("inf")}}, {"ratios": {"latency": float("nan")}},
                                     {"ratios": [1.2]}, {"measured": [1]}, {"target": 5}, {"time": 3},
                                     {"measured": {"where": "device", "board": "esp32s3"}},
                                     {"measured": {"where": "device", "board": {"chip": "esp32s3"}, "run_id": [1]}}])
def test_cli_calibrate_skips_a_corrupt_record_naming_it(tmp_path, capsys, corrupt):
    """Before: a negative or infinite ratio was written as the chip's scale (-1.0, NaN: every later estimate
    then refused the file), a NaN one gave the range nan-nan, and a wrong type crashed the command."""
    from pytest_tinyml.history.store import HistoryWarning

    log = EstimateLog(tmp_path / "h")
    for ratio, sha in ((1.5, "aa"), (1.6, "bb"), (1.4, "cc")):
        log.add(_run("esp32s3", ratio, sha))
    bad = log.add(_run("esp32s3", 1.5, "dd"))
    bad.write_text(json.dumps({**json.loads(bad.read_text()), **corrupt}))
    out = tmp_path / "cal.json"
    with pytest.warns(HistoryWarning, match=f"unreadable estimate record {bad}"):
        assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "-o", str(out)]) == 0
    cal = calibration.load(out)["esp32s3"]
    assert (cal.runs, cal.latency_scale, cal.latency_ratio_range) == (3, 1.5, (1.4, 1.6))


def test_ratios_taken_against_another_latency_model_never_calibrate_this_one(tmp_path):
    """A ratio is measured / the estimate of the latency model of its day. Before, ratios against an older
    model's constants (here: estimates half of today's, ratio 2.0) scaled today's estimate 2x."""
    from pytest_tinyml.estimation.latency import fingerprint

    older = "0" * 12
    assert fingerprint() != older and len(fingerprint()) == 12
    stale = [_run("esp32s3", 2.0, sha, estimator=older) for sha in ("aa", "bb", "cc")]
    with pytest.raises(EstimateCalibrationError, match="3 board run.* another latency model than this"):
        calibration.from_records(stale, "esp32s3")
    fresh = [_run("esp32s3", 1.0, sha) for sha in ("aa", "bb", "cc")]
    assert calibration.from_records(stale + fresh, "esp32s3").latency_scale == 1.0
    # assert_budget records it: test_budget_board.py::test_the_session_board_measures_its_chip_and_estimates_stay_apart
    # calibrates from what a real run wrote.


def test_cli_min_runs_must_be_positive(tmp_path):
    with pytest.raises(SystemExit):
        main(["estimate", "calibrate", "--history", str(tmp_path), "--min-runs", "0"])


def test_assert_budget_uses_the_cache_dirs_calibration_and_says_so(request, tmp_path, monkeypatch):
    import dataclasses

    from pytest_tinyml import options
    from pytest_tinyml.errors import TinyMLAssertionError

    resolved = dataclasses.replace(options.of(request.config), cache_dir=str(tmp_path / "cache"))
    monkeypatch.setitem(request.config.stash, options._stash_key(), resolved)
    raw = tinyml.estimate(MODEL, target="esp32s3")
    assert raw.calibration is None  # no calibration.json in this cache dir yet
    calibration.write(tmp_path / "cache" / calibration.FILE_NAME, [calibration.from_records(
        [_run("esp32s3", r, sha) for r, sha in ((3.0, "aa"), (3.1, "bb"), (2.9, "cc"))], "esp32s3")])
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(MODEL, latency_ms=2.5 * raw.latency_ms, target="esp32s3")  # the raw figure passes
    text = str(info.value)
    assert "calibrated estimate" in text and "calibrated from 3 board runs" in text and "where=estimate" in text
    figures = tinyml.assert_budget(MODEL, latency_ms=3.5 * raw.latency_ms, target="esp32s3")
    assert figures["latency_ms"] == pytest.approx(3.0 * raw.latency_ms)
    c3 = tinyml.estimate(MODEL, target="esp32c3")  # the file has no esp32c3: uncalibrated
    assert c3.calibration is None and c3.latency_ms == tinyml.estimate(MODEL, "esp32c3", calibration=None).latency_ms


@pytest.mark.parametrize(("field", "value"), [
    ("latency_scale", float("inf")), ("latency_scale", 0), ("latency_spread", -0.1), ("latency_spread", None),
    ("latency_ratio_range", [1.0]), ("runs", 0), ("models", 1.5), ("arena_ratio", -1.0), ("chip", "esp32"),
])
def test_an_implausible_calibration_file_is_refused_naming_the_field(tmp_path, field, value):
    path = calibration.write(tmp_path / "cal.json", [calibration.Calibration("esp32s3", 1.2, 0.01, (1.1, 1.3), 1.0,
                                                                             4, 3, 1)])
    data = json.loads(path.read_text())
    data["chips"]["esp32s3"][field] = value
    path.write_text(json.dumps(data).replace("Infinity", "1e999"))
    with pytest.raises(EstimateCalibrationError, match=f"unreadable.*esp32s3: .*{field if field != 'chip' else 'names'}"):
        tinyml.estimate(MODEL, target="esp32s3", calibration=path)


@pytest.mark.parametrize("value", [True, 1.2, {"esp32s3": 1.2}])
def test_calibration_must_be_auto_a_path_or_none(value):
    with pytest.raises(EstimateCalibrationError, match="give 'auto'"):
        tinyml.estimate(MODEL, target="esp32s3", calibration=value)


def test_cli_chip_is_read_as_estimate_reads_a_target(tmp_path, capsys):
    log = EstimateLog(tmp_path / "h")
    for ratio, sha in ((1.5, "aa"), (1.6, "bb"), (1.4, "cc")):
        log.add(_run("esp32s3", ratio, sha))
    out = tmp_path / "cal.json"
    assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "--chip", "ESP32-S3", "-o", str(out)]) == 0
    assert list(calibration.load(out)) == ["esp32s3"]
    assert main(["estimate", "calibrate", "--history", str(tmp_path / "h"), "--chip", "stm32", "-o", str(out)]) == 2
    assert "no latency model for target 'stm32'" in capsys.readouterr().err
