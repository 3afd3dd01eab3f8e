"""The latency gate as users see it: baseline on first run, pass when unchanged, fail when 20% slower, accept.

The inner test file observes seeded lognormal host timings whose scale comes from an environment variable,
so each run here is a real pytest session whose latency we control.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib.backends.backend_agg  # noqa: F401  (see below)
import pytest
import scipy.stats  # noqa: F401  in-process pytester runs unload what they import; numpy loads only once

INNER = """
import os
import random

import pytest

from pytest_tinyml import history


def timings(scale, seed):
    rng = random.Random(seed)
    return [1000.0 * scale * rng.lognormvariate(0.0, 0.03) for _ in range(30)]


def test_model_latency():
    scale = float(os.environ.get("TINYML_TEST_SCALE", "1.0"))
    seed = int(os.environ["TINYML_TEST_SEED"])
    history.observe(kind="host", samples_us=timings(scale, seed), context={"model_sha256": "ab" * 32})


def test_steady():
    history.observe(kind="host", samples_us=timings(1.0, int(os.environ["TINYML_TEST_SEED"]) + 100), context={})
"""


# pytest-embedded's autouse fixture warns about record_xml_attribute; keep warning counts about ours.
QUIET = ("-p", "no:cacheprovider", "-W", "default", "-W", "ignore:record_xml_attribute is an experimental feature")


def run(pytester, monkeypatch, seed, scale=1.0, *args):
    monkeypatch.setenv("TINYML_TEST_SEED", str(seed))
    monkeypatch.setenv("TINYML_TEST_SCALE", str(scale))
    return pytester.runpytest(*QUIET, *args)


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_lat=INNER)
    return pytester


def test_baseline_then_unchanged_then_regression_then_accept(project, monkeypatch):
    first = run(project, monkeypatch, 1)
    first.assert_outcomes(passed=2, warnings=2)
    first.stdout.fnmatch_lines([
        "*HistoryWarning: test_lat.py::test_model_latency @ host: no baseline yet *; saved this run as "
        "baseline 'last' in *.tinyml_history (nothing was compared)",
        "*tinyml latency history*",
        "no-baseline  test_lat.py::test_model_latency @ host: no baseline yet*",
    ])
    assert len(list((project.path / ".tinyml_history" / "baselines" / "last").glob("*/*.json"))) == 2

    unchanged = run(project, monkeypatch, 2)
    unchanged.assert_outcomes(passed=2)
    unchanged.stdout.fnmatch_lines(["unchanged*test_lat.py::test_model_latency @ host *1* *1* *% *30/30"])
    unchanged.stdout.no_fnmatch_line("*HistoryWarning*")

    slower = run(project, monkeypatch, 3, 1.2)
    slower.assert_outcomes(passed=1, failed=1)
    slower.stdout.fnmatch_lines([
        "*latency regression in test_lat.py::test_model_latency @ host: median +2*% (limit +10.0%), p = *",
        "  baseline 'last' (* UTC, no git)  median *1* us   p90 *1* us   n = 30",
        "  now (* UTC, *)*  median *1* us   p90 *1* us   n = 30",
        "  change: median +*%, p90 +*%; Mann-Whitney U one-sided (slower) p = *",
        "  if this slowdown is expected, accept it as the new baseline: "
        "pytest 'test_lat.py::test_model_latency' --tinyml-save-baseline",
        "regression*test_lat.py::test_model_latency @ host *+2*% *30/30",
        "FAILED test_lat.py::test_model_latency - latency regression*",
    ])
    change = float(re.search(r"median \+([0-9.]+)% \(limit", slower.stdout.str()).group(1))
    assert 15 < change < 25

    accepted = run(project, monkeypatch, 4, 1.2, "--tinyml-save-baseline")
    accepted.assert_outcomes(passed=2)
    accepted.stdout.fnmatch_lines(["accepted     test_lat.py::test_model_latency @ host: *; saved as baseline "
                                   "'last' (slowdown accepted)"])

    after = run(project, monkeypatch, 5, 1.2)
    after.assert_outcomes(passed=2)
    records = list((project.path / ".tinyml_history" / "records").glob("*/*.json"))
    assert len(records) == 10  # every run of both tests is in the history, failed ones too
    verdicts = sorted(json.loads(p.read_text())["verdict"]["verdict"] for p in records)
    assert verdicts.count("regression") == 1 and verdicts.count("no-baseline") == 2


def test_marker_sets_the_thresholds(project, monkeypatch):
    project.makepyfile(test_loose=INNER.replace("def test_model_latency",
                                                "@pytest.mark.tinyml_latency(min_effect=0.3)\ndef test_model_latency"))
    run(project, monkeypatch, 1).assert_outcomes(passed=4, warnings=4)
    result = run(project, monkeypatch, 2, 1.2)
    result.assert_outcomes(passed=3, failed=1)  # 20% slower: fails at the 10% default, passes at 30%
    result.stdout.fnmatch_lines(["FAILED test_lat.py::test_model_latency - latency regression*"])


def test_bad_marker_argument_fails_the_test_with_the_fix(pytester, monkeypatch):
    pytester.makepyfile(test_bad=INNER.replace("def test_model_latency",
                                               "@pytest.mark.tinyml_latency(alpha=5)\ndef test_model_latency"))
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ConfigError: tinyml_latency(alpha=...) must be between 0 and 1 (e.g. 0.01)*"])


def test_faster_run_passes_and_suggests_saving(project, monkeypatch):
    run(project, monkeypatch, 1).assert_outcomes(passed=2, warnings=2)
    result = run(project, monkeypatch, 2, 0.7)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["faster       test_lat.py::test_model_latency @ host: median *(-*%)*; to keep the "
                                 "gain, save it: --tinyml-save-baseline"])


def test_positional_marker_argument_is_refused(pytester, monkeypatch):
    pytester.makepyfile(test_pos=INNER.replace("def test_model_latency",
                                               "@pytest.mark.tinyml_latency(0.2)\ndef test_model_latency"))
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ConfigError: tinyml_latency takes keywords only*min_effect=0.2, alpha=0.01)*"])


def test_named_baselines(project, monkeypatch):
    run(project, monkeypatch, 1, 1.0, "--tinyml-save-baseline=v1").assert_outcomes(passed=2, warnings=2)
    run(project, monkeypatch, 2, 1.3, "--tinyml-save-baseline=v2").assert_outcomes(passed=2)  # accepted into v2
    # The default is the last saved baseline (v2): 1.3 is unchanged against it, but 30% slower than v1.
    run(project, monkeypatch, 3, 1.3).assert_outcomes(passed=2)
    against_v1 = run(project, monkeypatch, 3, 1.3, "--tinyml-baseline=v1")
    against_v1.assert_outcomes(passed=1, failed=1)
    against_v1.stdout.fnmatch_lines(["*baseline 'v1' (*", "*--tinyml-save-baseline=v1"])
    missing = run(project, monkeypatch, 4, 1.0, "--tinyml-baseline=v3")
    missing.assert_outcomes(passed=2, warnings=2)
    missing.stdout.fnmatch_lines(["*no baseline 'v3' yet for test_lat.py::test_model_latency @ host; saved this run "
                                  "as baseline 'v3'*"])


def test_other_host_is_not_compared_and_says_why(project, monkeypatch):
    run(project, monkeypatch, 1).assert_outcomes(passed=2, warnings=2)
    for path in (project.path / ".tinyml_history" / "baselines").glob("*/*/*.json"):
        data = json.loads(path.read_text())
        data["host"]["cpu_model"] = "A Different CPU"
        path.write_text(json.dumps(data))
    result = run(project, monkeypatch, 2, 1.5)  # 50% slower, but on "another machine": never a silent pass
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines([
        "not-compared test_lat.py::test_model_latency @ host: not compared with baseline of *: host machine "
        "differs: cpu_model A Different CPU (baseline) vs * (now); saved this run as baseline 'last'*",
    ])


def test_failing_test_is_stored_but_not_compared(pytester, monkeypatch):
    pytester.makepyfile(test_fail="""
        from pytest_tinyml import history

        def test_broken():
            history.observe(kind="host", samples_us=[5.0, 6.0, 7.0], context={})
            assert False, "the model is wrong"
    """)
    result = run(pytester, monkeypatch, 1)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["not-compared test_fail.py::test_broken @ host: not compared: the test did not pass"])
    assert not (pytester.path / ".tinyml_history" / "baselines").exists()
    assert len(list((pytester.path / ".tinyml_history" / "records").glob("*/*.json"))) == 1


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
    run(project, monkeypatch, 1).assert_outcomes(passed=2, warnings=2)
    result = run(project, monkeypatch, 2, 1.25, "--tinyml-report=report.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    rows = {row["test"]: row for row in json.loads((project.path / "report.json").read_text())["tests"]}
    comparison = rows["test_lat.py::test_model_latency"]["latency_comparisons"][0]
    assert comparison["verdict"] == "regression" and comparison["n"] == comparison["baseline_n"] == 30
    assert comparison["change"] > 0.15 and comparison["p_value"] < 0.01
    assert rows["test_lat.py::test_model_latency"]["outcome"] == "failed"
    junit = ET.parse(project.path / "junit.xml")
    names = {p.get("name") for p in junit.iter("property")}
    assert {"tinyml.latency_median_us", "tinyml.latency_comparisons", "tinyml.latency_verdict",
            "tinyml.latency_change", "tinyml.latency_p_value", "tinyml.latency_baseline_median_us"} <= names
    verdicts = {p.get("value") for p in junit.iter("property") if p.get("name") == "tinyml.latency_verdict"}
    assert verdicts == {"regression", "unchanged"}
    metrics = (project.path / ".tinyml_history" / "metrics.txt").read_text().splitlines()
    log_metric_line = re.compile(r'^[a-z0-9_]+\{test="[^"]+",where="host",kind="host"\} [-+0-9.e]+$')
    assert metrics and all(log_metric_line.match(line) for line in metrics)
    assert 'tinyml_latency_regression{test="test_lat.py::test_model_latency",where="host",kind="host"} 1' in metrics
    assert 'tinyml_latency_regression{test="test_lat.py::test_steady",where="host",kind="host"} 0' in metrics
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
    monkeypatch.setenv("TINYML_TEST_SEED", "1")
    first = project.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["no-baseline  test_lat.py::test_*", "no-baseline  test_lat.py::test_*"])
    monkeypatch.setenv("TINYML_TEST_SEED", "2")
    monkeypatch.setenv("TINYML_TEST_SCALE", "1.2")
    second = project.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["*latency regression in test_lat.py::test_model_latency @ host*"])
    assert "tinyml_latency_regression" in (project.path / ".tinyml_history" / "metrics.txt").read_text()


def test_loading_history_imports_nothing_heavy():
    code = ("import sys, pytest_tinyml.plugin, pytest_tinyml.history, pytest_tinyml.history.hooks, "
            "pytest_tinyml.cli; print(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'tensorflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
