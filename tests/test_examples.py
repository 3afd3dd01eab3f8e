"""examples/user_repo is a project of its own: run its tests the way its README says, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

USER_REPO = Path(__file__).resolve().parents[1] / "examples" / "user_repo"


@pytest.mark.slow
def test_user_repo_passes(tmp_path):
    repo = tmp_path / "user_repo"
    shutil.copytree(USER_REPO, repo, ignore=shutil.ignore_patterns(".tinyml_cache", "__pycache__", "*.json"))
    env = dict(os.environ, PYTHONPATH=str(repo))  # what `pip install -e .` would give
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "5 passed, 1 skipped" in out, out[-2000:]
    assert "needs a board: run with --tinyml-board=" in out
    assert "tinyml summary" in out
    rows = json.loads((repo / "tinyml-report.json").read_text())["tests"]
    assert {row["test"].split("::")[-1] for row in rows} >= {"test_int8_keeps_accuracy", "test_fits_the_fan_controller"}

    # The README's next line, on the warm cache: the board test against the host simulator.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "--tinyml-board=sim",
         f"--tinyml-history={tmp_path / 'history'}"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "6 passed" in out and "skipped" not in out, out[-2000:]
    rows = json.loads((repo / "tinyml-report.json").read_text())["tests"]
    on_board = [row for row in rows if row["test"].endswith("::test_on_the_fan_controller")]
    assert [row["outcome"] for row in on_board] == ["passed"] and on_board[0]["where"] == "sim", on_board
