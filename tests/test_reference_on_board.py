"""The reference suite's on-device test as README's Quickstart runs it (`dev.py reference --tinyml-board=sim`).

`dev.py test` does not run `reference_models/`, so an API change the on-device reference test depends on could
break it unseen (it read a `BoardResult` field that was gone for a whole landing). One reference model's
`test_on_device` runs here against the sim, in a fresh interpreter with its own cache and history.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_reference_on_device_test_passes_on_the_sim(tmp_path):
    args = [sys.executable, "-m", "pytest", "reference_models/test_mlp.py", "-k", "on_device", "-q", "-n", "0",
            "-p", "no:cacheprovider", "--tinyml-board=sim", f"--tinyml-cache-dir={tmp_path / 'cache'}",
            f"--tinyml-history={tmp_path / 'history'}", f"--tinyml-report={tmp_path / 'report.json'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
