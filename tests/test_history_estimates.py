"""Estimates in the history: kept in estimates/, never a latency record, never a baseline of a measurement."""

from __future__ import annotations

import json
import warnings

import pytest

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history.estimates import EstimateLog, EstimateRecord
from pytest_tinyml.history.store import HistoryStore, HistoryWarning, Record, incompatibility

S3 = {"chip": "esp32s3", "cpu_mhz": 240, "firmware_hash": "aa", "where": "device"}


def _board_record(median: float) -> Record:
    record = Record.new(test_id="t.py::test_b", kind="board", samples_us=[median] * 5, context={"board": S3})
    record.verdict = {"verdict": "unchanged", "accepted": True}
    return record


def test_an_estimate_is_refused_as_a_latency_record():
    with pytest.raises(HistoryError, match="an estimate is not a latency measurement"):
        Record.new(test_id="t", kind="board", samples_us=[5000.0], context={"board": {**S3, "where": "estimate"}})
    with pytest.raises(HistoryError, match="latency kind"):
        Record.new(test_id="t", kind="estimate", samples_us=[5000.0], context={})


def test_an_estimate_in_the_records_never_joins_a_measurements_baseline(tmp_path):
    """The mix that must not happen: an estimate written where the gate reads (the measurement's own series)."""
    store = HistoryStore(tmp_path)
    for median in (1000.0, 1002.0, 999.0):
        store.add(_board_record(median))
    now = _board_record(1001.0)
    series_dir = tmp_path / "records" / store._series_dir(now)
    forged = _board_record(5000.0).to_dict()
    forged["board"]["where"] = "estimate"
    (series_dir / "99999999999999999999-forged.json").write_text(json.dumps(forged))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        window = store.window(now, 10)
    assert [r.stats.median for r in window.runs] == [1000.0, 1002.0, 999.0]
    assert any(issubclass(w.category, HistoryWarning) and "estimate" in str(w.message) for w in caught)
    assert not (series_dir / "99999999999999999999-forged.json").exists()  # moved to corrupt/, kept


def test_incompatibility_never_pairs_an_estimate():
    a, b = _board_record(1000.0), _board_record(1000.0)
    assert incompatibility(a, b) is None
    b.where = "estimate"
    assert incompatibility(a, b) == "an estimate is never compared by the latency gate"
    assert incompatibility(b, a) == incompatibility(b, b) == "an estimate is never compared by the latency gate"


def test_estimate_records_live_apart_and_carry_the_ratio(tmp_path):
    log = EstimateLog(tmp_path)
    est = {"latency_ms": 4.0, "arena_bytes": 1000}
    log.add(EstimateRecord.new(test_id="t", target="esp32s3", model_sha256="ab" * 32, estimate=est))
    log.add(EstimateRecord.new(test_id="t", target="esp32s3", model_sha256="ab" * 32, estimate=est,
                               measured={"where": "device", "board": S3, "latency_ms": 5.0, "arena_bytes": 1100}))
    found = log.records("esp32s3")
    assert [r.ratios for r in found] == [None, {"latency": 1.25, "arena": 1.1}]
    assert found[1].board_key == "esp32s3/None/240/aa"
    assert HistoryStore(tmp_path).records() == []  # the gate's records never see them
    assert (tmp_path / "estimates" / "esp32s3").is_dir() and not (tmp_path / "records").exists()


@pytest.mark.parametrize("measured", [
    {"where": "sim", "board": {"chip": "host-sim", "where": "sim"}, "latency_ms": 1.0, "arena_bytes": 1},
    {"where": "device", "board": {"chip": "esp32c3", "where": "device"}, "latency_ms": 1.0, "arena_bytes": 1},
])
def test_only_a_device_of_the_chip_measures_its_estimate(measured):
    with pytest.raises(HistoryError, match="only a device of chip esp32s3"):
        EstimateRecord.new(test_id="t", target="esp32s3", model_sha256="ab" * 32,
                           estimate={"latency_ms": 1.0, "arena_bytes": 1}, measured=measured)


def test_a_latency_record_is_not_an_estimate_record(tmp_path):
    with pytest.raises(ValueError, match="not a schema-1 estimate record"):
        EstimateRecord.from_dict(_board_record(1.0).to_dict())
    bad = tmp_path / "estimates" / "esp32s3"
    bad.mkdir(parents=True)
    (bad / "1-x.json").write_text("{not json")
    with pytest.warns(HistoryWarning, match="unreadable estimate record"):
        assert EstimateLog(tmp_path).records() == []
