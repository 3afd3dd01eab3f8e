"""The history on disk: context of each record, baselines, concurrent writers, corrupt files, git info."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history import store as st
from pytest_tinyml.history.store import HistoryStore, HistoryWarning, Record

BOARD = {"chip": "esp32s3", "revision": "v0.2", "cpu_mhz": 240, "firmware_hash": "f1" * 8,
         "idf_version": "v5.4", "tflm_version": "1.0", "esp_nn_version": "1.1", "build_flags": "-O2"}


def board_record(test_id="t.py::test_a", samples=(100.0, 101.0, 99.0), **board) -> Record:
    return Record.new(test_id=test_id, kind="board", samples_us=list(samples),
                      context={"board": {**BOARD, **board}, "model_sha256": "ab" * 32, "recipe": "int8"})


def test_record_keeps_its_context(tmp_path):
    record = board_record()
    assert record.where == "esp32s3" and record.series == "t.py::test_a @ esp32s3"
    assert record.model_sha256 == "ab" * 32 and record.recipe == "int8"
    assert record.board["firmware_hash"] == "f1" * 8 and record.host is None
    assert set(record.git) == {"commit", "dirty"}
    host = Record.new(test_id="t.py::test_b", kind="host", samples_us=[5, 6], context={})
    assert host.where == "host" and {"system", "machine", "cpu_model", "python"} <= set(host.host)
    store = HistoryStore(tmp_path)
    path = store.add(record)
    data = json.loads(path.read_text())
    assert data["samples_us"] == [100.0, 101.0, 99.0] and data["board"]["idf_version"] == "v5.4"
    assert data["time"].endswith("+00:00")
    assert store.records()[0].to_dict() == record.to_dict()


def test_sim_board_is_its_own_place():
    record = Record.new(test_id="t", kind="board", samples_us=[1.0], context={"board": {"where": "host-sim",
                                                                                        "chip": "esp32s3"}})
    assert record.where == "sim"


@pytest.mark.parametrize(("kind", "samples", "match"), [
    ("gpu", [1.0], "'board' or 'host'"),
    ("host", [], "no latency samples"),
    ("host", [1.0, float("nan")], "finite"),
    ("host", ["fast"], "numbers in microseconds"),
])
def test_bad_observations_are_typed_errors(kind, samples, match):
    with pytest.raises(HistoryError, match=match):
        Record.new(test_id="t", kind=kind, samples_us=samples, context={})


def test_baseline_is_the_last_saved_for_the_same_build(tmp_path):
    store = HistoryStore(tmp_path)
    first, second = board_record(samples=[1, 2]), board_record(samples=[3, 4])
    assert store.baseline_for(first) == (None, "no baseline yet for t.py::test_a @ esp32s3")
    store.save_baseline(first, "v1")
    store.save_baseline(second)
    assert store.baseline_for(first)[0].samples_us == [3.0, 4.0]
    named = store.baseline_for(first, "v1")[0]
    assert named.samples_us == [1.0, 2.0] and named.baseline_name == "v1"
    assert store.baseline_for(first, "v9") == (None, "no baseline 'v9' yet for t.py::test_a @ esp32s3")


def test_other_firmware_build_is_not_compared_and_says_why(tmp_path):
    store = HistoryStore(tmp_path)
    store.save_baseline(board_record())
    baseline, why = store.baseline_for(board_record(firmware_hash="e2" * 8))
    assert baseline is None
    assert why.startswith("not compared with baseline of ")
    assert f"firmware build differs: firmware_hash {'f1' * 8} (baseline) vs {'e2' * 8} (now)" in why
    assert store.baseline_for(board_record())[0] is not None  # the old build still has its baseline


def test_other_chip_is_another_series_and_host_differences_are_named():
    assert st.incompatibility(board_record(), board_record(chip="esp32")).startswith("ran elsewhere")
    a = Record.new(test_id="t", kind="host", samples_us=[1.0], context={})
    b = Record.from_dict(a.to_dict())
    b.host = {**b.host, "cpu_model": "Some Other CPU"}
    assert st.incompatibility(a, b) == (
        f"host machine differs: cpu_model {a.host['cpu_model']} (baseline) vs Some Other CPU (now)")


def test_corrupt_record_is_moved_aside_with_a_warning(tmp_path):
    store = HistoryStore(tmp_path)
    good = store.add(board_record(samples=[1, 2]))
    bad = store.add(board_record(samples=[3, 4]))
    bad.write_text('{"schema": 1, "test_id": "t.py::test_a", "samp')
    with pytest.warns(HistoryWarning, match=f"corrupt latency history file {bad}.*moved it to"):
        records = store.records()
    assert [r.samples_us for r in records] == [[1.0, 2.0]]
    assert good.exists() and not bad.exists()
    moved = list((tmp_path / "corrupt").iterdir())
    assert len(moved) == 1 and moved[0].read_text().endswith('"samp')  # kept for inspection, not dropped
    assert [r.samples_us for r in store.records()] == [[1.0, 2.0]]  # no second warning


def test_record_with_wrong_content_is_corrupt_too(tmp_path):
    store = HistoryStore(tmp_path)
    path = store.add(board_record())
    data = json.loads(path.read_text())
    data["samples_us"] = []
    path.write_text(json.dumps(data))
    with pytest.warns(HistoryWarning, match="no latency samples"):
        assert store.records() == []


def test_corrupt_baseline_is_moved_aside(tmp_path):
    store = HistoryStore(tmp_path)
    path = store.save_baseline(board_record())
    path.write_text("not json")
    with pytest.warns(HistoryWarning, match="corrupt latency history file .*baselines"):
        assert store.baseline_for(board_record())[0] is None


WRITER = textwrap.dedent("""
    import sys
    from pytest_tinyml.history.store import HistoryStore, Record
    store = HistoryStore(sys.argv[1])
    for i in range(40):
        record = Record.new(test_id=f"t.py::test_{sys.argv[2]}", kind="host", samples_us=[i, i + 1.0], context={})
        store.add(record)
        store.save_baseline(record)
""")


def test_two_processes_writing_at_once(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name]) for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    store = HistoryStore(tmp_path)
    records = store.records()
    assert len(records) == 80
    assert {r.test_id for r in records} == {"t.py::test_a", "t.py::test_b"}
    assert not list(Path(tmp_path).glob("**/.tmp-*")) and not (Path(tmp_path) / "corrupt").exists()
    for name in ("a", "b"):
        baseline = store.baseline_for(Record.new(test_id=f"t.py::test_{name}", kind="host", samples_us=[1],
                                                 context={}))[0]
        assert baseline.samples_us == [39.0, 40.0]


def test_git_info_without_a_repository_or_without_git(tmp_path, monkeypatch):
    st.git_info.cache_clear()
    assert st.git_info(str(tmp_path)) == {"commit": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    st.git_info.cache_clear()
    assert st.git_info(str(Path(__file__).parent)) == {"commit": None, "dirty": None}
    st.git_info.cache_clear()


def test_git_info_in_this_checkout():
    st.git_info.cache_clear()
    info = st.git_info(str(Path(__file__).parent))
    assert len(info["commit"]) == 40 and isinstance(info["dirty"], bool)


def test_unwritable_history_is_a_typed_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HistoryError, match="--tinyml-history"):
        HistoryStore(blocker / "history").add(board_record())


OUTSIDE_PYTEST = textwrap.dedent("""
    import sys
    from pytest_tinyml import history
    print(history.observe(kind="host", samples_us=[1.0, 2.0], context={}))
    record = history.observe(kind="host", samples_us=[1.0, 2.0], context={"recipe": "int8"}, test_id="script::kws",
                             history_dir=sys.argv[1])
    print(record.series)
""")


def test_observe_outside_pytest(tmp_path):
    """Without a running test: a no-op, or, given a test id, a stored (uncompared) record."""
    done = subprocess.run([sys.executable, "-c", OUTSIDE_PYTEST, str(tmp_path)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == ["None", "script::kws @ host"]
    [record] = HistoryStore(tmp_path).records()
    assert record.recipe == "int8" and record.verdict is None
