#!/usr/bin/env python3
"""Set up the project's virtual environment and run its jobs. Needs only Python 3.10+ with venv and pip.

    python3 dev.py reference   # install everything, then run the reference suite (the main job)
    python3 dev.py test        # install everything, then run the project's tests (the full suite, as CI)
    python3 dev.py test --fast # the edit loop: the same without the tests marked slow (-m "not slow")
    python3 dev.py lint        # ruff

Extra arguments after the job name go to pytest. The venv lives in .venv; it is reinstalled only when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".tinyml-installed"


def run(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def setup() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py itself may be started by an older python3
        sys.exit(f"pytest-tinyml needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(str(PYTHON), "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


FAST = "--fast"  # `dev.py test --fast`: the edit loop, without the tests marked slow
JOBS = ("reference", "test", "lint")
# The reference suite as the main job runs it (benchmarks/main_job.py times exactly this).
REFERENCE_ARGS = ["reference_models", "--tinyml-report=tinyml-report.json"]


def command(job: str, rest: list[str], python: str = str(PYTHON)) -> list[str] | None:
    """The command line of ``job`` with the extra arguments ``rest``; None for an unknown job."""
    if job == "test" and FAST in rest:
        rest = ["-m", "not slow", *(arg for arg in rest if arg != FAST)]
    jobs = {
        "reference": [python, "-m", "pytest", *REFERENCE_ARGS, *rest],
        "test": [python, "-m", "pytest", "-n", "2", *rest],
        "lint": [str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "reference_models", "examples", "dev.py"],
    }
    return jobs.get(job)


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "test"
    argv_of_job = command(job, argv[1:])
    if argv_of_job is None:
        print(f"unknown job {job!r}; expected one of: {', '.join(JOBS)}", file=sys.stderr)
        return 2
    setup()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(argv_of_job, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
