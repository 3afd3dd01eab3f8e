"""Child-process side of :mod:`pytest_tinyml.runtime.isolation`: ``pytest_tinyml.runtime._child
REQUEST RESULT JOURNAL``, started by :func:`pytest_tinyml.child.run`.

Reads a pickled ``{"task", "payload"}`` request, runs the task, and writes a pickled ``{"ok": value}`` or
``{"error": (type name, message)}``. If the runtime kills this process, RESULT is never written: the parent
reads the signal from the exit code, and the progress lines this process appended to JOURNAL (unbuffered,
so they survive a crash).
"""

from __future__ import annotations

import os
import pickle
import sys


def _vet(payload: dict, log) -> None:
    """Load and invoke with the engine's real loader, the way the runners will (zeros, random values)."""
    from pytest_tinyml.tflite import checks

    content, name, engine = payload["content"], payload["name"], payload["engine"]
    checks.check(content, name=name)
    if engine == "litert":
        from pytest_tinyml.runtime.litert import new_interpreter, vet_invoke

        vet_invoke(new_interpreter(content, name))
    else:
        from pytest_tinyml.runtime.batching import random_like
        from pytest_tinyml.runtime.tflm import DEFAULT_ARENA, new_interpreter, zero_inputs

        interpreter = new_interpreter(content, name, max(DEFAULT_ARENA, 10 * len(content)))
        zeros = zero_inputs(interpreter, content)
        for values in (zeros, [random_like(z.shape, z.dtype) for z in zeros]):  # as TFLMRunner will
            for index, value in enumerate(values):
                interpreter.set_input(value, index)
            interpreter.invoke()


def _arena(payload: dict, log) -> dict:
    from pytest_tinyml.runtime.tflm import bisect_arena

    return bisect_arena(payload["content"], payload["name"], dict(payload["known"]), payload["max_arena"], log)


def _try_arena(payload: dict, log) -> dict:
    from pytest_tinyml.runtime.tflm import try_arena

    ok, text = try_arena(payload["content"], payload["name"], payload["arena_size"])
    return {"ok": ok, "text": text}


def _probe_ops(payload: dict, log) -> dict:
    from pytest_tinyml.runtime.microops import probe_here

    return probe_here(payload["codes"], payload.get("known", {}), log)


def _predict(payload: dict, log):
    from pytest_tinyml.tflite import checks

    checks.check(payload["content"], name=payload["name"])
    if payload["engine"] == "litert":
        from pytest_tinyml.runtime.litert import LiteRTRunner as Runner
    else:
        from pytest_tinyml.runtime.tflm import TFLMRunner as Runner
    from pytest_tinyml.runtime import isolation

    isolation.trust(payload["content"])  # this process exists to take the risk
    from pytest_tinyml.runtime.loader import load

    runner = Runner(load(payload["content"], name=payload["name"]))
    method = runner.predict_raw if payload.get("raw") else runner.predict
    return method(payload["x"])


TASKS = {"vet": _vet, "arena": _arena, "try_arena": _try_arena, "probe_ops": _probe_ops, "predict": _predict}


def main(argv: list[str]) -> int:
    request_path, result_path, journal_path = argv
    with open(request_path, "rb") as handle:
        request = pickle.load(handle)
    journal = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    from pytest_tinyml.runtime import cstdio
    from pytest_tinyml.runtime.isolation import CSTDIO_SPILL

    cstdio.spill_to(os.path.join(os.path.dirname(os.path.abspath(result_path)), CSTDIO_SPILL))

    def log(line: str) -> None:
        os.write(journal, (line + "\n").encode())

    from pytest_tinyml.errors import TinyMLError

    try:
        outcome = {"ok": TASKS[request["task"]](request["payload"], log)}
    except TinyMLError as exc:
        outcome = {"error": (type(exc).__name__, str(exc))}
    except Exception as exc:  # the runtime refused the model in a way we did not foresee: a load failure
        payload = request["payload"]
        engine = {"litert": "LiteRT", "tflm": "TFLite Micro"}.get(payload.get("engine", "tflm"), "the runtime")
        outcome = {"error": ("ModelLoadError", f"{engine} refused model {payload.get('name', '?')!r}: "
                             f"{type(exc).__name__}: {exc}\nHint: the flatbuffer is probably corrupted; "
                             "re-export it with pytest_tinyml.convert().")}
    with open(result_path + ".tmp", "wb") as handle:
        pickle.dump(outcome, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(result_path + ".tmp", result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
