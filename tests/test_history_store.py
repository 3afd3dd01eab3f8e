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


def accepted(record: Record, verdict: str = "unchanged", **extra) -> Record:
    record.verdict = {"verdict": verdict, "accepted": verdict in ("unchanged", "no-baseline", "faster"), **extra}
    return record


def test_the_moving_baseline_is_the_last_accepted_runs(tmp_path):
    store = HistoryStore(tmp_path)
    now = board_record()
    assert store.window(now, 10).why == "no earlier run of t.py::test_a @ esp32s3"
    for i in range(12):
        store.add(accepted(board_record(samples=[100.0 + i])))
    store.add(accepted(board_record(samples=[500.0]), "regression"))  # not accepted: not in the window
    window = store.window(now, 10)
    assert [r.samples_us[0] for r in window.runs] == [102.0 + i for i in range(10)] and window.why is None
    assert window.excursions == []  # the regression is the latest run: a change, not noise (yet)
    store.add(accepted(board_record(samples=[113.0])))  # ... and now an accepted run came after it
    assert [r.samples_us[0] for r in store.window(now, 10).excursions] == [500.0]
    assert store.window(now, 10).runs[-1].samples_us == [113.0]  # 'last' moves with accepted runs


def test_an_accepted_change_restarts_the_window(tmp_path):
    store = HistoryStore(tmp_path)
    for i in range(5):
        store.add(accepted(board_record(samples=[100.0 + i])))
    store.add(accepted(board_record(samples=[150.0]), "accepted", accepted=True, reset=True))
    store.add(accepted(board_record(samples=[151.0])))
    assert [r.samples_us[0] for r in store.window(board_record(), 10).runs] == [150.0, 151.0]


def test_named_baselines_are_saved_windows(tmp_path):
    store = HistoryStore(tmp_path)
    runs = [accepted(board_record(samples=[100.0 + i])) for i in range(3)]
    assert store.baseline_names() == ["last"]
    store.save_baseline("v1", runs[-1], runs)
    assert store.baseline_names() == ["last", "v1"]
    named = store.named(board_record(), "v1")
    assert [r.samples_us for r in named.runs] == [[100.0], [101.0], [102.0]] and named.why is None
    missing = store.named(board_record(test_id="t.py::test_other"), "v1")
    assert missing.runs == [] and missing.why == ("no baseline 'v1' for t.py::test_other @ esp32s3; save one "
                                                  "with --tinyml-save-baseline=v1")
    with pytest.raises(HistoryError, match="moving window"):
        store.save_baseline("last", runs[-1], runs)


def test_other_board_is_not_compared_and_says_why_but_a_new_firmware_is(tmp_path):
    store = HistoryStore(tmp_path)
    store.add(accepted(board_record()))
    window = store.window(board_record(cpu_mhz=160), 10)
    assert window.runs == []
    assert window.why == "not compared with the 1 earlier run(s): board differs: cpu_mhz 240 (baseline) vs 160 (now)"
    newer = board_record(firmware_hash="e2" * 8)  # the software measured changed: compared, and named
    [old] = store.window(newer, 10).runs
    assert st.changes(old, newer) == [f"firmware hash {'f1' * 8} -> {'e2' * 8}"]


def test_other_chip_is_another_series_and_host_differences_are_named():
    assert st.incompatibility(board_record(), board_record(chip="esp32")).startswith("ran elsewhere")
    a = Record.new(test_id="t", kind="host", samples_us=[1.0], context={})
    b = Record.from_dict(a.to_dict())
    b.host = {**b.host, "cpu_model": "Some Other CPU"}
    assert st.incompatibility(a, b) == (
        f"host machine differs: host cpu_model {a.host['cpu_model']} (baseline) vs Some Other CPU (now)")
    assert st.incompatibility(a, Record.from_dict(a.to_dict())) is None


def test_records_say_where_they_were_measured():
    sim = Record.new(test_id="t", kind="board", samples_us=[1.0], context={"board": {"where": "sim", "chip": "sim"}})
    assert sim.where == "sim" and sim.host["cpu_model"] and set(sim.load) == {"load_1m", "cpu_count", "xdist_workers"}
    assert "host cpu_model" in sim.machine() and "chip" in sim.machine()  # the sim is timed by the host's clock
    assert board_record().host is None and board_record().load is None  # a device's own timer: no host noise
    host = Record.new(test_id="t", kind="host", samples_us=[1.0], context={})
    assert "pytest-tinyml" in host.host["libraries"] or "numpy" in host.host["libraries"]


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


def test_corrupt_baseline_stays_in_place_until_replaced_on_purpose(tmp_path):
    store = HistoryStore(tmp_path)
    runs = [accepted(board_record(samples=[100.0 + i])) for i in range(3)]
    path = store.save_baseline("v1", runs[-1], runs)
    path.write_text("not json")
    with pytest.raises(st.CorruptBaseline, match=f"baseline 'v1' of t.py::test_a @ esp32s3 is corrupt: {path}.*"
                                                 "--tinyml-save-baseline=v1"):
        store.named(board_record(), "v1")
    assert path.read_text() == "not json"  # nothing moved, nothing replaced
    store.save_baseline("v1", runs[-1], runs[:1])  # asked for: replaced, the corrupt copy kept aside
    assert len(store.named(board_record(), "v1").runs) == 1
    assert [p.read_text() for p in (tmp_path / "corrupt").iterdir()] == ["not json"]


WRITER = textwrap.dedent("""
    import sys
    from pytest_tinyml.history.store import HistoryStore, Record
    store = HistoryStore(sys.argv[1])
    for i in range(40):
        record = Record.new(test_id=f"t.py::test_{sys.argv[2]}", kind="host", samples_us=[i, i + 1.0], context={})
        store.add(record)
""")


def test_two_processes_writing_at_once(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name]) for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    store = HistoryStore(tmp_path)
    records = store.records()
    assert len(records) == 80
    assert {r.test_id for r in records} == {"t.py::test_a", "t.py::test_b"}
    assert not list(Path(tmp_path).glob("**/.tmp-*")) and not (Path(tmp_path) / "corrupt").exists()
    assert sorted(r.samples_us for r in records if r.test_id == "t.py::test_a")[-1] == [39.0, 40.0]


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
