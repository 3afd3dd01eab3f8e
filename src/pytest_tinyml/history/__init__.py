"""Latency history: every measured latency is stored, compared with a baseline, and a slowdown fails its test.

Feed it from anywhere inside a test:

- a board: ``Board.benchmark(...)`` calls :func:`observe` with ``kind="board"`` and the board's info;
- the host, through pytest-benchmark's ``benchmark`` fixture (extra ``bench``)::

      def test_litert_latency(benchmark, artifact):
          runner = tinyml.runtime.litert.LiteRTRunner(artifact)
          tinyml.history.benchmark_invoke(benchmark, runner)      # times runner.invoke_once()

  or, after any ``benchmark(...)`` / ``benchmark.pedantic(...)`` call, ``tinyml.history.observe_benchmark(benchmark)``.

After the test passes, the plugin compares each observation with the baseline of the same test and machine
and fails the test on a regression (see :mod:`pytest_tinyml.history.compare`): the baseline is the window of
the last accepted runs ('last', moving with every accepted run) or a named one (``--tinyml-baseline=NAME``);
a regression is a run median beyond the between-run spread of that window, beyond ``min_effect`` and beyond
two timer ticks, confirmed by re-measuring (up to twice) when the observer can. Per test:
``@pytest.mark.tinyml_latency(min_effect=0.2, window=10, spread_k=4, reruns=2)``. Verdicts: regression,
faster, unchanged, inconclusive (too little history, a busy host, a corrupt baseline: a warning), no-baseline.
``--tinyml-save-baseline[=NAME]`` accepts this run (a change restarts the window) or saves the window as NAME.

This module imports nothing heavy (no numpy, scipy or matplotlib).
"""

from __future__ import annotations

import time
import warnings

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history.store import DEFAULT_BASELINE, HistoryStore, HistoryWarning, Record

__all__ = [
    "DEFAULT_BASELINE", "HistoryError", "HistoryStore", "HistoryWarning", "Record",
    "benchmark_invoke", "observe", "observe_benchmark",
]
# pytest-benchmark may calibrate thousands of rounds; more than this many are thinned evenly before storing.
MAX_STORED_SAMPLES = 2000


def _current_item():
    from pytest_tinyml import report

    return report.current_item()


def observe(*, kind: str, samples_us, context: dict | None = None, test_id: str | None = None,
            history_dir: str | None = None, remeasure=None) -> Record | None:
    """Record per-run latencies (microseconds) of the running test for the regression gate.

    ``kind`` is ``"board"`` (``context["board"]`` carries chip, revision, cpu_mhz, firmware_hash, idf_version,
    tflm_version, esp_nn_version, build_flags) or ``"host"`` (the host fingerprint is added here). Other useful
    context keys: ``model_sha256``, ``recipe``, ``model``, ``runtime``. Inside a test the observation is
    compared and stored when the test ends; a second observation of the same test and board is kept apart as
    ``<test id>#2``, or name it with ``test_id=``. Outside pytest, without ``test_id`` this does nothing; with
    one, the record is written to ``history_dir`` (default ``.tinyml_history``) uncompared. ``remeasure``, a
    function returning new samples of the same measurement without recording them, lets the gate measure
    again before it calls a change (``context["tick_us"]`` gives the timer's resolution when it is not 1 us
    on a board or ``perf_counter``'s on the host).

    Example:
        >>> observe(kind="host", samples_us=[812.0, 815.5, 809.9], context={"model_sha256": "ab" * 32})  # doctest: +SKIP
    """
    item = _current_item()
    if item is None and test_id is None:
        return None
    git_dir = str(item.config.rootpath) if item is not None else None
    record = Record.new(test_id=test_id or item.nodeid, kind=kind, samples_us=samples_us, context=context,
                        git_dir=git_dir)
    if item is None:
        HistoryStore(history_dir or ".tinyml_history").add(record)
        return record
    from pytest_tinyml.history.hooks import add_observation

    return add_observation(item, record, remeasure)


def observe_benchmark(benchmark, *, context: dict | None = None, test_id: str | None = None,
                      remeasure=None) -> Record | None:
    """Feed the timings of a finished pytest-benchmark run (``benchmark`` fixture) into the history as host
    latency. Returns ``None``, with a :class:`HistoryWarning`, when pytest-benchmark is disabled (under
    pytest-xdist or ``--benchmark-disable``) since then nothing was timed.

    Example:
        >>> def test_fast(benchmark):
        ...     benchmark.pedantic(sum, args=(range(100),), rounds=30)
        ...     observe_benchmark(benchmark, context={"runtime": "python"})
    """
    metadata = getattr(benchmark, "stats", None)
    data = list(getattr(getattr(metadata, "stats", None), "data", None) or [])
    if not data:
        if getattr(benchmark, "disabled", False):
            warnings.warn(HistoryWarning(
                "pytest-benchmark is disabled (pytest-xdist, or --benchmark-disable): no host latency was timed, "
                "so none was compared; run this test without -n / --benchmark-disable to track it"), stacklevel=2)
            return None
        raise HistoryError("the benchmark fixture has no timings yet: call benchmark(fn) or "
                           "benchmark.pedantic(fn, rounds=30) before observe_benchmark(benchmark)")
    samples = [seconds * 1e6 for seconds in data]
    extra = {"timer": "pytest-benchmark", "rounds": len(samples)}
    if len(samples) > MAX_STORED_SAMPLES:
        step = len(samples) / MAX_STORED_SAMPLES
        samples = [samples[int(i * step)] for i in range(MAX_STORED_SAMPLES)]
        extra["thinned_to"] = MAX_STORED_SAMPLES
    return observe(kind="host", samples_us=samples, context={**extra, **(context or {})}, test_id=test_id,
                   remeasure=remeasure)


def benchmark_invoke(benchmark, runner, *, rounds: int = 50, warmup_rounds: int = 5, context: dict | None = None,
                     test_id: str | None = None) -> Record | None:
    """Time ``runner.invoke_once()`` (a LiteRT or TFLite Micro runner) with pytest-benchmark and record it.

    The model's sha256 and recipe come from ``runner.artifact`` when it has one; the runtime's name from
    the runner's class.

    Example:
        >>> def test_tflm_latency(benchmark, artifact):
        ...     benchmark_invoke(benchmark, tinyml.runtime.tflm.TFLMRunner(artifact), rounds=30)
    """
    invoke = getattr(runner, "invoke_once", None)
    if not callable(invoke):
        raise HistoryError(f"{type(runner).__name__} has no invoke_once(): pass a runtime runner, e.g. "
                           "tinyml.runtime.litert.LiteRTRunner(artifact)")
    benchmark.pedantic(invoke, rounds=rounds, warmup_rounds=warmup_rounds)
    artifact = getattr(runner, "artifact", None)
    auto = {"runtime": type(runner).__name__}
    for key, attr in (("model_sha256", "sha256"), ("recipe", "recipe"), ("model", "name")):
        value = getattr(artifact, attr, None)
        if value is not None:
            auto[key] = value if isinstance(value, (str, int, float)) else str(value)

    def remeasure() -> list[float]:  # pytest-benchmark times once per test: the gate's re-runs use its timer
        for _ in range(warmup_rounds):
            invoke()
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            invoke()
            samples.append((time.perf_counter() - started) * 1e6)
        return samples

    return observe_benchmark(benchmark, context={**auto, **(context or {})}, test_id=test_id, remeasure=remeasure)
