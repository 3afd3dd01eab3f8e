"""The user's view of issue 4: this exact file, in a fresh project, passes as written."""

from __future__ import annotations

import json

import pytest

# Copied verbatim from issue 4 ("The user's view"); it must keep working as written.
USER_FILE = '''\
import pytest
import pytest_tinyml as tinyml

@pytest.fixture(scope="session")
def digits():
    return tinyml.datasets.load("digits")

@pytest.fixture(scope="session")
def float_model(digits, tinyml_cache):
    model = tinyml.zoo.build("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes)
    return tinyml_cache.fit(model, digits, epochs=30)

@pytest.fixture(scope="session")
def int8_model(float_model, digits, tinyml_cache):
    return tinyml_cache.convert(float_model, "int8", representative=digits.x_train[:300])

def test_accuracy_drop(float_model, int8_model, digits):
    tinyml.assert_accuracy_drop(float_model, int8_model, digits.x_test, digits.y_test, max_drop=0.01)

def test_fits_budget(int8_model):
    tinyml.assert_budget(int8_model, flash_kb=64, arena_kb=16)

def test_int8_parity(float_model, int8_model, digits):
    tinyml.assert_parity(float_model, int8_model, digits.x_test, min_top1_agreement=0.98)

@pytest.mark.tinyml_board
def test_on_device(tinyml_board, int8_model, digits):
    result = tinyml_board.benchmark(int8_model, inputs=digits.x_test[:4], runs=20)
    assert result.latency_us.median < 5_000
    tinyml.assert_parity(int8_model, result, digits.x_test[:4], max_error_steps=1)
'''


@pytest.mark.slow
def test_the_issue_4_user_file_passes_as_written(pytester, tmp_path):
    pytester.makepyfile(test_quality=USER_FILE)
    cache = tmp_path / "cache"
    report_path = pytester.path / "tinyml-report.json"
    result = pytester.runpytest_subprocess(
        f"--tinyml-cache-dir={cache}", f"--tinyml-report={report_path}", "--junitxml=junit.xml", "-rs",
        "-p", "no:cacheprovider",
        timeout=600,
    )
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*needs a board: run with --tinyml-board=*"])

    # The end-of-session summary table: one row per tinyml test, with its figures.
    result.stdout.fnmatch_lines([
        "*tinyml summary*",
        "test*model*recipe*flash KB*arena KB*accuracy*drop*top-1 agree*",
        "test_accuracy_drop*int8*passed",
        "test_fits_budget*int8*passed",
        "test_int8_parity*int8*passed",
    ])

    rows = {row["test"].split("::")[-1]: row for row in json.loads(report_path.read_text())["tests"]}
    assert set(rows) == {"test_accuracy_drop", "test_fits_budget", "test_int8_parity"}
    drop = rows["test_accuracy_drop"]
    assert drop["recipe"] == "int8" and drop["outcome"] == "passed"
    assert drop["accuracy"] >= 0.9 and drop["drop"] <= 0.01
    budget = rows["test_fits_budget"]
    assert 0 < budget["flash_kb"] <= 64 and 0 < budget["arena_kb"] <= 16
    assert rows["test_int8_parity"]["top1_agreement"] >= 0.98
    # The same figures reach JUnit XML as test properties.
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="tinyml.flash_kb"' in junit and '<property name="tinyml.top1_agreement"' in junit
    assert cache.is_dir() and any(cache.iterdir()), "the cache must live where --tinyml-cache-dir says"


def readme_first_test() -> str:
    """The first ```python block of README.md ("Your first model-quality test"), as a user copies it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Your first model-quality test", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "def test_on_device(tinyml_board" in block, "README's first test file moved: update this test"
    return block


@pytest.mark.slow
def test_the_readme_first_test_file_passes_on_the_sim(pytester, tmp_path):
    """README says `pytest --tinyml-board=sim` runs all four of its first tests against the host simulator."""
    pytester.makepyfile(test_quality=readme_first_test())
    report_path = pytester.path / "tinyml-report.json"
    result = pytester.runpytest_subprocess(
        f"--tinyml-cache-dir={tmp_path / 'cache'}", f"--tinyml-history={tmp_path / 'history'}",
        f"--tinyml-report={report_path}", "--tinyml-board=sim", "-p", "no:cacheprovider", timeout=600,
    )
    result.assert_outcomes(passed=4)
    rows = {row["test"].split("::")[-1]: row for row in json.loads(report_path.read_text())["tests"]}
    assert rows["test_on_device"]["outcome"] == "passed" and "sim" in rows["test_on_device"]["where"].split("+")
