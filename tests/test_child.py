"""The one child-process harness (pytest_tinyml.child) and the children built on it: safe path, private
directory, process-group kill, captured stderr."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import runtime_models as models

import pytest_tinyml
from pytest_tinyml import child
from pytest_tinyml.runtime import isolation

PLANTED = textwrap.dedent(
    """
    import os
    with open(os.environ["TINYML_PLANTED_MARKER"], "a") as marker:
        marker.write(__file__ + "\\n")
    raise ImportError("planted module imported: " + __file__)
    """
)


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A directory on PYTHONPATH for the helper modules these tests run in children."""
    directory = tmp_path / "mods"
    directory.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(directory))
    return directory


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A json.py and a numpy.py in TMPDIR and in the current directory that record being imported."""
    marker = tmp_path / "imported.txt"
    tmpdir, cwd = tmp_path / "tmp", tmp_path / "cwd"
    for directory in (tmpdir, cwd):
        directory.mkdir()
        for name in ("json.py", "numpy.py"):
            (directory / name).write_text(PLANTED)
    monkeypatch.setenv("TINYML_PLANTED_MARKER", str(marker))
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    monkeypatch.chdir(cwd)
    return marker


def test_planted_modules_are_importable_the_unsafe_way(planted, tmp_path):
    """The attack is real: `python -m` from the directory that holds them imports them."""
    import subprocess

    subprocess.run([sys.executable, "-m", "json.tool", "--help"], cwd=tmp_path / "tmp", capture_output=True)
    assert planted.exists() and "json.py" in planted.read_text()


def test_child_runs_this_package_from_a_private_directory(modules, tmp_path):
    (modules / "where.py").write_text(textwrap.dedent(
        """
        import json, os, sys, pytest_tinyml
        print(json.dumps({"package": pytest_tinyml.__file__, "cwd": os.getcwd(),
                          "mode": os.stat(os.getcwd()).st_mode & 0o777, "path0": sys.path[0]}))
        """
    ))
    with child.private_dir() as workdir:
        done = child.run("where", [], workdir=workdir, timeout=60, stdout_path=workdir / "out.txt")
        seen = json.loads((workdir / "out.txt").read_text())
    assert done.returncode == 0, done.stderr
    assert seen["package"] == pytest_tinyml.__file__  # this checkout, not another install
    assert seen["path0"] == child.package_root()
    assert seen["cwd"] == str(workdir) and seen["mode"] == 0o700
    assert not workdir.exists()


def test_planted_json_is_not_imported_by_a_child(planted, modules):
    (modules / "uses_json.py").write_text("import json, numpy\nprint(json.dumps([numpy.__name__]))\n")
    with child.private_dir() as workdir:
        assert str(workdir).startswith(os.environ["TMPDIR"])  # the child's directory is in the planted TMPDIR
        (workdir / "json.py").write_text(PLANTED)  # even next to it
        done = child.run("uses_json", [], workdir=workdir, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not planted.exists()


def test_planted_json_is_not_imported_by_a_vetting_child(planted, mlp_int8):
    fresh = models.artifact(mlp_int8.content, "mlp_planted")
    isolation.forget(fresh)
    isolation.vet(fresh, "tflm")
    isolation.vet(fresh, "litert")
    assert not planted.exists(), planted.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("reuse", ["1", "0"])
def test_planted_json_is_not_imported_by_the_conversion_worker(planted, monkeypatch, reuse):
    from pytest_tinyml.conversion import _runner, convert

    monkeypatch.setenv("PYTEST_TINYML_CONVERT_REUSE", reuse)
    _runner._WORKER.stop()  # a worker started earlier has another TMPDIR: start one here
    model = models._mlp()
    try:
        artifact = convert(model, "float32", name="planted")
    finally:
        _runner._WORKER.stop()
    assert artifact.size > 0
    assert not planted.exists(), planted.read_text()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie is dead, waiting for its reaper


def test_timeout_kills_the_whole_process_group(modules, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    (modules / "spawner.py").write_text(textwrap.dedent(
        f"""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(grandchild.pid))
        sys.stderr.write("spawned\\n"); sys.stderr.flush()
        time.sleep(120)
        """
    ))
    started = time.monotonic()
    with child.private_dir() as workdir:
        done = child.run("spawner", [], workdir=workdir, timeout=3)
    assert time.monotonic() - started < 30
    assert done.timed_out and "killed after 3 s" in done.how()
    assert "spawned" in done.tail()
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the grandchild outlived the timeout"


def test_a_live_grandchild_is_detected(tmp_path):
    """The check above can fail: a process we do not kill is seen alive."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert _alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not _alive(proc.pid)


def test_stderr_tail_and_exit_status_of_a_failing_child(modules):
    (modules / "fails.py").write_text(
        "import sys\nsys.stderr.write('W0000 noise\\n' + ''.join(f'line {i}\\n' for i in range(40)))\nsys.exit(3)\n"
    )
    with child.private_dir() as workdir:
        done = child.run("fails", [], workdir=workdir, timeout=60)
    assert done.returncode == 3 and done.how() == "exit code 3"
    tail = done.tail().splitlines()
    assert tail[0] == "line 15" and tail[-1] == "line 39" and len(tail) == child.TAIL_LINES


def test_worker_answers_lines_and_reports_its_death(modules):
    (modules / "echo_worker.py").write_text(textwrap.dedent(
        """
        import os, sys
        for line in sys.stdin:
            if line.strip() == "die":
                sys.stderr.write("dying on request\\n"); sys.stderr.flush()
                os._exit(7)
            print(line.strip().upper(), flush=True)
        """
    ))
    worker = child.Worker("echo_worker")
    try:
        assert worker.ask("hello", timeout=60).line == "HELLO"
        first = worker.proc.pid
        died = worker.ask("die", timeout=60)
        assert died.line is None and died.returncode == 7 and "dying on request" in died.stderr
        assert worker.ask("again", timeout=60).line == "AGAIN" and worker.proc.pid != first  # restarted
    finally:
        worker.stop()
    assert worker.proc is None
