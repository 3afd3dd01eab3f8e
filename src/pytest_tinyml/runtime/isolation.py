"""Run a runtime call in a child process, so that a crash or a hang becomes a typed error.

The C++ runtimes trust their input: a corrupted flatbuffer can make TFLite Micro (which has no flatbuffer
verifier) or a kernel read out of bounds and kill the process with SIGSEGV, and TFLite Micro's Python
wrapper itself segfaults when the arena cannot even hold its allocator. A dead pytest run reports nothing,
so any call that may crash runs here first: :func:`run_task` starts ``pytest_tinyml.runtime._child``
through :mod:`pytest_tinyml.child` (safe path, private directory, group kill) with a request file, waits
with a timeout, and turns

* a signal (SIGSEGV, SIGABRT, ...) or a hang into :class:`~pytest_tinyml.errors.RuntimeCrash`,
* an error the child raised on purpose into the same error type in the parent,

always naming the model, the engine, the signal and a hint, with the tail of the child's C output.

Trust policy (which models run in-process, and after what):

* **every model** first passes the pure-Python checks of :func:`pytest_tinyml.runtime.load`: header, then
  every index in range and every constant tensor's data as large as its shape says
  (:func:`~pytest_tinyml.tflite.checks.check_tensors`). Those catch the corruptions that make the C++
  runtimes read past the model, which can crash not right away but later, in a process that looked fine.
* **trusted**: models a user vouches for with :func:`trust`. pytest-tinyml trusts nothing by itself, not
  even its own converter's output: a well-formed model can still abort TFLite Micro (an untrained model
  calibrated on random data gets activation scales near 1e-8, and ``from_bytes`` then kills the process
  with SIGABRT), and a vet costs about 0.5 s once per model and engine.
* **vetted**: every other model (converted here, bytes, a path, an artifact read from disk) is loaded and invoked in a child
  the way the runner will use it (zeros, then random values; LiteRT also at a batch of 3), once per
  sha256 and engine, memoized for the process. If that succeeds, later calls run in-process; if it fails,
  the typed error is raised (and memoized too).
* Arena bisection always runs in a child, for every model: probing too-small arenas can segfault the
  TFLite Micro wrapper regardless of the model.
* ``runtime.predict(..., isolated=True)`` runs the whole prediction in a child, for models nobody vouches
  for at all.

Example:
    >>> from pytest_tinyml.runtime import isolation
    >>> isolation.vet(artifact, "tflm")  # doctest: +SKIP  (raises RuntimeCrash/ModelLoadError if bad)
"""

from __future__ import annotations

import pickle
import threading

from pytest_tinyml import child, memo
from pytest_tinyml.errors import ArenaTooSmall, ModelLoadError, RuntimeCrash, RuntimeHang, TinyMLError

DEFAULT_TIMEOUT = 120.0
ENGINES = ("litert", "tflm")
# The runtime package whose version is part of a kept verdict, per engine.
DISTRIBUTIONS = {"litert": "ai-edge-litert", "tflm": "tflite-micro"}
# The file in the child's private directory where captured C output is spilled (see runtime.cstdio).
CSTDIO_SPILL = "native-output.txt"

_lock = threading.Lock()
_trusted: set[str] = set()
# (sha256, engine) -> None when the child load succeeded, or the error it raised.
_vetted: dict[tuple[str, str], TinyMLError | None] = {}

# Error types a child may send back by name.
_ERRORS = {cls.__name__: cls for cls in (ModelLoadError, RuntimeCrash, ArenaTooSmall, TinyMLError)}
VET_PROCEDURE = 1  # bump when what _child._vet does changes: kept verdicts of the old one no longer count


def trust(model) -> None:
    """Mark a model (artifact, bytes or sha256 hex) as safe to load in-process without a child first.

    Only for models you vouch for: see the trust policy above.

    Example:
        >>> trust("0" * 64)
    """
    _trusted.add(_sha256_of(model))


def is_trusted(model, engine: str | None = None) -> bool:
    """True if ``model`` was trusted, or (when ``engine`` is given) vetted without error for that engine.

    Example:
        >>> is_trusted("f" * 64)
        False
    """
    sha = _sha256_of(model)
    if sha in _trusted:
        return True
    return engine is not None and (sha, engine) in _vetted and _vetted[(sha, engine)] is None


def forget(model) -> None:
    """Drop what is known about ``model`` (trusted, vetted, kept verdicts): the next use vets it again.

    Example:
        >>> forget("0" * 64)
    """
    sha = _sha256_of(model)
    with _lock:
        _trusted.discard(sha)
        for engine in ENGINES:
            _vetted.pop((sha, engine), None)
    for engine in ENGINES:
        memo.discard("vet", _verdict_parts(sha, engine))


def _verdict_parts(sha256: str, engine: str) -> dict:
    return {"sha256": sha256, "engine": engine, "procedure": VET_PROCEDURE,
            "versions": memo.versions(DISTRIBUTIONS[engine])}


def vet(artifact, engine: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Load and invoke ``artifact`` once in a child unless it is trusted or already vetted for ``engine``.

    Raises the child's :class:`ModelLoadError`, or :class:`RuntimeCrash` if the child died or hung. The
    outcome is memoized per sha256 and engine, for the process and (except a hang) in the cache directory
    (:mod:`pytest_tinyml.memo`), so the next run does not start a child for it again.

    Example:
        >>> vet(artifact, "litert")  # doctest: +SKIP
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    key = (artifact.sha256, engine)
    if artifact.sha256 in _trusted:
        return
    with _lock:
        if key in _vetted:
            error = _vetted[key]
            if error is not None:
                raise _renamed(error, artifact.name)
            return
    # A verdict depends only on the bytes and the runtime: kept in the cache directory (pytest_tinyml.memo).
    parts = _verdict_parts(artifact.sha256, engine)
    found, verdict = memo.lookup("vet", parts)
    if found:
        error = None
        if not verdict["ok"]:
            kind, message, *named = verdict["error"]
            error = _ERRORS.get(kind, TinyMLError)(
                f"{message}\n(verdict kept from an earlier run in {memo.path_of('vet', parts)}; delete it to vet again)"
            )
            error.model_name = named[0] if named else None
        with _lock:
            _vetted[key] = error
        if error is not None:
            raise _renamed(error, artifact.name)
        return
    try:
        run_task(
            "vet",
            {"content": artifact.content, "name": artifact.name, "engine": engine},
            model_name=artifact.name,
            engine=engine,
            what="loading",
            timeout=timeout,
        )
    except (ModelLoadError, RuntimeCrash) as error:
        error.model_name = artifact.name
        with _lock:
            _vetted[key] = error
        if not isinstance(error, RuntimeHang):  # a hang may be the machine's fault: try again next run
            memo.store("vet", parts, {"ok": False, "error": [type(error).__name__, str(error), artifact.name]})
        raise
    with _lock:
        _vetted[key] = None
    memo.store("vet", parts, {"ok": True})


def _renamed(error: Exception, name: str) -> Exception:
    """A kept verdict is about the bytes; its message names the model as the caller calls it now."""
    old = getattr(error, "model_name", None)
    if not old or old == name:
        return error
    renamed = type(error)(str(error).replace(repr(old), repr(name)))
    renamed.model_name = name
    return renamed


def run_task(
    task: str,
    payload: dict,
    *,
    model_name: str,
    engine: str,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    journal: list | None = None,
):
    """Run ``task`` of :mod:`pytest_tinyml.runtime._child` in a fresh child (:mod:`pytest_tinyml.child`).

    ``journal``, if given, receives the progress lines the child wrote before it finished or died (the
    arena bisection uses them to learn which probe crashed).

    Example:
        >>> run_task("vet", {"content": b, "name": "m", "engine": "tflm"}, model_name="m",
        ...          engine="tflm", what="loading")  # doctest: +SKIP
    """
    with child.private_dir("tinyml-runtime-") as workdir:
        request, result, journal_path = (workdir / n for n in ("request", "result", "journal"))
        request.write_bytes(pickle.dumps({"task": task, "payload": payload}, protocol=pickle.HIGHEST_PROTOCOL))
        done = child.run("pytest_tinyml.runtime._child", [request, result, journal_path], workdir=workdir,
                         timeout=timeout)
        if journal is not None and journal_path.exists():
            journal.extend(journal_path.read_text(errors="replace").splitlines())
        # What TFLite Micro printed inside a capture block that the crash interrupted is in the spill file.
        native = child.read_text(workdir / CSTDIO_SPILL)
        outcome = pickle.loads(result.read_bytes()) if done.returncode == 0 and result.exists() else None
    if outcome is not None:
        if "error" in outcome:
            kind, message = outcome["error"]
            raise _ERRORS.get(kind, TinyMLError)(message)
        return outcome["ok"]
    tail = child.tail_of(done.stderr + "\n" + native)
    tail = f"\n--- child output (tail) ---\n{tail}" if tail else ""
    if done.timed_out:
        raise RuntimeHang(
            f"{engine} hung for more than {timeout:.0f} s while {what} model {model_name!r} in a child "
            f"process (killed it).{tail}\nHint: the model may loop forever (corrupted control flow or "
            "shapes); re-export it with pytest_tinyml.convert(), or raise the timeout."
        )
    raise RuntimeCrash(
        f"{engine} crashed ({done.how()}) while {what} model {model_name!r} in a child "
        f"process; the pytest run is unharmed.{tail}\nHint: the flatbuffer is probably corrupted or "
        "uses tensor data the runtime does not check; run pytest_tinyml.analyze.analyze() on it and "
        "re-export it with pytest_tinyml.convert()."
    )


def _sha256_of(model) -> str:
    if isinstance(model, str) and len(model) == 64:
        return model
    sha = getattr(model, "sha256", None)
    if isinstance(sha, str):
        return sha
    if isinstance(model, (bytes, bytearray, memoryview)):
        import hashlib

        return hashlib.sha256(bytes(model)).hexdigest()
    raise TypeError(f"expected an artifact, bytes or a sha256 hex string, got {type(model).__name__}")
