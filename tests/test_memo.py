"""Pure functions of model bytes are computed once per content hash and kept in the cache directory: vet
verdicts, arena figures, TFLite Micro op probes (pytest_tinyml.memo), and conversion failures (TinyMLCache).
A second run starts no child for them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import runtime_models as models

from pytest_tinyml import child, memo
from pytest_tinyml.cache import TinyMLCache
from pytest_tinyml.errors import ConversionError, ConversionTimeout

# One "run": a fresh Python process that asks every kept fact of two models and prints what it got and how
# many children it started.
RUN = textwrap.dedent(
    """
    import json, sys
    from pytest_tinyml import child, memo, runtime
    from pytest_tinyml.analyze import tflm_compatibility
    from pytest_tinyml.runtime import isolation, microops, tflm

    memo.set_root(sys.argv[1])
    good, hybrid = runtime.load(sys.argv[2], name="good"), runtime.load(sys.argv[3], name="hybrid")
    out = {}
    isolation.vet(good, "tflm"); isolation.vet(good, "litert")
    out["arena"] = tflm.arena(good).as_dict()
    out["ops"] = microops.supported(["FULLY_CONNECTED", "TOPK_V2"])
    compat = tflm_compatibility(hybrid)
    out["hybrid"] = [compat.compatible, compat.load_error]
    out["children"] = child.started
    print(json.dumps(out))
    """
)


def _run(root, good, hybrid) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN, str(root), str(good), str(hybrid)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def model_files(tmp_path, mlp_int8):
    good, hybrid = tmp_path / "good.tflite", tmp_path / "hybrid.tflite"
    good.write_bytes(mlp_int8.content)
    hybrid.write_bytes(models.hybrid_conv_bytes())
    return good, hybrid


@pytest.mark.slow
def test_a_second_run_starts_no_child_for_vets_arena_probes_and_verdicts(tmp_path, model_files):
    root = tmp_path / "cache"
    first = _run(root, *model_files)
    assert first["children"] >= 4  # vet tflm, vet litert, arena, op probes, vet of the hybrid model
    assert first["ops"] == {"FULLY_CONNECTED": True, "TOPK_V2": False}
    assert first["hybrid"][0] is False and "Hybrid models are not supported" in first["hybrid"][1]
    kinds = sorted(p.name for p in (root / memo.FACTS).iterdir())
    assert kinds == ["tflm-arena", "tflm-op", "vet"]

    second = _run(root, *model_files)
    assert second["children"] == 0
    assert second["arena"] == first["arena"] and second["ops"] == first["ops"]
    assert second["hybrid"][0] is False and "Hybrid models are not supported" in second["hybrid"][1]
    assert "verdict kept from an earlier run" in second["hybrid"][1]

    # Without the directory, the next run measures again: the count above is not a constant.
    assert _run(tmp_path / "other", *model_files)["children"] == first["children"]


@pytest.mark.slow
def test_a_corrupt_fact_is_recomputed_and_rewritten(tmp_path, mlp_int8):
    from pytest_tinyml.runtime import tflm

    previous = memo.set_root(tmp_path)
    try:
        report = tflm.arena(mlp_int8)
        (entry,) = (tmp_path / memo.FACTS / "tflm-arena").rglob("*.json")
        entry.write_text(entry.read_text()[:40])  # truncated
        memo.set_root(tmp_path)  # a new run: nothing in process memory
        before = child.started
        assert tflm.arena(mlp_int8) == report
        assert child.started > before  # measured again, not read from the broken file
        assert json.loads(entry.read_text())["value"]["report"]["arena_bytes"] == report.arena_bytes
    finally:
        memo.set_root(previous)


def test_memo_keeps_values_atomically_and_without_a_root_in_process_only(tmp_path):
    previous = memo.set_root(None)
    try:
        calls = []
        assert memo.remember("demo", {"n": 1}, lambda: calls.append(1) or {"v": 1}) == {"v": 1}
        assert memo.remember("demo", {"n": 1}, lambda: calls.append(1) or {"v": 2}) == {"v": 1}
        assert calls == [1] and memo.path_of("demo", {"n": 1}) is None
        memo.set_root(tmp_path)
        path = memo.store("demo", {"n": 2}, [1, 2])
        assert path.parent.parent.parent == tmp_path / memo.FACTS and not list(path.parent.glob(".tmp-*"))
        memo.set_root(tmp_path)
        assert memo.lookup("demo", {"n": 2}) == (True, [1, 2]) and memo.lookup("demo", {"n": 3}) == (False, None)
        record = json.loads(path.read_text())
        record["value"] = [1, 3]  # changed behind the checksum's back: not believed
        path.write_text(json.dumps(record))
        memo.set_root(tmp_path)
        assert memo.lookup("demo", {"n": 2}) == (False, None)
        assert memo.remember("demo", {"n": 2}, lambda: [1, 2]) == [1, 2]
        assert json.loads(path.read_text())["value"] == [1, 2]  # rewritten
        memo.discard("demo", {"n": 2})
        assert not path.exists() and memo.lookup("demo", {"n": 2}) == (False, None)
    finally:
        memo.set_root(previous)


def test_processes_started_from_this_one_keep_facts_in_the_same_root(tmp_path):
    """The sim's engine process (and any other) finds the facts this process keeps."""
    previous = memo.set_root(tmp_path / "shared")
    try:
        code = "from pytest_tinyml import memo; print(memo.root())"
        seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert seen.strip() == str(tmp_path / "shared")
        memo.set_root(None)
        seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert seen.strip() == "None"
    finally:
        memo.set_root(previous)


# --- conversion failures --------------------------------------------------------------------------------


def _failing(calls: list, error: Exception):
    def produce():
        calls.append(1)
        raise error

    return produce


def _memoize(cache, produce, parts=None):
    return cache.memoize("convert", parts or {"model": "m", "recipe": "int8"}, produce,
                         save=lambda value, d: (d / "v.txt").write_text(value),
                         load=lambda d: (d / "v.txt").read_text(), keep_failure=lambda e: isinstance(e, ConversionError)
                         and not isinstance(e, ConversionTimeout))


def test_a_conversion_failure_is_kept_and_fails_fast_with_its_message(tmp_path):
    cache, calls = TinyMLCache(tmp_path), []
    original = ConversionError("TFLite conversion of model 'lstm', recipe 'int8' crashed with SIGSEGV")
    with pytest.raises(ConversionError, match="crashed with SIGSEGV$"):
        _memoize(cache, _failing(calls, original))
    with pytest.raises(ConversionError, match=r"(?s)crashed with SIGSEGV\n\(cached: .*delete .*convert-failed.*"
                       r"--tinyml-cache-retry"):
        _memoize(TinyMLCache(tmp_path), _failing(calls, original))  # a new session, same directory
    assert calls == [1]  # the converter did not run again
    # other inputs are not affected
    with pytest.raises(ConversionError, match="SIGSEGV$"):
        _memoize(cache, _failing(calls, original), {"model": "m", "recipe": "int16x8"})
    assert calls == [1, 1]


def test_retry_failures_runs_the_conversion_again(tmp_path):
    calls = []
    with pytest.raises(ConversionError):
        _memoize(TinyMLCache(tmp_path), _failing(calls, ConversionError("refused")))
    assert _memoize(TinyMLCache(tmp_path, retry_failures=True), lambda: calls.append(2) or "fixed") == "fixed"
    assert calls == [1, 2]
    assert _memoize(TinyMLCache(tmp_path), _failing(calls, ConversionError("x"))) == "fixed"  # now a hit


def test_a_timeout_or_another_error_is_not_kept(tmp_path):
    calls = []
    for error in (ConversionTimeout("hung: no result after 1 s"), ValueError("a bug")):
        for _ in range(2):
            with pytest.raises(type(error)):
                _memoize(TinyMLCache(tmp_path), _failing(calls, error), {"error": type(error).__name__})
    assert calls == [1, 1, 1, 1]
    assert not (tmp_path / "convert-failed").exists()


def test_a_damaged_failure_record_is_ignored(tmp_path):
    cache, calls = TinyMLCache(tmp_path), []
    with pytest.raises(ConversionError):
        _memoize(cache, _failing(calls, ConversionError("refused")))
    (record,) = (tmp_path / "convert-failed").rglob("*.json")
    record.write_text("{not json")
    assert _memoize(cache, lambda: "converted") == "converted"


@pytest.mark.slow
def test_the_lstm_int8_crash_is_not_redone(tmp_path):
    """The real case: TF's converter segfaults calibrating a Keras 3 LSTM; the second time costs no child."""
    import numpy as np

    from pytest_tinyml import zoo

    model = zoo.build("gesture_lstm", input_shape=(50, 3), num_classes=4, seed=0)
    x = np.random.default_rng(0).normal(size=(100, 50, 3)).astype(np.float32)
    with pytest.raises(ConversionError, match="(?i)crash|signal"):
        TinyMLCache(tmp_path).convert(model, "int8", representative=x)
    before = child.started
    with pytest.raises(ConversionError, match=r"(?is)(crash|signal).*\(cached: "):
        TinyMLCache(tmp_path).convert(model, "int8", representative=x)
    assert child.started == before
