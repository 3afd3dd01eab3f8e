"""What loading pytest-tinyml costs a pytest run, measured side by side in one run.

Prints, as medians of repeated `pytest --collect-only` runs on an empty project with one trivial test:
  1. the plugin's own cost: autoload off, `-p pytest_tinyml.plugin` vs nothing (goal <= 50 ms);
  2. what the core install adds over bare pytest: the core install's pytest plugins (only tinyml; the
     check below proves no core dependency registers another) vs none (goal <= 300 ms);
  3. for information, every plugin installed in this environment (extras included) vs none.

    python benchmarks/plugin_load.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import distribution, entry_points

EXTRAS_PLUGINS = {"pytest_embedded", "benchmark", "hypothesispytest"}


def core_plugin_names() -> list[str]:
    """pytest11 entry points of the distributions the core install brings (not the extras, not dev tools)."""
    core = {"pytest-tinyml"}
    for requirement in distribution("pytest-tinyml").requires or []:
        if "extra ==" not in requirement:
            core.add(requirement.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower())
    names = []
    for ep in entry_points(group="pytest11"):
        dist = (ep.dist.name if ep.dist else "").lower().replace("_", "-")
        if dist in {c.replace("_", "-") for c in core}:
            names.append(ep.value)
    return names


def median_seconds(args: list[str], env: dict, cwd: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                       cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as project:
        with open(os.path.join(project, "test_trivial.py"), "w") as handle:
            handle.write("def test_trivial():\n    pass\n")
        open(os.path.join(project, "pytest.ini"), "w").write("[pytest]\n")
        noauto = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        core = core_plugin_names()
        core_args = [a for plugin in core for a in ("-p", plugin)]
        median_seconds([], noauto, project, 2)  # warm the file cache
        bare = median_seconds([], noauto, project, repeat)
        tinyml = median_seconds(["-p", "pytest_tinyml.plugin"], noauto, project, repeat)
        core_run = median_seconds(core_args, noauto, project, repeat)
        everything = median_seconds([], dict(os.environ), project, repeat)
    print(f"median of {repeat} runs of `pytest --collect-only` on one trivial test")
    print(f"bare pytest (autoload off)            {bare * 1000:8.1f} ms")
    print(f"+ pytest-tinyml plugin only           {tinyml * 1000:8.1f} ms   adds {(tinyml - bare) * 1000:6.1f} ms (goal <= 50)")
    print(f"+ the core install's pytest plugins   {core_run * 1000:8.1f} ms   adds {(core_run - bare) * 1000:6.1f} ms (goal <= 300)")
    print(f"  (pytest11 entry points of pytest-tinyml's core dependencies: {', '.join(core)})")
    print(f"every installed plugin (extras, dev)  {everything * 1000:8.1f} ms   adds {(everything - bare) * 1000:6.1f} ms (for information)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
