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


def board_run(store: HistoryStore, seed: int, median: float, *, test="t.py::test_kws", verdict="unchanged",
              change=None, run=None) -> Record:
    samples = median * np.random.default_rng(seed).lognormal(0, SIGMA, 30)
    record = Record.new(test_id=test, kind="board", samples_us=samples,
                        context={"board": {"chip": "esp32s3", "firmware_hash": "f1" * 6}})
    record.verdict = {"verdict": verdict, "accepted": verdict != "regression", "change": change}
    record.run = run or f"run-{seed}"
    store.add(record)
    return record


@pytest.fixture
def history(tmp_path):
    store = HistoryStore(tmp_path / "hist")
    board_run(store, 1, 1000.0, verdict="no-baseline")
    board_run(store, 1, 500.0, test="t.py::test_vww", verdict="no-baseline", run="run-1")
    for seed, median in ((2, 1005.0), (3, 995.0), (4, 1002.0)):
        board_run(store, seed, median)
    board_run(store, 5, 1300.0, verdict="regression", change=0.3)
    return store


def test_list(history, capsys):
    assert main(["history", "list", "--history", str(history.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["test", "@", "where", "runs"]
    kws = next(line for line in out if "test_kws" in line)
    assert kws.split()[:4] == ["t.py::test_kws", "@", "esp32s3", "5"] and "regression" in kws and "last" in kws
    assert main(["history", "list", "--history", str(history.root), "-k", "vww"]) == 0
    assert "test_kws" not in capsys.readouterr().out


def test_compare_exits_1_on_a_regression(history, capsys):
    assert main(["history", "compare", "--history", str(history.root)]) == 1
    out = capsys.readouterr().out
    assert "regression    t.py::test_kws @ esp32s3: median" in out
    assert "latency regression in t.py::test_kws @ esp32s3: median 10" in out and "n = 30" in out
    assert "not compared  t.py::test_vww @ esp32s3: no earlier run of t.py::test_vww @ esp32s3" in out
    assert main(["history", "compare", "--history", str(history.root), "--min-effect", "0.5"]) == 0
    capsys.readouterr()
    assert main(["history", "compare", "--history", str(history.root), "--baseline", "v9"]) == 2
    assert "no baseline 'v9' in" in capsys.readouterr().err


def test_plot_writes_a_png(history, tmp_path, capsys):
    out = tmp_path / "trend.png"
    assert main(["history", "plot", "--history", str(history.root), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "(6 records in 5 runs)" in capsys.readouterr().out


def test_plot_shares_the_run_axis_and_draws_one_run_as_bars(history, tmp_path):
    from pytest_tinyml.history.plot import runs_of

    runs = runs_of(history.records())
    assert [len(r) for r in runs] == [2, 1, 1, 1, 1]  # run 1 holds both tests: one x for both
    single = tmp_path / "one.png"
    plot_history(runs[0], str(single))
    assert single.read_bytes()[:4] == b"\x89PNG"


def test_regression_labels_never_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pytest_tinyml.history.plot import _place_labels

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1, 2], [100, 120, 100])
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    points = [(1, 120, "+20% test_kws"), (1, 120, "+21% test_kws_int16"), (1.02, 119, "+19% test_vww")]
    boxes = _place_labels(axes, points, renderer)
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # The same labels at their points' default offset do overlap: the placement is what keeps them apart.
    naive = [axes.annotate(t, (x, y), textcoords="offset points", xytext=(8, 6)).get_window_extent(renderer)
             for x, y, t in points]
    assert naive[0].overlaps(naive[1])


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
