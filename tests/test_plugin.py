"""The plugin as users see it: options, ini mirroring, markers, skip behaviour, load cost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tinyml import options

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "numpy", "serial", "tf_keras", "scipy", "matplotlib")


def test_help_lists_the_tinyml_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["tinyml: edge ML model testing:", "  --tinyml-board=TINYML_BOARD"])
    for flag, dest, _ in options.option_table():
        result.stdout.fnmatch_lines([f"*{flag}*"])
        result.stdout.fnmatch_lines([f"*{dest} (*):*"])


def test_help_text_is_pinned(pytester):
    """The tinyml part of --help, pinned: a change to it must be a deliberate change to this test."""
    result = pytester.runpytest("--help")
    text = "\n".join(result.outlines)
    group = text.split("tinyml: edge ML model testing:")[1].split("\n\n")[0]
    flags = re.findall(r"^  (--tinyml-[a-z-]+)", group, re.MULTILINE)
    assert flags == [
        "--tinyml-board", "--tinyml-cache-dir", "--tinyml-cache-retry", "--tinyml-history", "--tinyml-report",
        "--tinyml-skip-flash", "--tinyml-target", "--tinyml-baud", "--tinyml-timeout",
        "--tinyml-firmware-dir", "--tinyml-baseline", "--tinyml-trust-legacy", "--tinyml-save-baseline",
    ]
    assert "rfc2217://host:port" in group
    assert "socket://host:port" in group


def test_readme_options_table_matches_help(pytester):
    """Every option in --help is in the README's table with its ini key, and nothing else is."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(--tinyml-[a-z-]+)[^`]*` \| `(tinyml_[a-z_]+)` \|", readme, re.MULTILINE)
    assert rows == [(flag, dest) for flag, dest, _ in options.option_table()]
    help_text = "\n".join(pytester.runpytest("--help").outlines)
    for flag, dest in rows:
        assert flag in help_text and dest in help_text


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("/dev/ttyUSB0", "serial"),
        ("COM3", "serial"),
        ("rfc2217://192.168.1.20:4000", "rfc2217"),
        ("socket://localhost:5555", "socket"),
        ("sim", "sim"),
        ("sim:delay_us=500", "sim"),
        ("sim:delay_us=500,seed=2", "sim"),
        ("embedded", "embedded"),
    ],
)
def test_board_values_parse(value, kind):
    spec = options.parse_board(value)
    assert spec.kind == kind
    assert spec.text == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ttyUSB0", "expected a serial device"),
        ("rfc2217://host", "expected rfc2217://host:port"),
        ("socket://host:70000", "port 1-65535"),
        ("tcp://host:1", "expected rfc2217://host:port"),
        ("sim:speed=2", "unknown sim parameter 'speed'"),
        ("sim:delay_us=fast", "must be a whole number"),
        ("", "empty board"),
        ("embedded:port=1", "expected a serial device"),
    ],
)
def test_bad_board_values_fail_at_parse_time(pytester, value, message):
    result = pytester.runpytest(f"--tinyml-board={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--tinyml-board*{message}*"])


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--tinyml-report=report.txt", "ending in .json"),
        ("--tinyml-baud=fast", "positive whole number"),
        ("--tinyml-timeout=-1", "positive number of seconds"),
        ("--tinyml-target=esp8266", "unknown target 'esp8266'"),
        ("--tinyml-baseline=a/b", "bad baseline name"),
    ],
)
def test_bad_option_values_fail_at_parse_time(pytester, flag, message):
    result = pytester.runpytest(flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_bad_ini_value_fails_before_collection(pytester):
    pytester.makeini("[pytest]\ntinyml_board = ttyUSB0\n")
    pytester.makepyfile("def test_never(): raise AssertionError('collected')")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option tinyml_board*expected a serial device*"])


VALUE_PROBE = """
import os
from pytest_tinyml import options
def test_probe(request):
    resolved = options.of(request.config)
    assert os.path.isabs(resolved.cache_dir) and resolved.cache_dir.startswith(str(request.config.rootpath))
    print("BOARDS=" + ",".join(b.text for b in resolved.boards))
    print("CACHE=" + os.path.basename(resolved.cache_dir))
    print("BAUD=" + str(resolved.baud))
"""


def test_ini_mirrors_every_option_and_cli_wins(pytester):
    pytester.makeini("[pytest]\ntinyml_board =\n    sim\n    socket://localhost:4000\ntinyml_cache_dir = from-ini\ntinyml_baud = 115200\n")
    pytester.makepyfile(VALUE_PROBE)
    from_ini = pytester.runpytest("-s")
    from_ini.stdout.fnmatch_lines(["*BOARDS=sim,socket://localhost:4000", "CACHE=from-ini", "BAUD=115200"])
    from_cli = pytester.runpytest("-s", "--tinyml-board=/dev/ttyACM0", "--tinyml-cache-dir=from-cli")
    from_cli.stdout.fnmatch_lines(["*BOARDS=/dev/ttyACM0", "CACHE=from-cli", "BAUD=115200"])


def test_defaults_without_ini(pytester):
    pytester.makepyfile(VALUE_PROBE)
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["*BOARDS=", "CACHE=.tinyml_cache", "BAUD=921600"])


def test_board_given_twice_is_a_farm(pytester):
    pytester.makepyfile(VALUE_PROBE)
    result = pytester.runpytest("-s", "--tinyml-board=sim", "--tinyml-board=sim:seed=1", "--tinyml-board=sim")
    result.stdout.fnmatch_lines(["*BOARDS=sim,sim:seed=1"])


def test_options_are_resolved_once_into_a_frozen_object_in_the_stash(pytester):
    """After configure, no fixture or hook parses a tinyml option again: reading one from pytest fails here."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            getini, getoption = config.getini, config.getoption

            def no_tinyml(read):
                def guarded(name, *args, **kwargs):
                    if str(name).lstrip("-").replace("-", "_").startswith("tinyml_"):
                        raise AssertionError(f"option {name} parsed again after configure")
                    return read(name, *args, **kwargs)
                return guarded

            config.getini, config.getoption = no_tinyml(getini), no_tinyml(getoption)
        """
    )
    pytester.makepyfile(
        """
        import dataclasses
        import pytest
        from pytest_tinyml import options
        from pytest_tinyml.report import record

        def test_cache_fixture(tinyml_cache, request):
            resolved = options.of(request.config)
            assert resolved is options.of(request.config)
            assert isinstance(resolved, options.TinyMLOptions) and resolved.baud == 115200
            assert str(tinyml_cache.root) == resolved.cache_dir
            with pytest.raises(dataclasses.FrozenInstanceError):
                resolved.baud = 1
            record(model="m", flash_kb=1.0)

        @pytest.mark.tinyml_board
        def test_board(tinyml_board):
            pass
        """
    )
    result = pytester.runpytest("--tinyml-baud=115200", "--tinyml-report=out.json")
    result.assert_outcomes(passed=1, skipped=1)
    assert (pytester.path / "out.json").exists()


def test_every_option_has_a_typed_field():
    import dataclasses

    dests = {dest for _, dest, _ in options.option_table()}
    assert set(options._FIELDS) == dests
    assert set(options._FIELDS.values()) == {f.name for f in dataclasses.fields(options.TinyMLOptions)}


def test_board_tests_skip_without_a_board(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tinyml_board
        def test_marked():
            raise AssertionError("must not run")

        def test_fixture_only(tinyml_board):
            raise AssertionError("must not run")

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*needs a board: run with --tinyml-board=*"])


def test_markers_are_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tinyml_board*", "@pytest.mark.tinyml_latency*"])


def test_summary_is_silent_when_no_tinyml_test_ran(pytester):
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--tinyml-report=r.json")
    result.assert_outcomes(passed=1)
    assert "tinyml summary" not in result.stdout.str()


def test_recorded_figures_reach_summary_json_and_junit(pytester):
    pytester.makepyfile(
        """
        import pytest_tinyml as tinyml

        def test_one():
            tinyml.record(model="mlp", recipe="int8", flash_kb=12.25, accuracy=0.97)

        def test_two():
            tinyml.record(model="kws", recipe="float32", flash_kb=80.0)
            assert False
        """
    )
    # pytest-embedded's autouse fixture warns under --junitxml (xunit2): keep it out of this run.
    result = pytester.runpytest("--tinyml-report=out/r.json", "--junitxml=j.xml", "-p", "no:pytest_embedded")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*tinyml summary*", "test*model*recipe*flash KB*", "test_one*mlp*int8*12.2*passed"])
    import json

    report = json.loads((pytester.path / "out" / "r.json").read_text())
    rows = {row["test"].split("::")[-1]: row for row in report["tests"]}
    assert rows["test_one"]["flash_kb"] == 12.25
    assert rows["test_two"]["outcome"] == "failed"
    assert 'name="tinyml.flash_kb" value="12.25"' in (pytester.path / "j.xml").read_text()


@pytest.mark.slow  # two xdist workers of an inner run (about 20 s on 2 busy cores)
def test_recorded_figures_survive_xdist(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import pytest, pytest_tinyml as tinyml

        @pytest.mark.parametrize("n", range(4))
        def test_many(n):
            tinyml.record(model=f"m{n}", flash_kb=float(n))
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--tinyml-report=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    import json

    rows = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert sorted(row["model"] for row in rows) == ["m0", "m1", "m2", "m3"]


def test_loading_the_plugin_imports_nothing_heavy(pytester, monkeypatch):
    """A whole pytest run that uses no tinyml fixture never imports TensorFlow, Keras, numpy or pyserial."""
    pytester.makepyfile(
        f"""
        import sys

        def test_nothing_heavy(pytestconfig):
            manager = pytestconfig.pluginmanager
            assert manager.has_plugin("tinyml") or manager.has_plugin("pytest_tinyml.plugin")
            heavy = [m for m in {HEAVY!r} if m in sys.modules]
            assert heavy == []
        """
    )
    # Other installed plugins (pytest-embedded, hypothesis, ...) may import numpy themselves: disable
    # autoload and load only ours, so the test speaks for this plugin alone.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", "pytest_tinyml.plugin", "--tinyml-board=sim")
    result.assert_outcomes(passed=1)


def test_importing_the_package_is_light():
    code = (
        "import pytest_tinyml, pytest_tinyml.plugin, pytest_tinyml.options, pytest_tinyml.report, sys; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
