"""The plugin as users see it with --tinyml-board: the fixture, leases per xdist worker, kind, failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"

BOARD_TEST = '''
import os, pathlib
import numpy as np
import pytest

MODEL = pathlib.Path(__file__).parent / "model.tflite"

@pytest.mark.tinyml_board
@pytest.mark.parametrize("i", range({n}))
def test_on_board(tinyml_board, i):
    result = tinyml_board.benchmark(MODEL.read_bytes(), inputs=np.full((2, 64), float(i)), runs=5, warmup=1)
    assert result.where == "sim" and result.outputs.shape == (2, 10)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = pathlib.Path(os.environ["BOARD_LOG_DIR"]) / f"{{worker}}-{{i}}"
    out.write_text(tinyml_board.name + " " + str(os.getpid()) + " " + str(tinyml_board.process.process.pid))
'''


KIND_TEST = '''
import pytest

@pytest.mark.tinyml_board(kind="esp32s3")
def test_s3_budgets(tinyml_board):
    pass

@pytest.mark.tinyml_board(kind=["host-sim", "esp32"])
def test_sim_ok(tinyml_board):
    assert tinyml_board.info["chip"] == "host-sim"

@pytest.mark.tinyml_board(kind="HOST-SIM")  # spelled otherwise: the same chip (was skipped as another kind)
def test_sim_spelled_otherwise(tinyml_board):
    assert tinyml_board.info["chip"] == "host-sim"
'''


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    """One cache for the module: the sim's host program is compiled once, not per pytester run."""
    return tmp_path_factory.mktemp("board-plugin-cache")


@pytest.fixture
def project(pytester, tmp_path, monkeypatch, board_cache):
    shutil.copy(MODEL, pytester.path / "model.tflite")
    log_dir = tmp_path / "board-log"
    log_dir.mkdir()
    monkeypatch.setenv("BOARD_LOG_DIR", str(log_dir))
    return pytester, log_dir, board_cache


@pytest.mark.slow
def test_board_tests_run_on_the_sim_report_and_respect_kind(project):
    pytester, log_dir, cache = project
    pytester.makepyfile(test_dev=BOARD_TEST.format(n=2), test_kind=KIND_TEST)
    result = pytester.runpytest_subprocess("--tinyml-board=sim", f"--tinyml-cache-dir={cache}", "-rs", "-p",
                                           "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(["tinyml boards: sim", "*tinyml summary*", "*latency us*where*",
                                 "test_on_board?0?*sim*passed", "*SKIPPED*wrong board kind: the test's "
                                 "tinyml_board(kind=...) asks for esp32s3, board sim is host-sim*"])
    runs = [p.read_text().split() for p in log_dir.iterdir()]
    assert len(runs) == 2
    assert len({sim_pid for _, _, sim_pid in runs}) == 1, "one sim opened once and reused for the session"


@pytest.mark.slow
def test_two_workers_two_sims_no_collisions(project):
    pytester, log_dir, cache = project
    pytester.makepyfile(test_dev=BOARD_TEST.format(n=8))
    result = pytester.runpytest_subprocess("-n", "2", "--tinyml-board=sim", "--tinyml-board=sim:seed=1",
                                           f"--tinyml-cache-dir={cache}", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=8)
    by_worker: dict[str, set] = {}
    for path in log_dir.iterdir():
        board, _, sim_pid = path.read_text().split()
        by_worker.setdefault(path.name.split("-")[0], set()).add((board, sim_pid))
    assert len(by_worker) == 2, by_worker
    boards = [next(iter(v)) for v in by_worker.values()]
    assert all(len(v) == 1 for v in by_worker.values()), "each worker keeps its one board"
    assert {b for b, _ in boards} == {"sim", "sim:seed=1"}, "the two workers leased different boards"


@pytest.mark.slow
def test_missing_port_errors_clearly_and_releases_the_lease(project):
    pytester, _, cache = project
    pytester.makepyfile(test_port='''
import pytest
from pytest_tinyml.board import transport

@pytest.mark.tinyml_board
def test_a(tinyml_board):
    pass

@pytest.mark.tinyml_board
def test_b(tinyml_board):
    pass

def test_lease_free_again():
    transport.acquire(["/dev/ttyTINYML404"], timeout=0).release()
''')
    result = pytester.runpytest_subprocess("--tinyml-board=/dev/ttyTINYML404", f"--tinyml-cache-dir={cache}",
                                           timeout=120)
    result.assert_outcomes(errors=2, passed=1)
    result.stdout.fnmatch_lines(["*PortUnavailable: serial port /dev/ttyTINYML404 does not exist*"])


TURNS_TEST = '''
import os, pathlib, time
import pytest

@pytest.mark.tinyml_board
@pytest.mark.parametrize("i", range(4))
def test_turn(tinyml_board, i):
    start = time.time()
    tinyml_board.benchmark(None, runs=2, warmup=0)
    time.sleep(0.3)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (pathlib.Path(os.environ["BOARD_LOG_DIR"]) / f"{worker}-{i}").write_text(f"{start} {time.time()}")
'''


@pytest.mark.slow
def test_more_workers_than_boards_take_turns(project):
    pytester, log_dir, cache = project
    pytester.makepyfile(test_turns=TURNS_TEST)
    result = pytester.runpytest_subprocess("-n", "2", "--tinyml-board=sim", f"--tinyml-cache-dir={cache}",
                                           "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=4)
    spans = sorted(tuple(map(float, p.read_text().split())) for p in log_dir.iterdir())
    workers = {p.name.split("-")[0] for p in log_dir.iterdir()}
    assert len(spans) == 4 and len(workers) == 2, "both workers ran tests, neither waited forever"
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two workers used the one board at the same time"
