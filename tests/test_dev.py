"""dev.py's jobs: the full suite for CI, the fast lane for the edit loop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dev():
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_suite_deselects_nothing_and_fast_lane_drops_slow_tests():
    dev = _dev()
    full = dev.command("test", [], python="py")
    assert full == ["py", "-m", "pytest", "-n", "2"]
    fast = dev.command("test", ["--fast", "-k", "child"], python="py")
    assert fast == ["py", "-m", "pytest", "-n", "2", "-m", "not slow", "-k", "child"]
    assert dev.command("reference", ["--fast"], python="py")[-1] == "--fast"  # only the test job has lanes
    assert dev.command("nope", []) is None


def test_slow_marker_is_registered_for_the_fast_lane():
    assert "slow:" in (ROOT / "pytest.ini").read_text()
