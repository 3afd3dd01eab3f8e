"""Done-when of the board issue: the issue-4 user file's on-device test passes with --tinyml-board=sim."""

from __future__ import annotations

import json

import pytest
from test_user_view import USER_FILE  # the issue-4 file, verbatim


@pytest.mark.slow
def test_user_file_on_device_test_passes_on_the_sim(pytester, tmp_path):
    pytester.makepyfile(test_quality=USER_FILE)
    report_path = pytester.path / "tinyml-report.json"
    result = pytester.runpytest_subprocess(
        "--tinyml-board=sim", f"--tinyml-cache-dir={tmp_path / 'cache'}", f"--tinyml-report={report_path}",
        "-p", "no:cacheprovider", timeout=900,
    )
    result.assert_outcomes(passed=4)  # the whole file, its on-device test on the sim included
    result.stdout.fnmatch_lines(["tinyml boards: sim", "*tinyml summary*", "test_on_device*sim*passed"])
    rows = {row["test"].split("::")[-1]: row for row in json.loads(report_path.read_text())["tests"]}
    row = rows["test_on_device"]
    assert row["where"] == "sim" and 0 < row["latency_median_us"] < 5_000 and row["arena_kb"] > 0


def test_user_file_on_device_test_skips_without_a_board(pytester):
    pytester.makepyfile(test_quality=USER_FILE)
    result = pytester.runpytest("-rs", "-k", "on_device", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, deselected=3)
    result.stdout.fnmatch_lines(["*SKIPPED*needs a board: run with --tinyml-board=*"])
