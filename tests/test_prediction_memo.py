"""Keras predictions inside the assertions are remembered per (model content hash, input bytes, versions):
the kept outputs are bit-identical to predicting again, and a changed weight, input or version is a miss."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_tinyml import _model_io, memo
from pytest_tinyml.errors import ConfigError

keras = pytest.importorskip("keras")


@pytest.fixture
def root(tmp_path):
    previous = memo.set_root(tmp_path)
    yield tmp_path
    memo.set_root(previous)


def small_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    return model


def kept_files(root):
    return sorted((root / memo.FACTS / _model_io.PREDICTION_FACT).rglob("*.json"))


def fresh(model, x):
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64)


def test_second_prediction_is_read_back_bit_identical(root):
    model, x = small_model(), np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    first = _model_io.keras_outputs(model, x, "reference")
    loaded = memo.stats["loaded"]
    memo.set_root(root)  # forget the process copy: the next answer comes from the file
    second = _model_io.keras_outputs(model, x, "reference")
    assert memo.stats["loaded"] == loaded + 1
    assert len(kept_files(root)) == 1
    assert second.dtype == np.float64 and second.tobytes() == first.tobytes() == fresh(model, x).tobytes()


def test_changed_weight_or_input_misses(root):
    model, x = small_model(), np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    before = _model_io.keras_outputs(model, x, "reference")
    kernel, bias = model.get_weights()
    kernel[0, 0] += 1.0
    model.set_weights([kernel, bias])
    after = _model_io.keras_outputs(model, x, "reference")
    assert not np.array_equal(after, before)  # a stale answer here would be the old model's outputs
    assert after.tobytes() == fresh(model, x).tobytes()
    x2 = x.copy()
    x2[3, 1] += 0.5
    other = _model_io.keras_outputs(model, x2, "reference")
    assert other.tobytes() == fresh(model, x2).tobytes() and not np.array_equal(other, after)
    assert len(kept_files(root)) == 3


def test_key_includes_versions(root):
    model, x = small_model(), np.zeros((2, 4), np.float32)
    parts = _model_io._prediction_parts("ab" * 32, model, x)
    assert parts["versions"]["keras"] == keras.__version__ and "pytest-tinyml" in parts["versions"]
    changed = dict(parts, versions=dict(parts["versions"], keras="0.0.0"))
    assert memo.key(_model_io.PREDICTION_FACT, changed) != memo.key(_model_io.PREDICTION_FACT, parts)


def test_model_with_a_lambda_is_always_predicted(root):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)])
    x = np.ones((3, 4), np.float32)
    assert _model_io.keras_outputs(model, x, "reference").tobytes() == fresh(model, x).tobytes()
    assert kept_files(root) == []


def test_tampered_entry_is_predicted_again(root):
    model, x = small_model(), np.ones((5, 4), np.float32)
    _model_io.keras_outputs(model, x, "reference")
    (path,) = kept_files(root)
    path.write_text(path.read_text().replace('"shape"', '"shape" ', 1).replace("A", "B", 1))
    memo.set_root(root)
    assert _model_io.keras_outputs(model, x, "reference").tobytes() == fresh(model, x).tobytes()


def test_public_outputs_checks_x_and_reads_back_what_it_predicted(tmp_path):
    """tinyml.outputs: the assertions' path for users' own metrics; bad x is refused, a repeat is read back."""
    import keras

    import pytest_tinyml as tinyml
    from pytest_tinyml import memo

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).uniform(0, 1, (16, 4)).astype(np.float32)
    previous = memo.set_root(tmp_path / "facts-root")
    try:
        first = tinyml.outputs(model, x)
        np.testing.assert_array_equal(first, model.predict(x, verbose=0).astype(np.float64))
        assert list((tmp_path / "facts-root").rglob("*.json")), "the prediction was not kept"
        np.testing.assert_array_equal(tinyml.outputs(model, x), first)
        bad = x.copy()
        bad[3, 1] = np.nan
        with pytest.raises(ConfigError, match="NaN"):
            tinyml.outputs(model, bad)
        with pytest.raises(ConfigError, match=r"\(4,\)"):
            tinyml.outputs(model, x.reshape(16, 2, 2))
    finally:
        memo.set_root(previous)
