"""The latency gate as users see it: a window of runs builds up, unchanged runs pass, a slowdown fails.

The inner test file observes seeded lognormal timings whose scale comes from an environment variable, so
each run here is a real pytest session whose latency we control. They are board-like figures (a device's
own timer, no host load), so nothing on this shared machine can change a verdict; the host's own checks
(busy host, other machine) have their tests below.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib.backends.backend_agg  # noqa: F401  in-process pytester runs unload what they import: two plots
import matplotlib.figure  # noqa: F401               in two inner runs would mix two copies of matplotlib's classes
import pytest

INNER = """
import os
import random

import pytest

from pytest_tinyml import history

BOARD = {"chip": "esp32s3", "cpu_mhz": 240, "firmware_hash": os.environ.get("TINYML_TEST_FW", "f1")}


def timings(scale, seed):
    rng = random.Random(seed)
    return [1000.0 * scale * rng.lognormvariate(0.0, 0.03) for _ in range(int(os.environ.get("TINYML_TEST_N", 30)))]


def test_model_latency():
    scale = float(os.environ.get("TINYML_TEST_SCALE", "1.0"))
    seed = int(os.environ["TINYML_TEST_SEED"])
    history.observe(kind=os.environ.get("TINYML_TEST_KIND", "board"), samples_us=timings(scale, seed),
                    context={"board": BOARD, "model_sha256": os.environ.get("TINYML_TEST_SHA", "ab" * 32)})


def test_steady():
    history.observe(kind="board", samples_us=timings(1.0, int(os.environ["TINYML_TEST_SEED"]) + 100),
                    context={"board": BOARD})
"""


# pytest-embedded's autouse fixture warns about record_xml_attribute; keep warning counts about ours.
QUIET = ("-p", "no:cacheprovider", "-W", "default", "-W", "ignore:record_xml_attribute is an experimental feature")


def run(pytester, monkeypatch, seed, scale=1.0, *args):
    monkeypatch.setenv("TINYML_TEST_SEED", str(seed))
    monkeypatch.setenv("TINYML_TEST_SCALE", str(scale))
    return pytester.runpytest(*QUIET, *args)


def build_window(pytester, monkeypatch, runs=4, *args):
    """``runs`` unchanged runs: the first has no baseline, the next two too little history, then comparisons."""
    for seed in range(1, runs + 1):
        run(pytester, monkeypatch, seed, 1.0, *args).assert_outcomes(passed=2, warnings=2 if seed <= 3 else 0)


@pytest.fixture
def project(pytester, monkeypatch):
    # The inner runs are in-process: under `pytest -n 2` they would inherit this worker's xdist count, which the
    # host fingerprint records (tests below set it where they mean to).
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    pytester.makepyfile(test_lat=INNER)
    return pytester


def records(project) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (project.path / ".tinyml_history" / "records").glob("*/*.json")]
    return sorted(found, key=lambda r: r["time"])


def test_window_builds_up_then_unchanged_then_regression_then_accept(project, monkeypatch):
    first = run(project, monkeypatch, 1)
    first.assert_outcomes(passed=2, warnings=2)
    first.stdout.fnmatch_lines([
        "*HistoryWarning: no-baseline: test_lat.py::test_model_latency @ esp32s3: no earlier run of "
        "test_lat.py::test_model_latency @ esp32s3; this run starts the moving baseline 'last' (comparisons "
        "begin after 3 runs)",
        "*tinyml latency history*",
        "no-baseline  test_lat.py::test_model_latency @ esp32s3 * - *30",
    ])
    assert first.stdout.str().count("no earlier run of test_lat.py::test_model_latency") == 1  # said once
    for seed in (2, 3):
        early = run(project, monkeypatch, seed)
        early.assert_outcomes(passed=2, warnings=2)
        early.stdout.fnmatch_lines(["*HistoryWarning: inconclusive: test_lat.py::test_model_latency @ esp32s3: "
                                    f"median * -> * us (*), allowed * us, baseline of {seed - 1} run(s); too little "
                                    f"history: {seed - 1} baseline run(s), 3 needed*",
                                    "inconclusive  test_lat.py::test_model_latency @ esp32s3 *"])
    unchanged = run(project, monkeypatch, 4)
    unchanged.assert_outcomes(passed=2)
    unchanged.stdout.fnmatch_lines(["unchanged  test_lat.py::test_model_latency @ esp32s3 *%  * 3  30"])
    unchanged.stdout.no_fnmatch_line("*HistoryWarning*")

    monkeypatch.setenv("TINYML_TEST_SHA", "cd" * 32)
    slower = run(project, monkeypatch, 5, 1.2)
    slower.assert_outcomes(passed=1, failed=1)
    slower.stdout.fnmatch_lines([
        "*latency regression in test_lat.py::test_model_latency @ esp32s3: median 1*.* -> 1*.* us (+*%), allowed +*",
        "  baseline 'last' (* UTC)  median of 4 run medians * us   between-run spread *",
        "  now (* UTC, *)*  median * us   p10-p90 *-* us   n = 30",
        "  allowed = max(4 x spread *, 1.25 x the largest slowdown seen *, min_effect 5% *, floor 2 us)",
        f"  changed since the baseline: model sha256 {'ab' * 6} -> {'cd' * 6}*",
        "  if this slowdown is expected, accept it as the new baseline: "
        "pytest 'test_lat.py::test_model_latency' --tinyml-save-baseline",
        "regression  test_lat.py::test_model_latency @ esp32s3 *+*% *",
        "FAILED test_lat.py::test_model_latency - latency regression*",
    ])
    change = float(re.search(r"us \(\+([0-9.]+)%\), allowed", slower.stdout.str()).group(1))
    assert 15 < change < 25
    run(project, monkeypatch, 6, 1.2).assert_outcomes(passed=1, failed=1)  # a slowdown is never absorbed

    accepted = run(project, monkeypatch, 7, 1.2, "--tinyml-save-baseline")
    accepted.assert_outcomes(passed=2)
    accepted.stdout.fnmatch_lines(["accepted     test_lat.py::test_model_latency @ esp32s3: *; saved as baseline "
                                   "'last' (regression accepted: the baseline starts again here)"])
    after = run(project, monkeypatch, 8, 1.2)
    after.assert_outcomes(passed=2, warnings=1)  # the window restarted at the accepted run: 1 run so far
    after.stdout.fnmatch_lines(["*inconclusive: test_lat.py::test_model_latency @ esp32s3: *too little history: "
                                "1 baseline run(s)*"])
    stored = records(project)
    assert len(stored) == 16  # every run of both tests is in the history, failed ones too
    verdicts = [r["verdict"]["verdict"] for r in stored if r["test_id"] == "test_lat.py::test_model_latency"]
    assert verdicts == ["no-baseline", "inconclusive", "inconclusive", "unchanged", "regression", "regression",
                        "accepted", "inconclusive"]
    assert len({r["run"] for r in stored}) == 8  # one run id per session, shared by its tests


def test_n1_baseline_is_inconclusive_in_the_warning_the_table_and_the_json(project, monkeypatch):
    monkeypatch.setenv("TINYML_TEST_N", "1")  # an MLPerf-only firmware reports one figure
    run(project, monkeypatch, 1).assert_outcomes(passed=2, warnings=2)
    result = run(project, monkeypatch, 2, 5.0, "--tinyml-report=report.json")
    result.assert_outcomes(passed=2, warnings=2)  # +400%, and still not a pass: inconclusive
    result.stdout.fnmatch_lines([
        "*HistoryWarning: inconclusive: test_lat.py::test_model_latency @ esp32s3: median * -> * us (+4*%)*too "
        "little history: 1 baseline run(s) of 1 sample, 3 needed*",
        "inconclusive  test_lat.py::test_model_latency @ esp32s3 * +4*% * 1  1",
    ])
    result.stdout.no_fnmatch_line("unchanged *test_model_latency*")
    rows = {row["test"]: row for row in json.loads((project.path / "report.json").read_text())["tests"]}
    [comparison] = rows["test_lat.py::test_model_latency"]["latency_comparisons"]
    assert comparison["verdict"] == "inconclusive" and comparison["baseline_n"] == 1 and comparison["change"] > 3


def test_misspelt_named_baseline_is_a_usage_error_listing_the_names(project, monkeypatch):
    build_window(project, monkeypatch, 3)
    run(project, monkeypatch, 4, 1.0, "--tinyml-save-baseline=release").assert_outcomes(passed=2)
    typo = run(project, monkeypatch, 5, 8.5, "--tinyml-baseline=relase")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stderr.fnmatch_lines(["ERROR: --tinyml-baseline=relase: no baseline 'relase' in *.tinyml_history; saved "
                               "baselines: 'last', 'release' (*). Save one with --tinyml-save-baseline=relase"])
    assert not (project.path / ".tinyml_history" / "baselines" / "relase").exists()  # nothing saved under the typo
    right = run(project, monkeypatch, 5, 8.5, "--tinyml-baseline=release")
    right.assert_outcomes(passed=1, failed=1)  # the 8.5x slowdown, against the name that exists
    right.stdout.fnmatch_lines(["*latency regression in test_lat.py::test_model_latency*", "  baseline 'release' (*"])


def test_corrupt_named_baseline_is_never_replaced_silently(project, monkeypatch):
    build_window(project, monkeypatch, 3)
    run(project, monkeypatch, 4, 1.0, "--tinyml-save-baseline=v1").assert_outcomes(passed=2)
    [path] = [p for p in (project.path / ".tinyml_history" / "baselines" / "v1").glob("*/*.json")
              if "test_model_latency" in p.parent.name]
    path.write_text('{"schema": 1, "runs": [{"oops"')
    slow = run(project, monkeypatch, 5, 3.0, "--tinyml-baseline=v1")
    slow.assert_outcomes(passed=2, warnings=1)
    slow.stdout.fnmatch_lines(["*HistoryWarning: inconclusive: test_lat.py::test_model_latency @ esp32s3: baseline "
                               "'v1' of test_lat.py::test_model_latency @ esp32s3 is corrupt: *; it was left in place: "
                               "restore it, or replace it with this run's window: --tinyml-save-baseline=v1"])
    assert path.read_text() == '{"schema": 1, "runs": [{"oops"'  # the slow run did not become the baseline
    replaced = run(project, monkeypatch, 6, 1.0, "--tinyml-baseline=v1", "--tinyml-save-baseline=v1")
    replaced.assert_outcomes(passed=2, warnings=1)
    assert json.loads(path.read_text())["runs"]  # replaced, as asked ...
    assert any("oops" in p.read_text() for p in (project.path / ".tinyml_history" / "corrupt").iterdir())  # ... kept


def test_marker_sets_the_thresholds(project, monkeypatch):
    project.makepyfile(test_loose=INNER.replace("def test_model_latency",
                                                "@pytest.mark.tinyml_latency(min_effect=0.3)\ndef test_model_latency"))
    for seed in range(1, 5):
        run(project, monkeypatch, seed).assert_outcomes(passed=4, warnings=4 if seed <= 3 else 0)
    result = run(project, monkeypatch, 5, 1.2)
    result.assert_outcomes(passed=3, failed=1)  # 20% slower: fails at the 5% default, passes at 30%
    result.stdout.fnmatch_lines(["FAILED test_lat.py::test_model_latency - latency regression*"])


@pytest.mark.parametrize(("marker", "message"), [
    ("tinyml_latency(spread_k=0)", "*ConfigError: tinyml_latency(spread_k=...) must be a multiple of the between-run*"),
    ("tinyml_latency(0.2)", "*ConfigError: tinyml_latency takes keywords only*min_effect=0.2)*"),
    ("tinyml_latency(alpha=0.01)", "*ConfigError: tinyml_latency got unknown arguments ?'alpha'? on *; known: min_effect=0.05, spread_k=4.0, *"),
])
def test_bad_marker_arguments_fail_the_test_with_the_fix(pytester, monkeypatch, marker, message):
    pytester.makepyfile(test_bad=INNER.replace("def test_model_latency", f"@pytest.mark.{marker}\ndef test_model_latency"))
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([message])


def test_faster_run_passes_and_says_so_once(project, monkeypatch):
    build_window(project, monkeypatch)
    result = run(project, monkeypatch, 5, 0.7)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["faster       test_lat.py::test_model_latency @ esp32s3: median * -> * us (-*%)*"])
    assert run(project, monkeypatch, 6, 0.97).ret == 0  # -3% is noise: unchanged, not "faster"
    assert [r["verdict"]["verdict"] for r in records(project)][-2:] == ["unchanged", "unchanged"]


def test_other_host_is_not_compared_and_says_why(project, monkeypatch):
    monkeypatch.setenv("TINYML_TEST_KIND", "host")
    run(project, monkeypatch, 1).assert_outcomes(passed=2, warnings=2)
    for path in (project.path / ".tinyml_history" / "records").glob("*/*.json"):
        data = json.loads(path.read_text())
        if data["kind"] == "host":
            data["host"]["cpu_model"] = "A Different CPU"
            path.write_text(json.dumps(data))
    result = run(project, monkeypatch, 2, 1.5)  # 50% slower, but on "another machine": never a silent pass
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines([
        "*HistoryWarning: not-compared: test_lat.py::test_model_latency @ host: not compared with the 1 earlier "
        "run(s): host machine differs: host cpu_model A Different CPU (baseline) vs * (now); this run starts*",
    ])


def test_busy_host_is_inconclusive_not_a_failure(project, monkeypatch):
    monkeypatch.setenv("TINYML_TEST_KIND", "host")
    build_window(project, monkeypatch)
    for path in (project.path / ".tinyml_history" / "records").glob("*/*.json"):
        data = json.loads(path.read_text())  # a baseline measured under heavy load: today's load is never above
        if data["kind"] == "host":
            data["load"]["load_1m"] = 1000.0
            path.write_text(json.dumps(data))
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    busy = run(project, monkeypatch, 5, 1.5)
    busy.assert_outcomes(passed=2, warnings=1)
    busy.stdout.fnmatch_lines(["*HistoryWarning: inconclusive: test_lat.py::test_model_latency @ host: *; unreliable "
                               "measurement: 2 pytest-xdist workers share this host now, 1 at the baseline"])
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    run(project, monkeypatch, 6, 1.5).assert_outcomes(passed=1, failed=1)  # the same slowdown, a quiet host


def test_failing_test_is_stored_but_not_compared(pytester, monkeypatch):
    pytester.makepyfile(test_fail="""
        from pytest_tinyml import history

        def test_broken():
            history.observe(kind="host", samples_us=[5.0, 6.0, 7.0], context={})
            assert False, "the model is wrong"
    """)
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["not-compared  test_fail.py::test_broken @ host *"])
    [stored] = [json.loads(p.read_text()) for p in (pytester.path / ".tinyml_history" / "records").glob("*/*.json")]
    assert stored["verdict"]["verdict"] == "not-compared" and stored["verdict"]["accepted"] is False


def test_two_observations_in_one_test_are_two_series(pytester, monkeypatch):
    pytester.makepyfile(test_two="""
        from pytest_tinyml import history

        def test_both():
            history.observe(kind="host", samples_us=[5.0, 6.0], context={"model": "a"})
            history.observe(kind="host", samples_us=[50.0, 60.0], context={"model": "b"})
    """)
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(["no-baseline  test_two.py::test_both @ host*",
                                 "no-baseline  test_two.py::test_both#2 @ host*"])


def test_reports_json_junit_and_openmetrics(project, monkeypatch):
    build_window(project, monkeypatch)
    result = run(project, monkeypatch, 5, 1.25, "--tinyml-report=report.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    rows = {row["test"]: row for row in json.loads((project.path / "report.json").read_text())["tests"]}
    comparison = rows["test_lat.py::test_model_latency"]["latency_comparisons"][0]
    assert comparison["verdict"] == "regression" and comparison["n"] == comparison["baseline_n"] == 30
    assert comparison["change"] > 0.15 and comparison["baseline_runs"] == 4 and comparison["allowed_us"] >= 50
    assert rows["test_lat.py::test_model_latency"]["outcome"] == "failed"
    junit = ET.parse(project.path / "junit.xml")
    names = {p.get("name") for p in junit.iter("property")}
    assert {"tinyml.latency_median_us", "tinyml.latency_comparisons", "tinyml.latency_verdict",
            "tinyml.latency_change", "tinyml.latency_baseline_median_us"} <= names
    verdicts = {p.get("value") for p in junit.iter("property") if p.get("name") == "tinyml.latency_verdict"}
    assert verdicts == {"regression", "unchanged"}
    metrics = (project.path / ".tinyml_history" / "metrics.txt").read_text().splitlines()
    log_metric_line = re.compile(r'^[a-z0-9_]+\{test="[^"]+",where="esp32s3",kind="board"\} [-+0-9.e]+$')
    assert metrics and all(log_metric_line.match(line) for line in metrics)
    assert 'tinyml_latency_regression{test="test_lat.py::test_model_latency",where="esp32s3",kind="board"} 1' in metrics
    assert 'tinyml_latency_regression{test="test_lat.py::test_steady",where="esp32s3",kind="board"} 0' in metrics
    trend = project.path / "report-latency-trend.png"
    assert trend.read_bytes()[:4] == b"\x89PNG"
    result.stdout.fnmatch_lines(["OpenMetrics: *metrics.txt", "trend plot: *report-latency-trend.png"])


def test_no_latency_no_section(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*tinyml latency history*")
    assert not (pytester.path / ".tinyml_history").exists()


@pytest.fixture
def benchmark_enabled(monkeypatch):
    """pytest-benchmark turns itself off when it sees PYTEST_XDIST_WORKER, which leaks in when we run under -n."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


def test_pytest_benchmark_timings_feed_the_history(pytester, benchmark_enabled):
    pytester.makepyfile(test_bench="""
        from pytest_tinyml import history

        class SumRunner:
            # the shape of a runtime runner (LiteRTRunner, TFLMRunner): invoke_once() and an artifact
            artifact = None

            def invoke_once(self):
                return sum(range(2000))

        def test_fn(benchmark):
            benchmark.pedantic(sorted, args=(list(range(500, 0, -1)),), rounds=25)
            record = history.observe_benchmark(benchmark, context={"runtime": "python"})
            assert record.kind == "host" and len(record.samples_us) == 25
            assert all(0 < s < 1e5 for s in record.samples_us)

        def test_runner(benchmark):
            record = history.benchmark_invoke(benchmark, SumRunner(), rounds=20, warmup_rounds=2)
            assert record.context["runtime"] == "SumRunner" and len(record.samples_us) == 20
    """)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(["no-baseline  test_bench.py::test_fn @ host*",
                                 "no-baseline  test_bench.py::test_runner @ host*"])


def test_disabled_benchmark_warns_instead_of_pretending(pytester):
    pytester.makepyfile(test_bench="""
        from pytest_tinyml import history

        def test_fn(benchmark):
            benchmark.pedantic(sorted, args=([3, 1, 2],), rounds=5)
            assert history.observe_benchmark(benchmark) is None
    """)
    result = pytester.runpytest(*QUIET, "--benchmark-disable")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*HistoryWarning: pytest-benchmark is disabled*"])


@pytest.mark.slow
def test_under_xdist_workers_compare_and_controller_summarizes(project, monkeypatch):
    build_window(project, monkeypatch)
    monkeypatch.setenv("TINYML_TEST_SEED", "5")
    same = project.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    same.assert_outcomes(passed=2)
    same.stdout.fnmatch_lines(["unchanged  test_lat.py::test_*", "unchanged  test_lat.py::test_*"])
    monkeypatch.setenv("TINYML_TEST_SEED", "6")
    monkeypatch.setenv("TINYML_TEST_SCALE", "1.2")
    second = project.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["*latency regression in test_lat.py::test_model_latency @ esp32s3*"])
    xdist_runs = {r["run"] for r in records(project)[-2:]}
    assert len(xdist_runs) == 1  # both workers' records carry the session's run id
    assert "tinyml_latency_regression" in (project.path / ".tinyml_history" / "metrics.txt").read_text()


def test_loading_history_imports_nothing_heavy():
    code = ("import sys, pytest_tinyml.plugin, pytest_tinyml.history, pytest_tinyml.history.hooks, "
            "pytest_tinyml.cli; print(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'tensorflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
