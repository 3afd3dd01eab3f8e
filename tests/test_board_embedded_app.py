"""The app pytest-embedded flashes for a ``tinyml_board`` test (``--embedded-services ...,idf``).

Inner runs with the real pytest-embedded plugin and pytest-embedded-idf's real ``IdfApp``, which parses build
directories laid out as idf.py lays them out (``embedded_sim.idf_build_dir``). ``serial,idf`` gives an
``IdfApp`` and a plain serial on the sim's pty; ``esp,idf`` gives pytest-embedded's ``IdfSerial``, which on the
sim's pty gets as far as esptool asking for a ROM bootloader: the write itself needs a chip and is not run here. Where the check must come before
pytest-embedded touches the port, ``--port`` is a path that does not exist: had the serial been made first,
its own error would show instead of ours.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytest_embedded_idf", reason="needs pytest-tinyml[embedded] (pytest-embedded-idf)")

from embedded_sim import cached_build_dir, idf_build_dir, run, start_sim  # noqa: E402

from pytest_tinyml.board import flash  # noqa: E402

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"
NO_PORT = "/nonexistent/ttyUSB9"
FW_DIR = flash.locate_firmware_dir(None)
BENCH = '''
from pathlib import Path

import pytest

def test_bench(dut, tinyml_board, app_path, build_dir, skip_autoflash):
    Path("app.txt").write_text(f"{dut.app.app_path}\\n{dut.app.binary_path}\\n{app_path}\\n{build_dir}\\n{bool(skip_autoflash)}")
    result = tinyml_board.benchmark(Path("model.tflite"), runs=3, warmup=1)
    assert result.latency_us.n == 3
'''


@pytest.fixture(scope="module")
def board_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded-app-cache")


@pytest.fixture
def project(pytester, monkeypatch):
    shutil.copy(MODEL, pytester.path / "model.tflite")
    pytester.makepyfile(test_bench=BENCH)
    monkeypatch.delenv("IDF_PATH", raising=False)  # no ESP-IDF here: a build would be a FirmwareError
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return pytester


def run_idf(project, port: str, cache, *args: str):
    """serial,idf on ``port``, pytest-embedded's --target esp32s3 (the sim itself says host-sim, so no kind=)."""
    return run(project, port, cache, "--target", "esp32s3", *args, services="serial,idf")


def app_seen(project) -> list[str]:
    return (project.path / "app.txt").read_text().splitlines()


@pytest.mark.parametrize(("layout", "words"), [
    ({"project": "blink"}, "*FirmwareError*app */build is the ESP-IDF project 'blink', not tinyml-bench (tinyml_bench)*"),
    ({"board_config": "esp32"}, "*FirmwareError*build */build is for esp32, the dut's target is esp32s3*"),
    ({"build_id": "0123456789abcdef"}, "*FirmwareError*build */build is build 0123456789abcdef*it is stale*"),
])
def test_a_wrong_app_is_refused_before_the_port_is_opened(project, board_cache, layout, words):
    app_dir = project.path / "app"
    idf_build_dir(app_dir / "build", **layout)
    result = run_idf(project, NO_PORT, board_cache, f"--app-path={app_dir}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([words])
    assert "could not open port" not in result.stdout.str()


def test_the_port_check_of_that_test_can_fail(project, board_cache):
    """The check above means something: with a tinyml-bench build, the error is the serial's own."""
    app_dir = project.path / "app"
    idf_build_dir(app_dir / "build")
    result = run_idf(project, NO_PORT, board_cache, f"--app-path={app_dir}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*could not open port*nonexistent*"])


def test_a_kind_the_app_is_not_built_for_is_refused(project, board_cache):
    project.makepyfile(test_bench=BENCH.replace("def test_bench", "@pytest.mark.tinyml_board(kind='esp32s3')\n"
                                                "def test_bench"))
    app_dir = project.path / "app"
    idf_build_dir(app_dir / "build", "esp32c3")
    result = run(project, NO_PORT, board_cache, f"--app-path={app_dir}", services="serial,idf")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FirmwareError*build */build is for esp32c3, the test's tinyml_board(kind=...) is "
                                 "for esp32s3*"])


def test_an_app_path_without_a_build_says_how(project, board_cache):
    (project.path / "app").mkdir()
    result = run_idf(project, NO_PORT, board_cache, f"--app-path={project.path / 'app'}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FirmwareError*app for this tinyml_board test*has no build directory*idf.py -C*"])


def test_tests_without_tinyml_board_keep_pytest_embeddeds_values(pytester, board_cache):
    pytester.makepyfile(test_plain='''
import os

def test_plain(app_path, build_dir, skip_autoflash, request):
    assert app_path == os.path.dirname(str(request.path)) and build_dir == "build" and not skip_autoflash
''')
    result = run_idf(pytester, NO_PORT, board_cache, "--tinyml-skip-flash")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_a_tinyml_bench_app_path_runs_when_the_board_reports_its_build(project, board_cache):
    app_dir = project.path / "app"
    build = idf_build_dir(app_dir / "build")
    built = (build / "tinyml_build_id.txt").read_text().strip()
    sim = start_sim(board_cache, build=built)  # the sim reports the app's build id, as a flashed board would
    try:
        result = run_idf(project, sim.port, board_cache, f"--app-path={app_dir}")
    finally:
        sim.stop()
    result.assert_outcomes(passed=1)
    assert app_seen(project)[:2] == [str(app_dir), str(build)]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "why"), [
    ((), "only the esp service flashes it"),
    (("--skip-autoflash", "y"), "--skip-autoflash / --tinyml-skip-flash kept what was on the board"),
])
def test_a_board_not_running_the_app_is_refused_after_the_dut_is_up(project, board_cache, args, why):
    app_dir = project.path / "app"
    build = idf_build_dir(app_dir / "build")
    sim = start_sim(board_cache, build="fedcba9876543210")
    try:
        result = run_idf(project, sim.port, board_cache, f"--app-path={app_dir}", *args)
    finally:
        sim.stop()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*FirmwareError*runs build fedcba9876543210, not the app pytest-embedded has for "
                                 f"this dut ({build}, build*{why}*"])


@pytest.mark.slow
@pytest.mark.parametrize("skip", [False, True])
def test_without_app_path_pytest_embedded_gets_our_build(project, board_cache, skip):
    """No --app-path: tinyml-bench's build (here the cached one flash.build returns) becomes the test's app_path
    and build_dir, which pytest-embedded's IdfApp parses (not the other app next to the test file);
    --tinyml-skip-flash is its skip_autoflash."""
    cache = board_cache / ("skip" if skip else "flash")
    build = cached_build_dir(cache)
    idf_build_dir(project.path / "build", project="blink")  # the app pytest-embedded finds next to the test file
    sim = start_sim(board_cache, build=(build / "tinyml_build_id.txt").read_text().strip())
    try:
        result = run_idf(project, sim.port, cache, *(["--tinyml-skip-flash"] if skip else []))
    finally:
        sim.stop()
    result.assert_outcomes(passed=1)
    seen = [str(Path(p).resolve()) for p in app_seen(project)[:4]] + app_seen(project)[4:]
    fw_dir, build = str(FW_DIR.resolve()), str(build.resolve())
    assert seen == [fw_dir, build, fw_dir, build, str(skip)], seen


def test_without_app_path_and_esp_idf_missing_the_build_error_says_so(project, tmp_path):
    result = run_idf(project, NO_PORT, tmp_path / "empty-cache")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FirmwareError*ESP-IDF not found*"])
    assert "could not open port" not in result.stdout.str()


def test_without_app_path_under_skip_flash_and_no_build_says_what_to_pass(project, tmp_path):
    result = run_idf(project, NO_PORT, tmp_path / "empty-cache", "--skip-autoflash", "y")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigError*idf service needs an app*--app-path*"])


def test_a_build_for_the_wrong_chip_is_not_chosen(project, tmp_path):
    """--tinyml-target names a board configuration for another chip than the dut's target: refused."""
    result = run_idf(project, NO_PORT, tmp_path / "c", "--tinyml-target", "esp32c3")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FirmwareError*--tinyml-target esp32c3 builds tinyml-bench for esp32c3*target "
                                 "for this dut is esp32s3*"])


@pytest.mark.slow
def test_esp_idf_flashing_gets_as_far_as_the_rom_bootloader(pytester, board_cache):
    """esp,idf on the sim's pty: the tinyml test's IdfSerial takes our build (else pytest-embedded's own error
    "Idf app not parsable", which the plain test in the same run shows) and esptool then asks the pty for a ROM
    bootloader, which a sim is not: this is as far as flashing goes without a chip."""
    pytester.makepyfile(test_x='''
def test_plain(dut):
    pass

def test_board(dut, tinyml_board):
    pass
''')
    cache = board_cache / "esp-idf"
    cached_build_dir(cache)
    sim = start_sim(board_cache)
    try:
        result = run(pytester, sim.port, cache, "--target", "esp32s3", services="esp,idf")
    finally:
        sim.stop()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["ERROR test_x.py::test_plain - ValueError: Idf app not parsable*"])
    result.stdout.fnmatch_lines(["ERROR test_x.py::test_board - esptool.util.FatalError: Failed to connect to E*"])
    result.stdout.fnmatch_lines(["*FatalError: Failed to connect to ESP32-S3: No serial data received*"])


@pytest.mark.parametrize("workers", ["0", "2"])
def test_without_app_path_tinyml_bench_is_built_once_for_the_session(project, tmp_path, monkeypatch, workers):
    """Where ESP-IDF is (here an idf.py that lays out the build directory as idf.py does), the build runs once
    for all tests and workers, then pytest-embedded's serial takes over (here: a port that does not exist)."""
    from embedded_sim import fake_idf

    calls = tmp_path / "calls.txt"
    fake_idf(tmp_path / "bin", calls, seconds=1.0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    project.makepyfile(test_second=BENCH.replace("def test_bench", "def test_second"))
    result = run_idf(project, NO_PORT, tmp_path / "cache", "-n", workers)
    result.assert_outcomes(errors=2)
    assert result.stdout.str().count("could not open port /nonexistent/ttyUSB9") >= 2
    runs = calls.read_text().splitlines()
    assert len(runs) == 1, runs
    args = runs[0].split()
    assert args[args.index("set-target") + 1] == "esp32s3"
    assert args[args.index("-C") + 1] == str(FW_DIR)
    assert Path(args[args.index("-B") + 1]).parent == tmp_path / "cache" / "firmware"


@pytest.mark.slow
def test_with_two_duts_our_build_goes_to_the_dut_of_the_kind_only(pytester, board_cache):
    """--count 2 --target "esp32|esp32s3": the kind=esp32s3 test's second dut gets our build, the first keeps the
    app pytest-embedded finds next to the test file; the board is the second dut (then skipped: a sim is no S3)."""
    cache = board_cache / "two-duts"
    ours = cached_build_dir(cache)
    theirs = idf_build_dir(pytester.path / "build", "esp32", project="blink")
    pytester.makeconftest('''
from pathlib import Path

import pytest

@pytest.fixture(autouse=True)
def record_apps(dut):
    Path("apps.txt").write_text("\\n".join(str(d.app.binary_path) for d in dut))
''')
    pytester.makepyfile(test_two='''
import pytest

@pytest.mark.tinyml_board(kind="esp32s3")
def test_two(dut, tinyml_board):
    pass
''')
    built = (ours / "tinyml_build_id.txt").read_text().strip()
    first, second = start_sim(board_cache), start_sim(board_cache, build=built)
    try:
        result = run(pytester, f"{first.port}|{second.port}", cache, "--count", "2", "--target", "esp32|esp32s3",
                     "-rs", services="serial,idf")
    finally:
        first.stop()
        second.stop()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*wrong board kind*esp32s3, board embedded {second.port} is host-sim*"])
    apps = [str(Path(p).resolve()) for p in (pytester.path / "apps.txt").read_text().splitlines()]
    assert apps == [str(theirs.resolve()), str(ours.resolve())]
