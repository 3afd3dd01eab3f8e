"""Wall time of the main job (the reference suite, as ``python3 dev.py reference`` runs it), cold then warm.

Run: ``.venv/bin/python benchmarks/main_job.py [--keep DIR] [-- extra pytest args]``

Both runs use one fresh cache directory (``--tinyml-cache-dir``): the cold run trains, converts, vets and
measures everything; the warm run, with nothing changed, should only read it back. Each run gets its own
fresh latency history, so that a noisy machine cannot turn the warm run's host-latency gate into a failure
of this benchmark (the gate is measured by benchmarks/regression_detector.py). Prints both times, their
ratio, the failure count of each run, the five slowest tests of the warm run and the load average, which
says how much the figures are worth on a shared machine.
Goal (2 cores): cold <= 5 min, warm <= 20 s, 0 failures.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) (failed|passed|skipped|errors?|xfailed|xpassed|deselected)")


def reference_command(work: Path, run: str, extra: list[str]) -> list[str]:
    """``dev.py reference``'s command line, with this benchmark's cache, history and report paths."""
    sys.path.insert(0, str(ROOT))
    import dev

    args = [a for a in dev.REFERENCE_ARGS if not a.startswith("--tinyml-report")]
    return [sys.executable, "-m", "pytest", *args, f"--tinyml-report={work / f'{run}-report.json'}",
            f"--tinyml-cache-dir={work / 'cache'}", f"--tinyml-history={work / f'{run}-history'}",
            "--durations=5", *extra]


def run_once(work: Path, run: str, extra: list[str]) -> dict:
    command = reference_command(work, run, extra)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (work / f"{run}-output.txt").write_text(done.stdout + done.stderr)
    lines = done.stdout.strip().splitlines()
    counts = {kind: 0 for kind in ("failed", "passed", "skipped", "errors")}
    for number, kind in SUMMARY.findall(lines[-1] if lines else ""):
        counts["errors" if kind.startswith("error") else kind] = counts.get(kind, 0) + int(number)
    slowest = [line for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)][:5]
    return {"seconds": seconds, "counts": counts, "returncode": done.returncode, "slowest": slowest,
            "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it (default: a temp dir)")
    parser.add_argument("extra", nargs="*", help="extra pytest arguments (after --)")
    options = parser.parse_args(argv)
    if options.keep:
        options.keep.mkdir(parents=True)
        work = options.keep
    else:
        work = Path(tempfile.mkdtemp(prefix="tinyml-main-job-"))
    print(f"work directory: {work} (one cache for both runs: {work / 'cache'})", flush=True)
    results = {}
    for run in ("cold", "warm"):
        results[run] = result = run_once(work, run, options.extra)
        c = result["counts"]
        print(f"{run:>4}: {result['seconds']:7.1f} s  {c['passed']} passed, {c['failed']} failed, "
              f"{c['errors']} errors, {c['skipped']} skipped  (load average {result['load'][0]:.1f} -> "
              f"{result['load'][1]:.1f}; output in {work / f'{run}-output.txt'})", flush=True)
    cold, warm = results["cold"]["seconds"], results["warm"]["seconds"]
    print(f"\nmain job on {os.cpu_count()} cores: cold {cold:.1f} s, warm {warm:.1f} s, warm is {cold / warm:.1f}x "
          f"faster; goal cold <= 300 s, warm <= 20 s, 0 failures")
    print("slowest of the warm run:")
    for line in results["warm"]["slowest"]:
        print(f"  {line}")
    failures = sum(results[r]["counts"]["failed"] + results[r]["counts"]["errors"] for r in results)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
