"""TinyMLCache: memoize mechanics, corruption, concurrency across processes, cached fit and convert."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pytest_tinyml.cache import TinyMLCache, canonical
from pytest_tinyml.errors import CacheError, CacheWarning, ConfigError

# --- memoize: the mechanism, with cheap values ------------------------------------------------------------


def save_text(value, directory: Path) -> None:
    (directory / "value.txt").write_text(value)


def load_text(directory: Path) -> str:
    return (directory / "value.txt").read_text()


class Producer:
    def __init__(self, value="hello"):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def memo(cache, parts, producer, kind="demo"):
    return cache.memoize(kind, parts, producer, save=save_text, load=load_text)


def test_miss_then_hit_and_layout(tmp_path):
    cache, producer = TinyMLCache(tmp_path / "c"), Producer()
    assert memo(cache, {"n": 1}, producer) == "hello"
    assert memo(TinyMLCache(tmp_path / "c"), {"n": 1}, producer) == "hello"  # a new instance: from disk
    assert producer.calls == 1 and cache.misses == 1
    key = cache.key("demo", {"n": 1})
    entry = tmp_path / "c" / "demo" / key[:2] / key
    assert entry == cache.entry_dir("demo", key) and (entry / "value.txt").read_text() == "hello"
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["files"] == {"value.txt": hashlib.sha256(b"hello").hexdigest()} and meta["key"] == key
    assert meta["kind"] == "demo" and meta["key_parts"] == {"n": 1}


def test_keys_depend_on_every_part_but_not_on_order():
    cache = TinyMLCache("unused")
    assert cache.key("k", {"a": 1, "b": [1, 2]}) == cache.key("k", {"b": [1, 2], "a": 1})
    assert cache.key("k", {"a": 1}) != cache.key("k", {"a": 2}) != cache.key("other", {"a": 2})
    x = np.arange(6, dtype=np.float32)
    assert cache.key("k", {"x": x}) == cache.key("k", {"x": x.copy()})
    assert cache.key("k", {"x": x}) != cache.key("k", {"x": x.astype(np.float64)})
    assert cache.key("k", {"x": x}) != cache.key("k", {"x": x.reshape(2, 3)})


def test_unkeyable_values_are_config_errors():
    with pytest.raises(ConfigError, match=r"cannot key the cache on fit.callbacks\[0\]"):
        canonical({"callbacks": [object()]}, "fit")


def corrupt_truncate(entry: Path):
    (entry / "value.txt").write_text("hel")


def corrupt_meta(entry: Path):
    (entry / "meta.json").write_text("{not json")


def corrupt_missing(entry: Path):
    (entry / "value.txt").unlink()


def corrupt_no_meta(entry: Path):
    (entry / "meta.json").unlink()


@pytest.mark.parametrize(
    "corrupt, reason",
    [(corrupt_truncate, "does not match its sha256"), (corrupt_meta, "meta.json is unreadable"),
     (corrupt_missing, "value.txt is missing"), (corrupt_no_meta, "meta.json is missing")],
    ids=["truncated", "bad-json", "missing-file", "missing-meta"],
)
def test_corrupt_entry_is_rebuilt_with_a_warning_never_used(tmp_path, corrupt, reason):
    cache, producer = TinyMLCache(tmp_path), Producer()
    memo(cache, {"n": 1}, producer)
    key = cache.key("demo", {"n": 1})
    corrupt(cache.entry_dir("demo", key))
    with pytest.warns(CacheWarning, match=reason):
        assert memo(cache, {"n": 1}, producer) == "hello"
    assert producer.calls == 2 and cache.rebuilds == 1
    assert memo(cache, {"n": 1}, producer) == "hello" and producer.calls == 2  # healthy again
    leftovers = [p.name for p in cache.entry_dir("demo", key).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_loader_that_fails_counts_as_corrupt(tmp_path):
    cache, producer = TinyMLCache(tmp_path), Producer("42")
    cache.memoize("n", {}, producer, save=save_text, load=lambda d: int(load_text(d)))

    def broken(directory):
        raise ValueError("unsupported format")

    with pytest.warns(CacheWarning, match="loading failed: ValueError: unsupported format"):
        cache.memoize("n", {}, producer, save=save_text, load=broken)
    assert producer.calls == 2


def test_failed_produce_leaves_no_entry(tmp_path):
    cache = TinyMLCache(tmp_path)

    def boom():
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError):
        cache.memoize("demo", {"n": 1}, boom, save=save_text, load=load_text)
    assert memo(cache, {"n": 1}, Producer()) == "hello" and cache.misses == 2


def test_unwritable_cache_is_a_cache_error_naming_directory_and_fix(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(CacheError) as info:
        memo(TinyMLCache(blocker), {"n": 1}, Producer())
    assert str(blocker) in str(info.value) and "--tinyml-cache-dir" in str(info.value)


def _race_worker(root: str, start_at: float, log_dir: str) -> str:
    def produce():
        Path(log_dir, f"produced-{os.getpid()}").write_text("")
        time.sleep(0.5)  # a slow build: the others must wait for it, not build it again
        return "built once"

    while time.time() < start_at:
        time.sleep(0.005)
    return TinyMLCache(root).memoize("race", {"n": 1}, produce, save=save_text, load=load_text)


def test_concurrent_processes_build_an_entry_once(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # spawned interpreters start slowly: meet at a common instant
    with ctx.Pool(4) as pool:
        results = pool.starmap(_race_worker, [(str(tmp_path / "c"), start_at, str(logs))] * 4)
    assert results == ["built once"] * 4
    assert len(list(logs.iterdir())) == 1
    entries = [p for p in (tmp_path / "c" / "race").glob("*/*") if p.is_dir()]
    assert len(entries) == 1


# --- fit ---------------------------------------------------------------------------------------------------


@dataclass
class ArrayDataset:
    """A stand-in with the Dataset contract (used only when pytest_tinyml.datasets is not there yet)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str = "classification"

    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.x_train).tobytes())
        digest.update(np.ascontiguousarray(self.y_train).tobytes() + self.task.encode())
        return digest.hexdigest()


def digits_dataset():
    try:
        from pytest_tinyml import datasets

        return datasets.load("digits")
    except (ImportError, AttributeError):
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.data / 16.0).astype(np.float32), d.target
        return ArrayDataset(x[:1400], y[:1400], x[1400:], y[1400:])


def tiny_classifier(inputs: int):
    import keras

    keras.utils.set_random_seed(1)  # same initial weights every build: that is what makes hits possible
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")], name="tiny")


@pytest.fixture(scope="module")
def digits():
    ds = digits_dataset()
    if ds.x_train.ndim > 2:
        ds = ArrayDataset(*(np.asarray(a).reshape(len(a), -1) if i % 2 == 0 else np.asarray(a)
                            for i, a in enumerate((ds.x_train, ds.y_train, ds.x_test, ds.y_test))))
    return ds


@pytest.mark.slow
def test_fit_trains_once_then_loads_identical_weights(tmp_path, digits):
    cache = TinyMLCache(tmp_path)
    cold_model = tiny_classifier(digits.x_train.shape[1])
    started = time.perf_counter()
    trained = cache.fit(cold_model, digits, epochs=8)
    cold = time.perf_counter() - started
    assert trained is cold_model and trained.compiled and cache.misses == 1
    assert type(trained.loss).__name__ == "SparseCategoricalCrossentropy"
    assert trained.loss.get_config()["from_logits"] is False  # tiny_classifier ends in a softmax
    assert len(trained.tinyml_history["loss"]) == 8
    accuracy = float(trained.evaluate(digits.x_test, digits.y_test, verbose=0)[1])
    assert accuracy > 0.85

    warm_model = tiny_classifier(digits.x_train.shape[1])
    started = time.perf_counter()
    loaded = cache.fit(warm_model, digits, epochs=8)
    warm = time.perf_counter() - started
    assert cache.hits == 1 and loaded.tinyml_history == trained.tinyml_history
    for a, b in zip(trained.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(loaded.evaluate(digits.x_test, digits.y_test, verbose=0)[1]) == pytest.approx(accuracy)
    assert warm < cold

    cache.fit(tiny_classifier(digits.x_train.shape[1]), digits, epochs=9)  # other epochs: other key
    assert cache.misses == 2


@pytest.mark.slow  # trains a model (10-20 s on 2 busy cores)
def test_fit_reconstruction_task_learns_x_to_x(tmp_path, digits):
    import keras

    keras.utils.set_random_seed(2)
    autoencoder = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                                    keras.layers.Dense(64, activation="sigmoid")], name="ae")
    ds = ArrayDataset(digits.x_train, digits.y_train, digits.x_test, digits.y_test, task="reconstruction")
    model = TinyMLCache(tmp_path).fit(autoencoder, ds, epochs=3)
    assert type(model.loss).__name__ == "MeanSquaredError" and model.tinyml_history["loss"][-1] < model.tinyml_history["loss"][0]


@pytest.mark.slow  # trains a model (10-20 s on 2 busy cores)
def test_fit_corrupt_weights_are_rebuilt(tmp_path, digits):
    cache = TinyMLCache(tmp_path)
    cache.fit(tiny_classifier(64), digits, epochs=1)
    entry = next(p for p in (tmp_path / "fit").glob("*/*") if p.is_dir())
    weights = entry / "model.keras"
    weights.write_bytes(weights.read_bytes()[:100])
    # Not pytest.warns: it would re-raise Keras' own numpy DeprecationWarnings under filterwarnings=error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.fit(tiny_classifier(64), digits, epochs=1)
    ours = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and "model.keras does not match its sha256" in ours[0]
    assert cache.misses == 2 and cache.rebuilds == 1


@pytest.mark.slow
def test_fit_caches_tf_keras_models_too(tmp_path, digits):
    import tf_keras

    def build():
        tf_keras.utils.set_random_seed(4)
        return tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(10, activation="softmax")])

    cache = TinyMLCache(tmp_path)
    first = cache.fit(build(), digits, epochs=2)
    second = cache.fit(build(), digits, epochs=2)
    assert (cache.misses, cache.hits) == (1, 1)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert list((tmp_path / "fit").glob("*/*/weights.h5"))


def test_fit_refuses_what_it_cannot_key(tmp_path, digits):
    cache = TinyMLCache(tmp_path)
    with pytest.raises(ConfigError, match="needs a dataset with x_train"):
        cache.fit(tiny_classifier(64), (digits.x_train, digits.y_train))
    with pytest.raises(ConfigError, match="needs a Keras model"):
        cache.fit("mlp", digits)


# --- convert -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_convert_hit_returns_the_same_artifact_much_faster(tmp_path, digits):
    cache = TinyMLCache(tmp_path)
    model = cache.fit(tiny_classifier(64), digits, epochs=3)
    started = time.perf_counter()
    cold = cache.convert(model, "int8", representative=digits.x_train, name="tiny")
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = TinyMLCache(tmp_path).convert(model, "int8", representative=digits.x_train, name="tiny_again")
    warm_s = time.perf_counter() - started
    print(f"convert cold {cold_s:.2f} s, warm {warm_s:.3f} s")
    assert warm.sha256 == cold.sha256 and warm.content == cold.content
    assert warm.inputs == cold.inputs and warm.params == cold.params and warm.versions == cold.versions
    assert warm.name == "tiny_again" and cold.name == "tiny"
    assert warm_s * 10 < cold_s
    # A different representative set is a different artifact key.
    key_parts = {p.name for p in (tmp_path / "convert").glob("*/*") if p.is_dir()}
    cache.convert(model, "int8", representative=digits.x_train[:300], name="tiny")
    assert len({p.name for p in (tmp_path / "convert").glob("*/*") if p.is_dir()} - key_parts) == 1


CONVERT_RACE = textwrap.dedent(
    """
    import json, sys, keras, numpy as np
    from pytest_tinyml.cache import TinyMLCache
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="race")
    cache = TinyMLCache(sys.argv[1])
    art = cache.convert(model, "dynamic_range")
    print(json.dumps({"sha256": art.sha256, "hits": cache.hits, "misses": cache.misses}))
    """
)


@pytest.mark.slow
def test_two_processes_converting_the_same_key_make_one_entry(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    procs = [
        subprocess.Popen([sys.executable, "-c", CONVERT_RACE, str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["sha256"] == results[1]["sha256"]
    assert sorted(r["misses"] for r in results) == [0, 1] and sorted(r["hits"] for r in results) == [0, 1]
    entries = [p for p in (tmp_path / "convert").glob("*/*") if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "model.tflite").stat().st_size > 0


# --- the tinyml_cache fixture, as a user sees it -------------------------------------------------------------

FIXTURE_TEST = """
from pathlib import Path

def test_memoize(tinyml_cache):
    calls = []
    def produce():
        calls.append(1)
        return "v"
    save = lambda value, d: (d / "v.txt").write_text(value)
    load = lambda d: (d / "v.txt").read_text()
    assert tinyml_cache.memoize("user", {"a": 1}, produce, save=save, load=load) == "v"
    assert tinyml_cache.memoize("user", {"a": 1}, produce, save=save, load=load) == "v"
    assert calls == [1]
"""


def test_fixture_uses_the_cache_dir_option(pytester):
    pytester.makepyfile(FIXTURE_TEST)
    cache_dir = pytester.path / "my-cache"
    result = pytester.runpytest_subprocess(f"--tinyml-cache-dir={cache_dir}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert len(list((cache_dir / "user").glob("*/*/meta.json"))) == 1


def test_fixture_with_an_unwritable_cache_dir_says_how_to_fix_it(pytester):
    pytester.makepyfile(FIXTURE_TEST)
    blocker = pytester.path / "blocked"
    blocker.write_text("not a directory")
    result = pytester.runpytest_subprocess(f"--tinyml-cache-dir={blocker}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CacheError*not writable*--tinyml-cache-dir*"])


@pytest.mark.slow
def test_fit_is_clean_under_filterwarnings_error(pytester):
    """Keras's numpy-2 deprecation noise inside fit/save must not fail a user's strict suite."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        """
        import pytest_tinyml as tinyml

        def test_fit(tinyml_cache):
            data = tinyml.datasets.load("digits", n_train=200, n_test=50)
            model = tinyml.zoo.build("student", input_shape=data.input_shape, num_classes=10)
            tinyml_cache.fit(model, data, epochs=1)
            tinyml_cache.fit(tinyml.zoo.build("student", input_shape=data.input_shape, num_classes=10), data, epochs=1)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:pytest_embedded", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


CORRUPT_UNDER_W_ERROR = """
import pathlib


def save(value, directory):
    (directory / "value.txt").write_text(value)


def load(directory):
    return (directory / "value.txt").read_text()


def produce():
    marker = pathlib.Path("produced.txt")
    marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
    return "hello"


def test_value(tinyml_cache):
    assert tinyml_cache.memoize("demo", {"n": 1}, produce, save=save, load=load) == "hello"
"""


def test_a_corrupt_entry_is_rebuilt_even_when_warnings_are_errors(pytester):
    """Under -W error the CacheWarning raises: it must come after the rebuild, so the next run is healthy."""
    pytester.makepyfile(CORRUPT_UNDER_W_ERROR)
    cache_dir = pytester.path / "cache"
    # pytest-embedded, where installed, warns from its own autouse fixture: not what -W error is here to test
    args = (f"--tinyml-cache-dir={cache_dir}", "-p", "no:cacheprovider", "-p", "no:pytest_embedded", "-W", "error")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    (value,) = cache_dir.glob("demo/*/*/value.txt")
    value.write_text("hel")  # truncated
    # This run sees the corruption: it rebuilds the entry, then its warning (an error here) fails the test...
    failed = pytester.runpytest_subprocess(*args)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*CacheWarning: tinyml cache entry * was corrupt (value.txt does not match*rebuilt it"])
    assert value.read_text() == "hello" and (pytester.path / "produced.txt").read_text() == "xx"
    # ...and every later run passes from the rebuilt entry, without producing again.
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    assert (pytester.path / "produced.txt").read_text() == "xx"
    # The category is filterable: ignoring it makes the corrupt run pass too.
    value.write_text("hel")
    pytester.runpytest_subprocess(*args, "-W", "ignore::pytest_tinyml.errors.CacheWarning").assert_outcomes(passed=1)
    assert value.read_text() == "hello"
