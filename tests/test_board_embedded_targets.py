"""Target routing under ``--tinyml-board=embedded``: ``tinyml_board(kind=...)`` and pytest-embedded's ``target``.

Inner runs with the real pytest-embedded plugin: collection-only runs show what is selected and deselected;
the runs that set a test up put the sim (``tinyml-host``) on a pty as pytest-embedded's ``--port``, two of them
for ``--count 2``. The sim says it is ``host-sim``, which is therefore a kind here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytest_embedded_serial", reason="needs pytest-tinyml[embedded] (pytest-embedded-serial)")

from embedded_sim import run, start_sim  # noqa: E402

from pytest_tinyml.board import embedded_targets  # noqa: E402

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"
KINDS = '''
import pytest

@pytest.mark.tinyml_board(kind="esp32s3")
def test_for_s3(tinyml_board):
    pass

@pytest.mark.tinyml_board(kind="esp32c3")
def test_for_c3(tinyml_board):
    pass

@pytest.mark.tinyml_board(kind=("esp32", "esp32s3"))
def test_for_two(tinyml_board):
    pass

@pytest.mark.parametrize("target", ["esp32"], indirect=True)
@pytest.mark.tinyml_board(kind="esp32")
def test_own_target(tinyml_board):
    pass

def test_no_kind(dut):
    pass
'''


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded-targets-cache")


@pytest.fixture
def project(pytester):
    shutil.copy(MODEL, pytester.path / "model.tflite")
    pytester.makepyfile(test_kinds=KINDS)
    return pytester


def collect(project, *args: str):
    return project.runpytest_subprocess("-p", "pytest_embedded", "--embedded-services", "serial",
                                        "--tinyml-board=embedded", "-p", "no:cacheprovider", "--strict-markers",
                                        "--collect-only", "-q", *args)


def selected(result) -> list[str]:
    return sorted(line.split("::", 1)[1] for line in result.outlines if line.startswith("test_kinds.py::"))


def test_kind_becomes_pytest_embeddeds_target_parameter(project):
    """Without --target nothing is deselected; each kind is an item whose target parameter is that chip."""
    result = collect(project)
    assert result.ret == 0, result.stdout.str()
    assert selected(result) == ["test_for_c3[esp32c3]", "test_for_s3[esp32s3]", "test_for_two[esp32]",
                                "test_for_two[esp32s3]", "test_no_kind", "test_own_target[esp32]"]


def test_target_deselects_the_other_kinds(project):
    result = collect(project, "--target", "esp32s3")
    assert selected(result) == ["test_for_s3[esp32s3]", "test_for_two[esp32s3]", "test_no_kind"]
    result.stdout.fnmatch_lines(["*3/6 tests collected (3 deselected)*"])


def test_target_markers_select_with_m(project):
    """``-m esp32s3`` (Espressif's CI) selects the kind's items; ``--strict-markers`` knows the marker."""
    result = collect(project, "-m", "esp32s3")
    assert selected(result) == ["test_for_s3[esp32s3]", "test_for_two[esp32s3]"]
    result = collect(project, "-m", "esp32 and not esp32s3")
    assert selected(result) == ["test_for_two[esp32]", "test_own_target[esp32]"]


def test_a_marker_the_project_registers_is_kept(project):
    """A project that registers esp32s3 itself (ESP-IDF's pytest.ini does) keeps its line, not a second one."""
    project.makeini("[pytest]\nmarkers =\n    esp32s3: support esp32s3 target\n")
    project.makeconftest('''
def pytest_collection_finish(session):
    print("MARKERS", sorted(m.split(":")[0] + ("*" if "pytest-tinyml" in m else "")
                            for m in session.config.getini("markers") if m.startswith("esp32")))
''')
    result = collect(project, "-s")
    result.stdout.fnmatch_lines(["MARKERS ['esp32*', 'esp32c3*', 'esp32s3']"])


def test_multi_dut_session_selects_by_any_dut(project):
    """With --count 2 --target "esp32|esp32c3" (pytest-embedded) or "esp32,esp32c3" (idf-ci) a kind test stays when
    one of the duts is its kind; target is not parametrized (it holds one chip per dut)."""
    for targets in ("esp32|esp32c3", "esp32,esp32c3"):
        result = collect(project, "--count", "2", "--target", targets)
        assert selected(result) == ["test_for_c3", "test_for_two", "test_no_kind", "test_own_target[esp32]"]


SPELLED = '''
import pytest

@pytest.mark.tinyml_board(kind="ESP32S3")
def test_upper(tinyml_board):
    pass

@pytest.mark.tinyml_board(kind=("ESP32-S3", "esp32s3", "Esp32-C3"))
def test_dashed(tinyml_board):
    pass
'''


def test_a_kind_spelled_otherwise_is_routed_as_the_chip(pytester):
    """kind="ESP32S3" / "ESP32-S3" is esp32s3, as the serial fixture and estimate() read it: before, --target
    esp32s3 deselected both and -m esp32s3 selected neither (the item was [ESP32S3], marker ESP32S3)."""
    pytester.makepyfile(test_kinds=SPELLED)
    result = collect(pytester, "--target", "esp32s3")
    assert selected(result) == ["test_dashed[esp32s3]", "test_upper[esp32s3]"], result.stdout.str()
    assert selected(collect(pytester, "-m", "esp32s3")) == ["test_dashed[esp32s3]", "test_upper[esp32s3]"]
    assert selected(collect(pytester, "--target", "esp32c3")) == ["test_dashed[esp32c3]"]
    for targets in ("esp32|ESP32-S3", "esp32,esp32s3"):
        assert selected(collect(pytester, "--count", "2", "--target", targets)) == ["test_dashed", "test_upper"]
    assert selected(collect(pytester, "--target", "esp32")) == []  # still a chip: another one is deselected


def test_not_registered_for_other_boards(pytester):
    """Under --tinyml-board=sim, pytest-embedded active, nothing is routed: no parameter, no deselection."""
    pytester.makepyfile(test_kinds=KINDS)
    result = pytester.runpytest_subprocess("-p", "pytest_embedded", "--tinyml-board=sim", "-p", "no:cacheprovider",
                                           "--collect-only", "-q", "--target", "esp32s3")
    assert selected(result) == ["test_for_c3", "test_for_s3", "test_for_two", "test_no_kind", "test_own_target[esp32]"]


@pytest.mark.parametrize(("kinds", "targets", "index"), [
    (("esp32s3",), ("esp32", "esp32s3"), 1),
    (("esp32", "esp32s3"), ("esp32s3", "esp32"), 0),
    (("esp32c3",), ("esp32", "esp32s3"), None),
    ((), ("esp32", "esp32s3"), None),
    (("esp32s3",), None, None),
    (("ESP32-S3",), ("esp32", "esp32s3"), 1),  # spelled otherwise (before: None)
    (("esp32s3",), ("esp32", "ESP32S3"), 1),
])
def test_dut_index(kinds, targets, index):
    assert embedded_targets.dut_index(kinds, targets) == index


def test_dut_index_falls_back_to_the_chip_esptool_detected():
    class Serial:
        def __init__(self, target):
            self.target = target

    class Dut:
        def __init__(self, target):
            self.serial = Serial(target)

    duts = (Dut("esp32"), Dut("esp32s3"))
    assert embedded_targets.dut_index(("esp32s3",), (None, None), duts) == 1
    assert embedded_targets.dut_index(("esp32c3",), (None, None), duts) is None


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_deselected_not_skipped_on_a_real_dut(project, board_cache, workers):
    """--target esp32c3 on the sim's pty: the s3 tests are deselected (not set up, not skipped); the c3 one gets
    its dut and is then skipped for the chip the board reports."""
    sim = start_sim(board_cache)
    try:
        # -k: test_no_kind's dut would read the same pty from another worker
        result = run(project, sim.port, board_cache, "--tinyml-skip-flash", "--target", "esp32c3", "-rs",
                     "-n", workers, "-k", "not no_kind")
    finally:
        sim.stop()
    if workers == "0":
        result.assert_outcomes(skipped=1, deselected=5)  # 4 by --target, 1 by -k
    else:  # the xdist controller reports no deselected count: the workers' collection shows it
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["2 workers [1 item]"])
    result.stdout.fnmatch_lines(["*wrong board kind*esp32c3*is host-sim*"])


BY_KIND = '''
import re
from pathlib import Path

import pytest

@pytest.mark.tinyml_board(kind="host-sim")
def test_on_the_sim_dut(dut, tinyml_board):
    result = tinyml_board.benchmark(Path("model.tflite"), runs=3, warmup=1)
    assert result.latency_us.n == 3
    logs = [Path(d.logfile).read_text(errors="replace") for d in dut]
    assert ["-infer-[runs=3" in log for log in logs] == [False, True], logs

@pytest.mark.tinyml_board(kind="esp32s3")
def test_no_dut_of_this_kind(dut, tinyml_board):
    pass
'''


@pytest.mark.slow
def test_multi_dut_runs_on_the_dut_of_its_kind(pytester, board_cache):
    """--count 2 with two sims: the board is the dut whose --target is the test's kind (the second here); a kind
    no dut has is deselected."""
    shutil.copy(MODEL, pytester.path / "model.tflite")
    pytester.makepyfile(test_by_kind=BY_KIND)
    first, second = start_sim(board_cache), start_sim(board_cache)
    try:
        result = run(pytester, f"{first.port}|{second.port}", board_cache, "--tinyml-skip-flash", "--count", "2",
                     "--target", "esp32|host-sim")
    finally:
        first.stop()
        second.stop()
    result.assert_outcomes(passed=1, deselected=1)


@pytest.mark.slow
def test_multi_dut_without_a_kind_says_how_to_pick(pytester, board_cache):
    pytester.makepyfile(test_any="def test_any(dut, tinyml_board):\n    pass\n")
    first, second = start_sim(board_cache), start_sim(board_cache)
    try:
        result = run(pytester, f"{first.port}|{second.port}", board_cache, "--tinyml-skip-flash", "--count", "2",
                     "--target", "esp32|esp32s3")
    finally:
        first.stop()
        second.stop()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigError*one of this test's 2 duts*targets esp32, esp32s3*names no kind*"])


def test_a_target_from_elsewhere_that_disagrees_is_skipped_before_the_dut(pytester, tmp_path):
    """A project's own ``target`` fixture (ignoring the parameter) says esp32c3: the s3 test is skipped, naming
    both, before its dut is made (the port does not exist: a dut would be an error)."""
    pytester.makeconftest('''
import pytest

@pytest.fixture
def target():
    return "esp32c3"
''')
    pytester.makepyfile(test_one='''
import pytest

@pytest.mark.tinyml_board(kind="esp32s3")
def test_one(tinyml_board):
    pass
''')
    result = run(pytester, "/nonexistent/ttyUSB9", tmp_path, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*pytest-embedded's target is esp32c3, the test's tinyml_board(kind=...) is for "
                                 "esp32s3: run it with --target esp32s3, or leave `target` to pytest-tinyml*"])
