"""Host latency of the real LiteRT and TFLite Micro invoke, timed by pytest-benchmark, into the history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

MODEL = Path(__file__).parent / "data" / "board_mlp_int8.tflite"

HOST_TEST = """
import pathlib

import pytest

import pytest_tinyml as tinyml

MODEL = pathlib.Path(__file__).parent / "model.tflite"


# The plumbing is under test here, not this busy CI machine's speed: no slowdown may fail these.
@pytest.mark.tinyml_latency(min_effect=10.0)
@pytest.mark.parametrize("engine", ["litert", "tflm"])
def test_invoke_latency(benchmark, engine):
    from pytest_tinyml.runtime.litert import LiteRTRunner
    from pytest_tinyml.runtime.tflm import TFLMRunner

    runner = (LiteRTRunner if engine == "litert" else TFLMRunner)(MODEL)
    record = tinyml.history.benchmark_invoke(benchmark, runner, rounds=30, warmup_rounds=3)
    assert len(record.samples_us) == 30 and record.model_sha256 == runner.artifact.sha256
"""


@pytest.mark.slow
def test_litert_and_tflm_invoke_feed_the_history(pytester, monkeypatch):
    # pytest-benchmark turns itself off when it sees PYTEST_XDIST_WORKER, which leaks in when we run under -n.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    shutil.copy(MODEL, pytester.path / "model.tflite")
    pytester.makepyfile(test_host=HOST_TEST)
    args = ("-p", "no:cacheprovider", "--benchmark-disable-gc")
    first = pytester.runpytest_subprocess(*args, timeout=600)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["no-baseline  test_host.py::test_invoke_latency?litert? @ host*",
                                "no-baseline  test_host.py::test_invoke_latency?tflm? @ host*"])
    second = pytester.runpytest_subprocess(*args, timeout=600)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["inconclusive  test_host.py::test_invoke_latency?litert? @ host * 1  30",
                                 "inconclusive  test_host.py::test_invoke_latency?tflm? @ host * 1  30"])
    records = [json.loads(p.read_text()) for p in (pytester.path / ".tinyml_history" / "records").glob("*/*.json")]
    assert sorted(r["context"]["runtime"] for r in records) == ["LiteRTRunner"] * 2 + ["TFLMRunner"] * 2
    assert all(r["host"]["cpu_model"] and r["context"]["timer"] == "pytest-benchmark" for r in records)
    assert all(r["host"]["libraries"].get("ai-edge-litert") and r["load"]["cpu_count"] for r in records)
