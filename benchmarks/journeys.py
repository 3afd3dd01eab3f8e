"""How many of our modules the two user journeys of issue 14 cross, counted from a trace of a real run.

1. ``convert``: a Keras model -> ``tinyml_cache.convert(model, "int8", ...)`` -> an ``assert_parity`` that fails.
2. ``sim``: ``--tinyml-board=sim`` -> ``tinyml_board.benchmark(...)`` -> the latency gate (run twice, so the
   second run compares with the first one's baseline).

Each journey is one pytest run in a fresh interpreter. A profile hook (``sys.setprofile`` plus
``threading.setprofile``) records the ``__name__`` of every ``pytest_tinyml`` module one of whose functions
was called, from pytest's start to its end: the plugin's hooks, fixtures, the journey itself and the report.
Module and class bodies, and whatever they call while a module of ours is being imported, are import cost,
not the journey: modules that were only imported are listed apart. Child processes started by that interpreter are counted from ``subprocess.Popen`` calls (their
own modules are not traced; the list says what each runs). Prints, per journey, the count and the modules.

Three counts per journey, so the number can be read fairly:
- every module whose functions ran;
- the same without the *shell*: the modules that run in any pytest session with the plugin (traced from a
  session whose only test does nothing: option parsing, the report and history hooks);
- the top-level units of ``pytest_tinyml`` crossed (a package such as ``tflite`` or ``board`` counts once).

``--src DIR`` traces another checkout's ``src`` (e.g. ``git worktree add /tmp/old <commit>``), and
``--compare DIR`` prints both side by side: how a refactor moved the counts, measured the same way.

Run: ``python benchmarks/journeys.py [--compare /tmp/old/src]`` (about a minute warm per checkout; the sim binary
is built on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOARD_MODEL = ROOT / "tests" / "data" / "board_mlp_int8.tflite"

CONVERT_TEST = '''
import numpy as np
import keras
from pytest_tinyml import assert_parity


def test_int8_parity(tinyml_cache):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 1, (200, 16)).astype("float32")
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    artifact = tinyml_cache.convert(model, "int8", representative=x)
    assert_parity(model, artifact, x[:50], max_error_steps=0.0)  # int8 is never bit-equal to float: fails
'''

SIM_TEST = '''
import pathlib

import numpy as np
import pytest

MODEL = pathlib.Path(__file__).parent / "model.tflite"


@pytest.mark.tinyml_board
@pytest.mark.tinyml_latency(min_effect=0.5)
def test_latency(tinyml_board):
    tinyml_board.benchmark(MODEL.read_bytes(), inputs=np.zeros((2, 64)), runs=30, warmup=2)
'''

# Runs pytest under a profile hook; writes {"modules": [...], "children": [...]} to argv[1].
TRACER = '''
import json, subprocess, sys, threading
out, args = sys.argv[1], sys.argv[2:]
seen, imported, children = set(), set(), []
importing = [0]  # depth of our module bodies on the stack: what runs then is import cost, not the journey

def profile(frame, event, arg):
    name = frame.f_globals.get("__name__") or ""
    if not name.startswith("pytest_tinyml") or event not in ("call", "return"):
        return
    code = frame.f_code
    if code.co_name == "<module>":
        importing[0] += 1 if event == "call" else -1
        imported.add(name)
    elif event == "call" and code.co_flags & 1 and not importing[0]:  # a function (not a class body) called
        seen.add(name)

real_init = subprocess.Popen.__init__
def spawn(self, argv, *a, **k):
    children.append([str(x) for x in (argv if isinstance(argv, (list, tuple)) else [argv])][:6])
    return real_init(self, argv, *a, **k)
subprocess.Popen.__init__ = spawn
sys.setprofile(profile)
threading.setprofile(profile)
import pytest
code = pytest.main(args)
sys.setprofile(None)
json.dump({"modules": sorted(seen), "imported_only": sorted(imported - seen), "children": children,
           "exit": int(code)}, open(out, "w"))
'''


NOTHING_TEST = "def test_nothing():\n    pass\n"


def trace(workdir: Path, args: list[str], src: Path) -> dict:
    result = workdir / "trace.json"
    env = {**os.environ, "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", TRACER, str(result), *args], cwd=workdir, env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    return json.loads(result.read_text())


def describe(child: list[str]) -> str:
    text = " ".join(child)
    for marker in ("pytest_tinyml.conversion._child", "pytest_tinyml.runtime._child", "tinyml-host", "idf.py"):
        if marker in text:
            return marker
    return Path(child[0]).name if child else "?"


def unit(module: str) -> str:
    """The top-level unit of ``pytest_tinyml`` a module belongs to (``tflite.schema`` -> ``tflite``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def counts(traced: dict, shell: set[str]) -> tuple[int, int, int]:
    """(modules, modules outside the shell, top-level units outside the shell) of one journey."""
    own = [m for m in traced["modules"] if m not in shell]
    return len(traced["modules"]), len(own), len({unit(m) for m in own})


def show(title: str, traced: dict, shell: set[str]) -> None:
    modules, imported = traced["modules"], traced["imported_only"]
    total, own, units = counts(traced, shell)
    print(f"{title}: functions of {total} pytest_tinyml modules ran ({own} outside the shell, in {units} "
          f"top-level units), {len(imported)} more were only imported (pytest exit code {traced['exit']})")
    print(textwrap.indent(textwrap.fill(", ".join(m.removeprefix("pytest_tinyml.") for m in modules), 100), "  "))
    if imported:
        print(textwrap.indent(textwrap.fill("imported only: " + ", ".join(
            m.removeprefix("pytest_tinyml.") for m in imported), 100), "  "))
    kinds: dict[str, int] = {}
    for child in traced["children"]:
        kinds[describe(child)] = kinds.get(describe(child), 0) + 1
    print(f"  child processes started by the pytest process: {sum(kinds.values())} "
          f"({', '.join(f'{k} x{v}' for k, v in sorted(kinds.items())) or 'none'})")


JOURNEYS = ("journey 1, Keras -> tinyml_cache.convert('int8') -> failing assert_parity (cold cache)",
            "journey 1 again (warm cache)",
            "journey 2, --tinyml-board=sim -> benchmark -> latency gate (second run, against a baseline)")


def journeys(src: Path) -> tuple[set[str], dict[str, dict]]:
    """The shell's modules and the three traced journeys, run against the package in ``src``."""
    with tempfile.TemporaryDirectory(prefix="tinyml-journeys-") as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "cache"
        common = [f"--tinyml-cache-dir={cache}", "-p", "no:cacheprovider", "-q", "-n", "0"]
        nothing_dir = tmp_path / "nothing"
        nothing_dir.mkdir()
        (nothing_dir / "test_nothing.py").write_text(NOTHING_TEST)
        shell = set(trace(nothing_dir, ["test_nothing.py", *common], src)["modules"])

        convert_dir = tmp_path / "convert"
        convert_dir.mkdir()
        (convert_dir / "test_journey.py").write_text(CONVERT_TEST)
        traced = {JOURNEYS[0]: trace(convert_dir, ["test_journey.py", *common], src),
                  JOURNEYS[1]: trace(convert_dir, ["test_journey.py", *common], src)}

        sim_dir = tmp_path / "sim"
        sim_dir.mkdir()
        (sim_dir / "test_sim.py").write_text(SIM_TEST)
        (sim_dir / "model.tflite").write_bytes(BOARD_MODEL.read_bytes())
        sim_args = ["test_sim.py", "--tinyml-board=sim:delay_us=200", *common]
        trace(sim_dir, sim_args, src)  # first run: builds the sim if needed and saves the baseline
        traced[JOURNEYS[2]] = trace(sim_dir, sim_args, src)
    return shell, traced


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the checkout's src to trace")
    parser.add_argument("--compare", type=Path, help="another checkout's src, traced the same way")
    args = parser.parse_args(argv)
    shell, traced = journeys(args.src.resolve())
    print(f"shell ({len(shell)} modules, run by a session whose test does nothing): "
          + ", ".join(m.removeprefix("pytest_tinyml.") for m in sorted(shell)))
    for title in JOURNEYS:
        show(title, traced[title], shell)
    if args.compare:
        old_shell, old = journeys(args.compare.resolve())
        print(f"\n{'journey':<12} {'modules':>16} {'outside shell':>16} {'top-level units':>16}   "
              f"({args.compare} -> {args.src})")
        for name, title in zip(("1 cold", "1 warm", "2"), JOURNEYS, strict=True):
            before, after = counts(old[title], old_shell), counts(traced[title], shell)
            print(f"{name:<12} " + " ".join(f"{b:>7} -> {a:<6}" for b, a in zip(before, after, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
