"""assert_budget(target=) with a board: measured on a board of that chip, the estimate otherwise, and which.

The "esp32s3 board" is a TEST build of the firmware's real core (``build_host_as``: tinyml-host compiled with
``-DTINYML_HOST_CHIP``) running the real TFLite Micro engine on the host, opened over a real pty as a serial
board (its ``--build`` is the device build id, so the freshness check passes without flashing). Its figures
are the host's; what is tested is that figures are routed by the board's reported chip. The sim is the real
``--tinyml-board=sim``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.errors import ConfigError, TinyMLAssertionError

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"


@pytest.fixture(scope="module", autouse=True)
def _extensions_loaded_before_pytester():
    """pytester restores sys.modules after each test; a C extension (numpy, the flatbuffer schema) first loaded
    inside such a test would be dropped and cannot load again in this process. Load them first."""
    tinyml.estimate(MODEL, target="esp32s3", calibration=None)


@pytest.fixture(autouse=True)
def _history_in_tmp(request, tmp_path, monkeypatch):
    """The stand-in's figures are the host's, labelled esp32s3: keep them out of this checkout's history, where
    `pytest-tinyml estimate calibrate` would take them for board runs."""
    import dataclasses

    from pytest_tinyml import options

    resolved = dataclasses.replace(options.of(request.config), history_dir=str(tmp_path / "outer-history"))
    monkeypatch.setitem(request.config.stash, options._stash_key(), resolved)


@pytest.fixture(scope="module")
def standin_binaries(tmp_path_factory):
    from firmware_host import build_host_as

    out = tmp_path_factory.mktemp("standin")
    return {"esp32s3": build_host_as("esp32s3", out, cpu_mhz=240), "esp32c3": build_host_as("esp32c3", out)}


@pytest.fixture
def standin(standin_binaries, tmp_path):
    """``standin(chip)`` -> the running stand-in's pty path (a serial port) and an open ``Board`` on it."""
    from pytest_tinyml.board import flash, sim
    from pytest_tinyml.board.connect import open_board
    from pytest_tinyml.options import parse_board

    fw = flash.locate_firmware_dir(None)
    started = []

    def start(chip: str, *, open_it: bool = True):
        process = sim.start(standin_binaries[chip], flash.device_build_id(fw), cache_dir=tmp_path / "cache",
                            log_dir=tmp_path / "log", builtin_model=sim.builtin_model(fw))
        board = open_board(parse_board(process.port), skip_flash=True, timeout=60) if open_it else None
        started.append((board, process))
        return process.port, board

    yield start
    for board, process in started:
        if board is not None:
            board.close()
        process.stop()


@pytest.fixture
def sim_board(tmp_path):
    from pytest_tinyml.board.connect import open_board
    from pytest_tinyml.options import parse_board

    board = open_board(parse_board("sim"), cache_dir=str(tmp_path / "cache"), timeout=60)
    yield board
    board.close()


def test_a_board_of_the_target_is_measured_not_estimated(standin, request):
    _, board = standin("esp32s3")
    assert board.identity.chip == "esp32s3" and board.where == "device"
    est = tinyml.estimate(MODEL, target="esp32s3", calibration=None)
    figures = tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32s3", board=board)
    measured = board.benchmark(MODEL, runs=5)
    assert figures["arena_kb"] == measured.arena_kb != est.arena_kb  # the board's figure (here the host's)
    assert figures["latency_ms"] != est.latency_ms
    # The wrong input: a budget the estimate meets but the measured arena does not must fail, and say where.
    assert measured.arena_kb > est.arena_kb
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(MODEL, arena_kb=est.arena_kb + 0.01, target="esp32s3", board=board)
    text = str(info.value)
    assert "measured on esp32s3 device" in text and "where=device" in text and "measured / estimate" in text
    assert tinyml.assert_budget(MODEL, arena_kb=est.arena_kb + 0.01, target="esp32s3", board=False)
    from pytest_tinyml import options
    from pytest_tinyml.history.estimates import EstimateLog

    kept = EstimateLog(options.of(request.config).history_dir).records("esp32s3")
    assert [r.measured is not None for r in kept] == [True, True, False]  # two on the board, one estimate only


def test_a_target_spelled_as_the_estimate_accepts_it_is_measured_on_that_board(standin):
    # estimate() takes "ESP32-S3"; the board says "esp32s3". Before, the board was refused as another chip (and
    # the session's board silently left to the estimate) while estimate() took the same spelling.
    _, board = standin("esp32s3")
    measured = board.benchmark(MODEL, runs=2)
    for spelling in ("ESP32-S3", "ESP32S3"):
        figures = tinyml.assert_budget(MODEL, arena_kb=64, target=spelling, board=board)
        assert figures["arena_kb"] == measured.arena_kb
    with pytest.raises(ConfigError, match="no latency model for target 'esp32s2'"):
        tinyml.assert_budget(MODEL, arena_kb=64, target="esp32s2", board=board)


def test_a_board_result_of_the_model_counts_and_of_another_model_is_refused(standin, cnn_int8):
    _, board = standin("esp32s3")
    result = board.benchmark(MODEL, runs=5)
    figures = tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32s3", board=result)
    assert figures["arena_kb"] == result.arena_kb
    with pytest.raises(ConfigError, match="benchmark the same artifact"):
        tinyml.assert_budget(cnn_int8, arena_kb=64, target="esp32s3", board=result)


def test_a_board_of_another_chip_never_measures_the_target(standin):
    _, board = standin("esp32c3")
    with pytest.raises(ConfigError, match="reports chip esp32c3, the budget is for target='esp32s3'"):
        tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32s3", board=board)
    figures = tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32c3", board=board)
    assert figures["arena_kb"] == board.benchmark(MODEL, runs=2).arena_kb


def test_the_sim_is_never_a_target_measurement(sim_board):
    assert sim_board.identity.chip == "host-sim" and sim_board.where == "sim"
    est = tinyml.estimate(MODEL, target="esp32s3")
    figures = tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32s3", board=sim_board)
    assert figures["arena_kb"] == est.arena_kb and figures["latency_ms"] == est.latency_ms
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(MODEL, arena_kb=est.arena_kb - 0.1, target="esp32s3", board=sim_board)
    assert "the sim (chip host-sim) is not an esp32s3" in str(info.value) and "where=estimate" in str(info.value)
    # Without a target, the sim's own figures, labelled sim.
    own = tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, board=sim_board)
    assert own["arena_kb"] == sim_board.benchmark(MODEL, runs=2).arena_kb != est.arena_kb
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(MODEL, arena_kb=own["arena_kb"] - 0.1, board=sim_board)
    assert "measured on the sim (host-sim)" in str(info.value) and "64-bit arena" in str(info.value)
    assert "where=sim" in str(info.value)


def test_board_argument_must_be_a_board():
    with pytest.raises(ConfigError, match="board= must be a board"):
        tinyml.assert_budget(MODEL, arena_kb=64, target="esp32s3", board="/dev/ttyUSB0")


SESSION_TEST = f'''
import pytest
import pytest_tinyml as tinyml

@pytest.mark.parametrize("i", range(3))
def test_s3(i):
    tinyml.assert_budget({str(MODEL)!r}, arena_kb=64, latency_ms=1000, target="esp32s3")

def test_c3():
    tinyml.assert_budget({str(MODEL)!r}, arena_kb=64, latency_ms=1000, target="esp32c3")

def test_measured_on_the_board(tinyml_board):
    tinyml_board.benchmark({str(MODEL)!r}, runs=5)
'''


@pytest.mark.slow
def test_the_session_board_measures_its_chip_and_estimates_stay_apart(standin, pytester, tmp_path):
    """--tinyml-board: the esp32s3 tests are measured on it, the esp32c3 one estimated; the history keeps the
    estimates (with the ratios) apart from the measurements, and neither is ever the other's baseline."""
    port, _ = standin("esp32s3", open_it=False)
    pytester.makepyfile(test_budget=SESSION_TEST)
    history, report = tmp_path / "history", tmp_path / "report.json"
    args = ["-p", "no:cacheprovider", "-n", "0", f"--tinyml-board={port}", "--tinyml-skip-flash",
            f"--tinyml-history={history}", f"--tinyml-cache-dir={tmp_path / 'cache'}", f"--tinyml-report={report}"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=5)
    rows = {row["test"].split("::")[-1]: row for row in json.loads(report.read_text())["tests"]}
    s3 = rows["test_s3[0]"]
    assert s3["where"] == "device" and s3["chip"] == "esp32s3" and s3["target"] == "esp32s3"
    assert s3["latency_ratio"] == pytest.approx(s3["latency_ms"] / s3["estimate_latency_ms"])
    assert rows["test_c3"]["where"] == "estimate" and "latency_ratio" not in rows["test_c3"]

    from pytest_tinyml.history.estimates import EstimateLog
    from pytest_tinyml.history.store import HistoryStore

    estimates = EstimateLog(history).records()
    measured = [e for e in estimates if e.measured is not None]
    assert len(estimates) == 4 and len(measured) == 3 and {e.target for e in measured} == {"esp32s3"}
    assert all(e.measured["board"]["chip"] == "esp32s3" and e.ratios["latency"] > 0 for e in measured)
    assert [e.measured for e in estimates if e.target == "esp32c3"] == [None]
    store = HistoryStore(history)
    records = store.records()
    assert records and all(r.where == "esp32s3" and r.kind == "board" for r in records)
    # Run again: every measurement's baseline holds measurements only.
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=5)
    for record in store.records():
        window = store.window(record, 10)
        assert all(r.where != "estimate" and r.kind == "board" for r in window.runs + window.excursions)
    # Calibrate from those six board runs; estimate() then applies it by default in that cache dir.
    from pytest_tinyml.cli import main

    assert main(["estimate", "calibrate", "--history", str(history), "--cache-dir", str(tmp_path / "cache")]) == 0
    pytester.makepyfile(test_auto=f'''
        import pytest_tinyml as tinyml
        def test_auto():
            est = tinyml.estimate({str(MODEL)!r}, target="esp32s3")
            assert est.calibration.startswith("calibrated from 6 board runs (1 model, 1 board)")
            assert tinyml.estimate({str(MODEL)!r}, target="esp32c3").calibration is None
    ''')
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=6)
    rows = {row["test"].split("::")[-1]: row for row in json.loads(report.read_text())["tests"]}
    # Beside a measurement the ratio is to the uncalibrated estimate: calibrating again never compounds.
    raw = tinyml.estimate(MODEL, target="esp32s3", cpu_mhz=240, calibration=None)
    assert rows["test_s3[1]"]["estimate_latency_ms"] == pytest.approx(raw.latency_ms)
    assert "estimate_calibration" not in rows["test_s3[1]"] and "estimate_calibration" not in rows["test_c3"]


def test_with_the_sim_as_session_board_a_target_budget_is_the_estimate(pytester, tmp_path):
    """--tinyml-board=sim: assert_budget(target=) never starts the sim for it; the row says estimate and why."""
    pytester.makepyfile(test_sim=f'''
        import pytest_tinyml as tinyml
        def test_s3():
            est = tinyml.estimate({str(MODEL)!r}, target="esp32s3")
            figures = tinyml.assert_budget({str(MODEL)!r}, arena_kb=64, latency_ms=1000, target="esp32s3")
            assert figures["latency_ms"] == est.latency_ms
    ''')
    report = tmp_path / "report.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0", "--tinyml-board=sim",
                                           f"--tinyml-cache-dir={tmp_path / 'cache'}", f"--tinyml-report={report}",
                                           f"--tinyml-history={tmp_path / 'history'}")
    result.assert_outcomes(passed=1)
    row = json.loads(report.read_text())["tests"][0]
    assert row["where"] == "estimate" and "board" not in row and "latency_ratio" not in row
    assert not (tmp_path / "cache" / "sim").exists()  # the sim was never built nor started for the budget


def test_a_board_result_that_names_no_model_cannot_judge_a_budget():
    from pytest_tinyml.board import BoardIdentity, BoardResult
    from pytest_tinyml.latency import LatencyStats

    result = BoardResult(LatencyStats.from_samples([900.0]), None, {"where": "device", "chip": "esp32s3"}, None, 1, 0,
                         identity=BoardIdentity(chip="esp32s3", where="device"))
    with pytest.raises(ConfigError, match="does not say which model it ran"):
        tinyml.assert_budget(MODEL, latency_ms=10, target="esp32s3", board=result)


def test_a_board_that_reports_no_arena_cannot_judge_an_arena_budget():
    from pytest_tinyml.board import BoardIdentity, BoardResult
    from pytest_tinyml.latency import LatencyStats
    from pytest_tinyml.runtime import load

    result = BoardResult(LatencyStats.from_samples([900.0]), None, {"where": "device", "chip": "esp32s3"},
                         load(MODEL).sha256, 1, 0, identity=BoardIdentity(chip="esp32s3", where="device"))
    with pytest.raises(ConfigError, match="reports no arena figure"):
        tinyml.assert_budget(MODEL, arena_kb=64, target="esp32s3", board=result)
    assert tinyml.assert_budget(MODEL, latency_ms=1.0, target="esp32s3", board=result)["latency_ms"] == 0.9


def test_a_float_model_on_the_board_is_measured_with_no_estimate_beside_it(standin):
    import runtime_models as models

    float_model = models.mlp_float_bytes()
    with pytest.raises(ConfigError, match="int8 models only"):  # without the board: nothing to judge it on
        tinyml.assert_budget(float_model, latency_ms=1000, target="esp32s3", board=False)
    _, board = standin("esp32s3")
    figures = tinyml.assert_budget(float_model, arena_kb=64, latency_ms=1000, target="esp32s3", board=board)
    assert figures["arena_kb"] == board.benchmark(float_model, runs=2).arena_kb
    with pytest.raises(TinyMLAssertionError) as info:
        tinyml.assert_budget(float_model, arena_kb=figures["arena_kb"] - 0.1, target="esp32s3", board=board)
    assert "no estimate to compare with" in str(info.value) and "where=device" in str(info.value)


def test_one_board_result_judged_by_several_budgets_is_one_calibration_run(standin, request):
    # Before, each assert_budget call over the same BoardResult recorded a ratio of its own, so calibrate
    # counted one benchmark as three runs (and 3 runs met its minimum).
    from pytest_tinyml import options
    from pytest_tinyml.errors import EstimateCalibrationError
    from pytest_tinyml.estimation import calibration
    from pytest_tinyml.history.estimates import EstimateLog

    _, board = standin("esp32s3")
    result = board.benchmark(MODEL, runs=5)
    for budget in (64, 32, 16):
        tinyml.assert_budget(MODEL, arena_kb=budget, latency_ms=1000, target="esp32s3", board=result)
    log = EstimateLog(options.of(request.config).history_dir)
    assert len([r for r in log.records("esp32s3") if r.measured is not None]) == 3
    with pytest.raises(EstimateCalibrationError, match="only 1 board run"):
        calibration.from_records(log.records(), "esp32s3")
    for _ in range(2):  # two more benchmarks are two more runs
        tinyml.assert_budget(MODEL, arena_kb=64, latency_ms=1000, target="esp32s3",
                             board=board.benchmark(MODEL, runs=5))
    assert calibration.from_records(log.records(), "esp32s3").runs == 3
