"""``--tinyml-board=embedded``: the protocol over pytest-embedded's serial ``dut``, against the sim on a real pty.

The sim (``tinyml-host``, the firmware's portable core built for the host, with TFLite Micro behind it) is
started here on a pty, and pytest-embedded's serial service opens that pty as ``--port``: the same bytes a
board sends, read by pytest-embedded's reader thread and log file, and by ``tinyml_board`` through them.
pytest.ini keeps pytest-embedded's plugin out of normal runs (``-p no:pytest_embedded``); the inner runs here
enable it with ``-p pytest_embedded``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytest_embedded_serial", reason="needs pytest-tinyml[embedded] (pytest-embedded-serial)")

from embedded_sim import run, start_sim  # noqa: E402

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"

BOTH = '''
import re
from pathlib import Path

import pytest

def test_dut_and_board(dut, tinyml_board):
    # the test talks to the dut first: its expect stops at the match and leaves the rest (m-ready...) in
    # pexpect's buffer, which the board reads first
    dut.write(b"tinyml-info%")
    dut.expect(re.compile(rb"info-chip-\\[host-sim\\]"), timeout=10)
    result = tinyml_board.benchmark(Path("model.tflite"), runs=6, warmup=1)
    assert result.where == "sim" and tinyml_board.identity.chip == "host-sim"
    assert result.latency_us.n == 6 and result.latency_us.median > 0
    assert result.arena_bytes and result.arena_bytes > 0
    Path("figures.txt").write_text(f"{result.latency_us.median} {result.arena_bytes}")
    # the dut is still the test's: its own expect works after the benchmark, on the same stream
    dut.write(b"tinyml-version%")
    dut.expect(re.compile(rb"protocol-\\[1\\.\\d+\\]"), timeout=10)
    # every board line went through pytest-embedded's log, none was read past it
    log = Path(dut.logfile).read_text(errors="replace")
    assert "-infer-[runs=6,warmup=1" in log and "-samples-[" in log, log[-2000:]
'''


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    """One cache for the module: tinyml-host is compiled once, the model's arena bisected once."""
    return tmp_path_factory.mktemp("embedded-cache")


@pytest.fixture
def pty_sim(board_cache):
    process = start_sim(board_cache)
    yield process
    process.stop()


@pytest.fixture
def project(pytester, board_cache):
    shutil.copy(MODEL, pytester.path / "model.tflite")
    return pytester


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_benchmark_over_pytest_embedded_dut(project, pty_sim, board_cache, workers):
    project.makepyfile(test_both=BOTH)
    result = run(project, pty_sim.port, board_cache, "--tinyml-skip-flash", "-n", workers)
    result.assert_outcomes(passed=1)
    median, arena = (project.path / "figures.txt").read_text().split()
    assert float(median) > 0 and int(arena) > 0


@pytest.mark.slow
def test_a_stale_sim_is_refused_under_skip_autoflash(project, board_cache):
    """pytest-embedded's --skip-autoflash counts as --tinyml-skip-flash: a stale build fails, naming it."""
    project.makepyfile(test_both=BOTH)
    stale = start_sim(board_cache, build="0123456789ab")
    try:
        result = run(project, stale.port, board_cache, "--skip-autoflash", "y")
    finally:
        stale.stop()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FirmwareError*stale*reports build 0123456789ab*"])


def test_without_pytest_embedded_active_the_error_says_how(project):
    project.makepyfile(test_one="def test_one(tinyml_board):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:pytest_embedded", "--tinyml-board=embedded",
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigError*plugin is not active*-p pytest_embedded*"])


def test_embedded_is_given_alone(project):
    result = project.runpytest_subprocess("--tinyml-board=embedded", "--tinyml-board=sim", "-p", "no:pytest_embedded")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tinyml-board=embedded*alone, not with sim*"])


def test_loading_the_plugin_imports_nothing_of_pytest_embedded(project, monkeypatch):
    """With the board set to embedded and no tinyml_board test run, pytest-embedded is never imported."""
    project.makepyfile(test_light='''
import sys

def test_light():
    assert [m for m in sys.modules if m.startswith("pytest_embedded")] == []
    assert "pytest_tinyml.board.embedded" not in sys.modules
''')
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = project.runpytest_subprocess("-p", "pytest_tinyml.plugin", "--tinyml-board=embedded")
    result.assert_outcomes(passed=1)


def test_the_light_check_fails_when_pytest_embedded_is_loaded(project):
    """The check above can fail: with pytest-embedded's plugin loaded, it sees it."""
    project.makepyfile(test_light='''
import sys

def test_light():
    assert [m for m in sys.modules if m.startswith("pytest_embedded")] == []
''')
    result = project.runpytest_subprocess("-p", "pytest_embedded", "--tinyml-board=embedded")
    result.assert_outcomes(failed=1)


def test_module_import_is_light():
    code = ("import pytest_tinyml.board.embedded, pytest_tinyml.board.embedded_plugin, sys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest_embedded', 'serial', 'pexpect')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
