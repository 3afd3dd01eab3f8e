"""``pytest-tinyml history list|compare|plot`` and the trend plot, on a history built through the store."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from pytest_tinyml.cli import main
from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history.compare import default_min_effect
from pytest_tinyml.history.plot import plot_history
from pytest_tinyml.history.store import HistoryStore, Record

SIGMA = math.sqrt(math.log1p(0.03**2))


def board_run(store: HistoryStore, seed: int, median: float, *, test="t.py::test_kws", save=False,
              verdict=None) -> Record:
    samples = median * np.random.default_rng(seed).lognormal(0, SIGMA, 30)
    record = Record.new(test_id=test, kind="board", samples_us=samples,
                        context={"board": {"chip": "esp32s3", "firmware_hash": "f1" * 6}})
    record.verdict = verdict
    store.add(record)
    if save:
        store.save_baseline(record)
    return record


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "hist")
    board_run(store, 1, 1000.0, save=True, verdict={"verdict": "no-baseline"})
    board_run(store, 2, 1005.0, verdict={"verdict": "unchanged"})
    board_run(store, 3, 1300.0, verdict={"verdict": "regression", "change": 0.3})
    board_run(store, 4, 500.0, test="t.py::test_vww", save=True, verdict={"verdict": "no-baseline"})
    return store


def test_list(history, capsys):
    assert main(["history", "list", "--history", str(history.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["test", "@", "where", "runs"]
    kws = next(line for line in out if "test_kws" in line)
    assert kws.split()[:4] == ["t.py::test_kws", "@", "esp32s3", "3"] and "regression" in kws and "last" in kws
    assert main(["history", "list", "--history", str(history.root), "-k", "vww"]) == 0
    assert "test_kws" not in capsys.readouterr().out


def test_compare_exits_1_on_a_regression(history, capsys):
    assert main(["history", "compare", "--history", str(history.root)]) == 1
    out = capsys.readouterr().out
    assert "regression    t.py::test_kws @ esp32s3: median" in out
    assert "latency regression in t.py::test_kws @ esp32s3: median +" in out and "n = 30" in out
    assert "not compared  t.py::test_vww @ esp32s3: the latest run is the baseline itself" in out
    assert main(["history", "compare", "--history", str(history.root), "--min-effect", "0.5"]) == 0
    assert main(["history", "compare", "--history", str(history.root), "--baseline", "v9"]) == 0
    assert "no baseline 'v9' yet" in capsys.readouterr().out


def test_plot_writes_a_png(history, tmp_path, capsys):
    out = tmp_path / "trend.png"
    assert main(["history", "plot", "--history", str(history.root), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "(4 runs)" in capsys.readouterr().out


def test_plot_of_nothing_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(HistoryError, match="no latency records to plot"):
        plot_history([], str(tmp_path / "x.png"))
    assert main(["history", "plot", "--history", str(tmp_path / "empty"), "-o", str(tmp_path / "x.png")]) == 2
    assert "run the tests first" in capsys.readouterr().err


def test_sim_uses_the_host_default_effect():
    assert default_min_effect("board", "esp32s3") == 0.05
    assert default_min_effect("board", "sim") == default_min_effect("host", "host") == 0.10


def test_console_script_help():
    done = subprocess.run([sys.executable, "-m", "pytest_tinyml.cli", "history", "--help"], capture_output=True,
                          text=True, check=True)
    assert "{list,compare,plot}" in done.stdout
