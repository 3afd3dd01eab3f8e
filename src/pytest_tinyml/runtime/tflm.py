"""TFLite Micro on the host: real micro kernels through the ``tflite-micro`` Python interpreter.

* :class:`TFLMRunner` runs a model sample by sample (TFLite Micro has no batch resizing) and returns
  dequantized (:meth:`TFLMRunner.predict`) or raw (:meth:`TFLMRunner.predict_raw`) outputs.
* :func:`arena` is the one arena figure of pytest-tinyml (``assert_budget``, the sim and estimates ask it):
  ``arena_bytes``, the smallest ``arena_size`` for which ``Interpreter.from_bytes(model, arena_size=N)``
  (load + ``AllocateTensors``) and one ``invoke()`` succeed, found by bisection. It also reports
  ``arena_allocated_bytes``, what the RecordingMicroAllocator says it allocated (``print_allocations()`` on
  the C stderr, captured at file-descriptor level, :mod:`pytest_tinyml.runtime.cstdio`): a different,
  smaller figure, never compared with a budget. Both are kept per model sha256 in the cache directory
  (:mod:`pytest_tinyml.memo`): a model is bisected once, not once per test or per run.

Host pointers are 64-bit, so the host arena is larger than the same model's arena on a 32-bit
microcontroller (``TfLiteEvalTensor``, node structs and persistent buffers hold pointers): every figure is
labelled :data:`HOST_LABEL`. The board reports the device figure.

Example:
    >>> report = arena(int8_artifact)  # doctest: +SKIP
    >>> report.arena_bytes, report.arena_allocated_bytes  # doctest: +SKIP
    (2448, 1680)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pytest_tinyml import memo
from pytest_tinyml.errors import ArenaTooSmall, ModelLoadError, RuntimeCrash, RuntimeHang
from pytest_tinyml.runtime import cstdio, isolation
from pytest_tinyml.runtime._runner import Runner

HOST_LABEL = "host (64-bit pointers): an estimate of the 32-bit device arena"
# Default arena when none is given: generous, host memory is cheap and pages are committed lazily.
DEFAULT_ARENA = 16 * 1024 * 1024
# The largest arena the bisection tries before it calls the model unloadable.
MAX_ARENA = 512 * 1024 * 1024

# Bump when the bisection's definition changes: arena figures kept by an older one no longer count.
ARENA_PROCEDURE = 1


def micro_runtime():
    """The ``tflite_micro`` Python runtime module (imported on first use)."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def micro_reason(text: str, limit: int = 800) -> str:
    """TFLite Micro's own words from its captured C output: the meaningful lines, joined, without the source
    file names its logger puts in front (``tensorflow/lite/micro/kernels/conv_common.cc Hybrid ...``).

    Example:
        >>> micro_reason("tensorflow/lite/micro/kernels/conv_common.cc Hybrid models are not supported.\\n"
        ...              "Node CONV_2D (number 0) failed to prepare with status 1\\n")
        'Hybrid models are not supported. Node CONV_2D (number 0) failed to prepare with status 1'
    """
    lines = []
    for line in text.splitlines():
        line = _SOURCE_PREFIX.sub("", line.strip())
        if line and "RecordingMicroAllocator" not in line and line not in lines:
            lines.append(line)
    reason = " ".join(lines)
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


_SOURCE_PREFIX = re.compile(r"^\S+\.(?:cc|cpp|c|h)(?::\d+)?:?\s+")


def micro_error(what: str, failure: BaseException | None, text: str, hint: str = "") -> str:
    """One TFLite Micro error message: what failed, TFLite Micro's reason (its stderr), the exception."""
    reason = micro_reason(text)
    exception = f"{type(failure).__name__}: {failure}" if failure is not None else ""
    message = what
    if reason:
        message += f": TFLite Micro says: {reason}" + (f" ({exception})" if exception else "")
    elif exception:
        message += f": {exception} (TFLite Micro printed nothing)"
    return message + (f"\nHint: {hint}" if hint else "")


def new_interpreter(content: bytes, name: str, arena_size: int):
    """``Interpreter.from_bytes`` with the C output captured into the error message. No isolation: callers
    make sure the model is trusted or vetted and the arena is large enough.
    """
    runtime = micro_runtime()
    with cstdio.capture() as captured:
        try:
            interpreter = runtime.Interpreter.from_bytes(bytes(content), arena_size=int(arena_size))
        except Exception as exc:  # RuntimeError from C++, and struct.error/ValueError from the Python wrapper
            failure = exc
        else:
            failure = None
    if failure is not None:
        raise ModelLoadError(micro_error(
            f"TFLite Micro refused model {name!r} (arena_size={arena_size})", failure, captured.text,
            "check pytest_tinyml.analyze.analyze(model).tflm for ops TFLite Micro lacks.",
        ))
    return interpreter


def zero_inputs(interpreter, inputs: int | bytes) -> list:
    """Zeros for every input of ``interpreter``; ``inputs``: their number, or the model bytes to count them in."""
    import numpy as np

    from pytest_tinyml.tflite.schema import io_counts

    count = inputs if isinstance(inputs, int) else io_counts(inputs)[0]
    details = [interpreter.get_input_details(index) for index in range(count)]
    return [np.zeros(d["shape"], dtype=d["dtype"]) for d in details]


def try_arena(content: bytes, name: str, arena_size: int) -> tuple[bool, str]:
    """Load with ``arena_size`` and invoke once on zeros. Returns (success, captured C output). In-process:
    run it in a child (it can segfault for tiny arenas).
    """
    with cstdio.capture() as captured:
        try:
            interpreter = micro_runtime().Interpreter.from_bytes(bytes(content), arena_size=int(arena_size))
            for index, value in enumerate(zero_inputs(interpreter, content)):
                interpreter.set_input(value, index)
            interpreter.invoke()
            ok = True
        except Exception:
            ok = False
    return ok, captured.text


class TFLMRunner(Runner):
    """Runs a model with TFLite Micro's kernels on the host.

    Example:
        >>> runner = TFLMRunner(artifact)  # doctest: +SKIP
        >>> runner.predict(x_test[:4]).shape  # doctest: +SKIP
        (4, 10)
    """

    engine = "tflm"

    def __init__(self, artifact, arena_size: int | None = None) -> None:
        from pytest_tinyml.runtime.loader import load
        from pytest_tinyml.tflite.quant import TensorQuant

        self.artifact = load(artifact)
        name = self.artifact.name
        if arena_size is not None:
            # A too-small arena can segfault the wrapper, so compare with the measured minimum first.
            needed = arena(self.artifact).arena_bytes
            if arena_size < needed:
                raise ArenaTooSmall(
                    f"arena_size={arena_size} is too small for model {name!r}: TFLite Micro needs at least "
                    f"{needed} bytes ({HOST_LABEL}); pass arena_size>={needed} or leave it None"
                )
        isolation.vet(self.artifact, self.engine)
        self.arena_size = int(arena_size or max(DEFAULT_ARENA, 10 * self.artifact.size))
        self._interpreter = new_interpreter(self.artifact.content, name, self.arena_size)
        self.inputs = [
            TensorQuant.from_details(self._interpreter.get_input_details(i), name=t.name)
            for i, t in enumerate(self.artifact.inputs)
        ]
        self.outputs = [
            TensorQuant.from_details(self._interpreter.get_output_details(i), name=t.name)
            for i, t in enumerate(self.artifact.outputs)
        ]

    def _run(self, x) -> list:
        import numpy as np

        from pytest_tinyml.runtime.batching import as_input_list, fit_batch, stack_samples

        name = self.artifact.name
        arrays = as_input_list(x, len(self.inputs), name)
        arrays = [spec.quantize(fit_batch(a, spec, name)) for a, spec in zip(arrays, self.inputs, strict=True)]
        count = arrays[0].shape[0]
        results = [[] for _ in self.outputs]
        with cstdio.capture() as captured:
            try:
                for i in range(count):
                    for index, array in enumerate(arrays):
                        self._interpreter.set_input(array[i : i + 1], index)
                    self._interpreter.invoke()
                    for index, bucket in enumerate(results):
                        bucket.append(np.array(self._interpreter.get_output(index), copy=True))
            except (RuntimeError, ValueError) as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise ModelLoadError(micro_error(f"TFLite Micro failed to run model {name!r}", failure, captured.text))
        return [stack_samples(bucket) if bucket else np.zeros((0,) + spec.shape[1:], spec.dtype)
                for bucket, spec in zip(results, self.outputs, strict=True)]


@dataclass(frozen=True)
class Allocation:
    """One line of the RecordingMicroAllocator report."""

    used: int
    requested: int
    count: int


@dataclass(frozen=True)
class ArenaReport:
    """Arena figures of one model on the host TFLite Micro runtime (see :data:`HOST_LABEL`).

    ``arena_bytes`` is the arena figure (smallest ``arena_size`` for which load + ``AllocateTensors`` + one
    ``Invoke`` succeed); ``arena_allocated_bytes`` (= ``allocated_head_bytes + allocated_tail_bytes``) is what
    the RecordingMicroAllocator reports at that size, and ``breakdown`` its lines.
    """

    model: str
    sha256: str
    arena_bytes: int
    arena_allocated_bytes: int | None
    allocated_head_bytes: int | None
    allocated_tail_bytes: int | None
    breakdown: dict[str, Allocation] = field(default_factory=dict)
    probes: int = 0
    crashed_probes: int = 0
    label: str = HOST_LABEL

    @property
    def arena_kb(self) -> float:
        return self.arena_bytes / 1024

    def summary(self) -> str:
        lines = [f"arena of {self.model!r}: {self.arena_bytes} bytes (smallest arena_size that loads and "
                 f"invokes; the allocator reports {self.arena_allocated_bytes} bytes allocated) [{self.label}]"]
        lines += [f"  {k}: {v.used} bytes ({v.count} allocations)" for k, v in self.breakdown.items()]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-able form (what the cache keeps), read back by :meth:`from_dict`."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "breakdown"}
        data["breakdown"] = {k: [v.used, v.requested, v.count] for k, v in self.breakdown.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict, *, model: str | None = None) -> ArenaReport:
        fields = dict(data)
        fields["breakdown"] = {k: Allocation(*v) for k, v in data["breakdown"].items()}
        if model is not None:
            fields["model"] = model
        return cls(**fields)


_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_LINE = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+) ")


def parse_allocations(text: str) -> dict:
    """Parse ``print_allocations()`` output into ``{"total", "head", "tail", "breakdown"}``.

    Example:
        >>> parse_allocations("[RecordingMicroAllocator] Arena allocation total 1680 bytes")["total"]
        1680
    """
    figures = {m.group(1): int(m.group(2)) for m in _TOTAL.finditer(text)}
    breakdown = {m.group(1): Allocation(int(m.group(2)), int(m.group(3)), int(m.group(4))) for m in _LINE.finditer(text)}
    return {"total": figures.get("total"), "head": figures.get("head"), "tail": figures.get("tail"), "breakdown": breakdown}


def allocations_text(content: bytes, name: str, arena_size: int) -> str:
    """Load, invoke once on zeros and return the captured ``print_allocations()`` text (in-process)."""
    interpreter = new_interpreter(content, name, arena_size)
    with cstdio.capture() as captured:
        for index, value in enumerate(zero_inputs(interpreter, content)):
            interpreter.set_input(value, index)
        interpreter.invoke()
        interpreter.print_allocations()
    return captured.text


def arena(model_like, *, timeout: float = isolation.DEFAULT_TIMEOUT) -> ArenaReport:
    """The TFLite Micro arena of a model on the host: ``arena_bytes`` by bisection in a child process.

    When a probe crashes the child (tiny arenas, or the wrapper's state after failed loads, can segfault
    it), that size is tried again alone in a fresh process (a crash there counts as a failure), and the
    bisection goes on in a new child. The search is deterministic: its result (or the model's load error) is
    kept per sha256 and tflite-micro version, for the process and in the cache directory
    (:mod:`pytest_tinyml.memo`).

    Example:
        >>> arena(artifact).arena_bytes  # doctest: +SKIP
        2448
    """
    from pytest_tinyml.runtime.loader import load

    artifact = load(model_like)
    parts = {"sha256": artifact.sha256, "max_arena": MAX_ARENA, "procedure": ARENA_PROCEDURE,
             "versions": memo.versions("tflite-micro")}
    found, kept = memo.lookup("tflm-arena", parts)
    if not found:
        try:
            kept = {"report": _bisect_in_children(artifact, timeout).as_dict()}
        except ModelLoadError as error:  # the model cannot run with any arena: as deterministic as a figure
            kept = {"error": str(error)}
        except RuntimeHang:
            raise  # a hang may be the machine's fault: nothing kept
        memo.store("tflm-arena", parts, kept)
    if "error" in kept:
        raise ModelLoadError(kept["error"])
    return ArenaReport.from_dict(kept["report"], model=artifact.name)


def _bisect_in_children(artifact, timeout: float) -> ArenaReport:
    known: dict[int, bool] = {}
    crashed = 0
    for _attempt in range(12):
        journal: list[str] = []
        try:
            result = isolation.run_task(
                "arena",
                {"content": artifact.content, "name": artifact.name, "known": known, "max_arena": MAX_ARENA},
                model_name=artifact.name,
                engine="tflm",
                what="measuring the arena of",
                timeout=timeout,
                journal=journal,
            )
        except ModelLoadError:
            raise
        except RuntimeCrash:
            crashed_at = _crashed_probe(journal, known)
            if crashed_at is None:
                raise
            # Arenas a few bytes short crash the wrapper outright. A crash on a child's first probe is that;
            # after other probes it could come from state left by earlier failed loads, so settle the size
            # in a fresh process before the search goes on.
            first = next((line.split()[1] for line in journal if line.startswith("try ")), None)
            fresh = first is not None and int(first) == crashed_at
            known[crashed_at] = False if fresh else arena_works(artifact, crashed_at, timeout=timeout)
            crashed += 1
            continue
        parsed = parse_allocations(result["text"])
        return ArenaReport(
            model=artifact.name,
            sha256=artifact.sha256,
            arena_bytes=result["arena_bytes"],
            arena_allocated_bytes=parsed["total"],
            allocated_head_bytes=parsed["head"],
            allocated_tail_bytes=parsed["tail"],
            breakdown=parsed["breakdown"],
            probes=result["probes"] + len(known),
            crashed_probes=crashed,
        )
    raise ModelLoadError(f"could not measure the arena of model {artifact.name!r}: the child crashed {crashed} times")


def arena_works(model_like, arena_size: int, *, timeout: float = isolation.DEFAULT_TIMEOUT) -> bool:
    """Whether load + one invoke succeed with exactly ``arena_size`` bytes, checked in a fresh child process
    (a crash there counts as "does not work").

    Example:
        >>> report = arena(artifact)                                  # doctest: +SKIP
        >>> arena_works(artifact, report.arena_bytes), arena_works(artifact, report.arena_bytes - 1)  # doctest: +SKIP
        (True, False)
    """
    from pytest_tinyml.runtime.loader import load

    artifact = load(model_like)
    try:
        result = isolation.run_task(
            "try_arena",
            {"content": artifact.content, "name": artifact.name, "arena_size": int(arena_size)},
            model_name=artifact.name,
            engine="tflm",
            what=f"trying a {arena_size}-byte arena with",
            timeout=timeout,
        )
    except RuntimeCrash:
        return False
    return bool(result["ok"])


def _crashed_probe(journal: list[str], known: dict[int, bool]) -> int | None:
    """The arena size the child was probing when it died, from its journal; results seen are kept."""
    pending = None
    for line in journal:
        kind, _, value = line.partition(" ")
        if kind == "try":
            pending = int(value)
        elif kind in ("ok", "fail"):
            known[int(value)] = kind == "ok"
            pending = None
    return pending


def bisect_arena(content: bytes, name: str, known: dict, max_arena: int, log) -> dict:
    """Child side of :func:`arena`: returns ``{"arena_bytes", "text", "probes"}``; ``log`` writes journal lines."""
    probes = 0

    def works(size: int) -> bool:
        nonlocal probes
        if size in known:
            return known[size]
        log(f"try {size}")
        ok, _ = try_arena(content, name, size)
        probes += 1
        known[size] = ok
        log(f"{'ok' if ok else 'fail'} {size}")
        return ok

    largest = max(DEFAULT_ARENA, 16 * len(content))
    if not works(largest):
        largest = max(max_arena, largest)  # a big model: one more try with everything we allow
    if not works(largest):
        _, text = try_arena(content, name, largest)
        raise ModelLoadError(micro_error(
            f"TFLite Micro cannot run model {name!r} even with a {largest}-byte arena, so it is not an arena "
            "problem", None, text, "check pytest_tinyml.analyze.analyze(model).tflm.",
        ))
    low, high = 0, 1024
    while not works(high):
        low, high = high, min(high * 4, largest)
    low = max([low] + [size for size, ok in known.items() if not ok and size < high])
    high = min([high] + [size for size, ok in known.items() if ok and size > low])
    while high - low > 1:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle
    return {"arena_bytes": high, "text": allocations_text(content, name, high), "probes": probes}
