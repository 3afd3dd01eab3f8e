"""Datasets: digits, synthetic generators, fingerprints, from_arrays (numpy and tf.data), public loaders."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pytest_tinyml import datasets
from pytest_tinyml.datasets import public
from pytest_tinyml.errors import DatasetError

SYNTHETIC = {
    # name -> (input_shape, num_classes, task, default n_train, default n_test)
    "keywords": ((49, 10, 1), 12, "classification", 600, 240),
    "keywords_seq": ((49, 10), 12, "classification", 600, 240),
    "gestures": ((50, 3), 4, "classification", 400, 160),
    "anomaly": ((640,), None, "anomaly", 400, 200),
    "images32": ((32, 32, 3), 10, "classification", 500, 200),
    "vww96": ((96, 96, 3), 2, "classification", 200, 60),
}


def test_import_costs_no_tensorflow_or_keras():
    code = textwrap.dedent(
        """
        import sys
        from pytest_tinyml import datasets
        datasets.load("keywords", n_train=12, n_test=12)
        heavy = [m for m in ("keras", "tensorflow") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_names():
    assert datasets.names(offline_only=True) == ["digits", "digits_image", *SYNTHETIC]
    assert set(datasets.names()) == {
        *datasets.names(offline_only=True),
        "mnist",
        "cifar10",
        "speech_commands",
    }


def test_digits_is_real_scaled_and_stratified():
    ds = datasets.load("digits")
    assert (ds.x_train.shape, ds.x_test.shape) == ((1438, 64), (359, 64))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert (ds.input_shape, ds.num_classes, ds.task, ds.synthetic) == ((64,), 10, "classification", False)
    # Stratified: every class holds 20% +- one sample of its members in the test split.
    test_counts, all_counts = np.bincount(ds.y_test), np.bincount(np.r_[ds.y_train, ds.y_test])
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)
    image = datasets.load("digits_image")
    assert image.x_train.shape == (1438, 8, 8, 1) and image.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(image.x_train.reshape(-1, 64), ds.x_train)
    small = datasets.load("digits", n_train=100, n_test=50)
    np.testing.assert_array_equal(small.x_train, ds.x_train[:100])
    assert len(np.unique(small.y_test)) == 10  # the split is shuffled: a head still holds every class


def test_digits_split_depends_on_seed_only():
    assert datasets.load("digits").fingerprint() == datasets.load("digits", seed=0).fingerprint()
    assert datasets.load("digits").fingerprint() != datasets.load("digits", seed=1).fingerprint()


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_shapes_dtypes_and_labels(name):
    input_shape, num_classes, task, n_train, n_test = SYNTHETIC[name]
    ds = datasets.load(name, n_train=24, n_test=12) if name == "vww96" else datasets.load(name)
    n_train, n_test = (24, 12) if name == "vww96" else (n_train, n_test)
    assert ds.x_train.shape == (n_train, *input_shape) and ds.x_test.shape == (n_test, *input_shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert (ds.input_shape, ds.num_classes, ds.task) == (input_shape, num_classes, task)
    assert ds.synthetic and "SYNTHETIC" in ds.description
    assert np.all(np.isfinite(ds.x_train))
    if task == "classification":
        counts = np.bincount(np.r_[ds.y_train, ds.y_test], minlength=num_classes)
        assert counts.max() - counts.min() <= 1  # balanced
        assert set(np.unique(ds.y_test)) <= set(range(num_classes))
    else:  # anomaly: train on normal data only, test on both
        assert not ds.y_train.any()
        assert set(ds.y_test.tolist()) == {0, 1}


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_is_deterministic_by_seed(name):
    a = datasets.load(name, n_train=8, n_test=4, seed=5)
    b = datasets.load(name, n_train=8, n_test=4, seed=5)
    c = datasets.load(name, n_train=8, n_test=4, seed=6)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_fingerprint_covers_values_dtype_and_shape_not_names():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1], np.int32)
    base = datasets.from_arrays(x[:4], y[:4], x[4:], y[4:])
    # Pinned: the cache keys on this; changing the hashing scheme must be deliberate.
    assert base.fingerprint() == "54dddcf1b4516bb9cb6e6ca21780bbb885d63cbe0b7cff9331ca04e6ad2824cf"
    renamed = datasets.from_arrays(x[:4], y[:4], x[4:], y[4:], name="other", description="other")
    assert renamed.fingerprint() == base.fingerprint()
    changed = x.copy()
    changed[0, 0] = 0.5
    assert datasets.from_arrays(changed[:4], y[:4], x[4:], y[4:]).fingerprint() != base.fingerprint()
    as_int = datasets.from_arrays(x[:4].astype(np.int32), y[:4], x[4:].astype(np.int32), y[4:])
    assert as_int.fingerprint() != base.fingerprint()
    reshaped = datasets.from_arrays(x[:4].reshape(4, 2, 1), y[:4], x[4:].reshape(2, 2, 1), y[4:])
    assert reshaped.fingerprint() != base.fingerprint()


def test_keywords_are_learnable_by_a_linear_model():
    from sklearn.neighbors import NearestCentroid

    ds = datasets.load("keywords")
    model = NearestCentroid().fit(ds.x_train.reshape(len(ds.x_train), -1), ds.y_train)
    accuracy = model.score(ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)
    assert accuracy > 0.7, accuracy  # chance is 1/12


def test_anomalies_are_detectable_from_normal_data_only():
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    ds = datasets.load("anomaly")
    pca = PCA(8).fit(ds.x_train)
    error = ((ds.x_test - pca.inverse_transform(pca.transform(ds.x_test))) ** 2).mean(axis=1)
    assert roc_auc_score(ds.y_test, error) > 0.9


@pytest.mark.slow
def test_gestures_are_learnable_by_the_zoo_gesture_model():
    from pytest_tinyml import zoo

    ds = datasets.load("gestures", n_train=240, n_test=80)
    model = zoo.build("gesture_cnn", seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=8, batch_size=16, verbose=0)
    accuracy = model.evaluate(ds.x_test, ds.y_test, verbose=0)[1]
    assert accuracy > 0.7, accuracy  # chance is 1/4


def test_load_errors_are_clear():
    with pytest.raises(DatasetError, match="unknown dataset 'mnst'; known: digits, .*mnist"):
        datasets.load("mnst")
    with pytest.raises(DatasetError, match="takes no argument n_samples; accepted: n_train, n_test, seed"):
        datasets.load("keywords", n_samples=3)
    with pytest.raises(DatasetError, match="n_train must be an integer >= 2, got 0"):
        datasets.load("gestures", n_train=0)
    with pytest.raises(DatasetError, match="n_test must be a positive integer or None, got -1"):
        datasets.load("digits", n_test=-1)


def test_head_and_reshaped():
    ds = datasets.load("keywords", n_train=20, n_test=10)
    small = ds.head(5, 3)
    assert (len(small.x_train), len(small.y_train), len(small.x_test)) == (5, 5, 3)
    flat = ds.reshaped((490,))
    assert flat.input_shape == (490,) and flat.x_test.shape == (10, 490)
    assert flat.fingerprint() != ds.fingerprint()
    with pytest.raises(DatasetError, match=r"cannot reshape samples of shape \(49, 10, 1\) to \(48,\)"):
        ds.reshaped((48,))
    assert "keywords" in repr(ds) and "synthetic" in repr(ds)


# --- from_arrays -------------------------------------------------------------------------------------------


def test_from_arrays_splits_seeded_and_stratified():
    x = np.random.default_rng(0).random((100, 3))
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    ds = datasets.from_arrays(x, y, seed=1)
    assert (len(ds.x_train), len(ds.x_test)) == (80, 20)
    assert np.bincount(ds.y_test).tolist() == [16, 4]
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32  # float64 -> float32
    assert (ds.task, ds.num_classes, ds.input_shape, ds.synthetic) == ("classification", 2, (3,), False)
    assert datasets.from_arrays(x, y, seed=1).fingerprint() == ds.fingerprint()
    assert datasets.from_arrays(x, y, seed=2).fingerprint() != ds.fingerprint()


def test_from_arrays_infers_tasks():
    x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    auto = datasets.from_arrays(x, None, test_fraction=0.25)
    assert auto.task == "reconstruction" and auto.num_classes is None
    np.testing.assert_array_equal(auto.y_train, auto.x_train)
    one_hot = np.eye(3)[np.arange(20) % 3]
    ds = datasets.from_arrays(x, one_hot, x[:5], one_hot[:5])
    assert ds.task == "classification" and ds.y_test.tolist() == [0, 1, 2, 0, 1] and ds.num_classes == 3
    anomaly = datasets.from_arrays(x, np.zeros(20), x[:4], [0, 1, 0, 1], task="anomaly")
    assert anomaly.task == "anomaly" and anomaly.y_test.tolist() == [0, 1, 0, 1]
    assert datasets.from_arrays(x, np.arange(20) % 2, num_classes=5).num_classes == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((5, 2)), np.zeros(4, int)), {}, "x has 5 samples but y has 4"),
        ((np.full((5, 2), np.nan), np.zeros(5, int)), {}, r"x has 10 NaN/Inf values \(first in sample #0\)"),
        ((np.zeros((5, 2)), np.zeros(5, int), None, np.zeros(2, int)), {}, "y_test given without x_test"),
        ((np.zeros((5, 2)), np.zeros(5, int)), {"test_fraction": 1.5}, r"test_fraction must be in \(0, 1\)"),
        ((np.zeros((5, 2)), np.zeros(5, int)), {"task": "regression"}, "task must be one of"),
        ((np.zeros((5, 2)), [0, 1, 0, 1, 3]), {"num_classes": 2}, "num_classes=2 but labels go up to 3"),
        (
            (np.zeros((5, 2)), np.zeros(5, int), np.zeros((2, 3)), np.zeros(2, int)),
            {},
            "test samples have shape",
        ),
        ((np.zeros(5), np.zeros(5, int)), {}, "sample axis and at least one feature axis"),
        ((np.zeros((5, 2)), np.linspace(0, 1, 5)), {}, "cannot tell the task"),
        ((np.zeros((5, 2)), [0, -1, 0, 1, 0]), {}, "labels must be integers >= 0"),
    ],
)
def test_from_arrays_rejects_bad_input(args, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        datasets.from_arrays(*args, **kwargs)


def test_from_arrays_accepts_tf_data():
    import tensorflow as tf

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20) % 2
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    unbatched = datasets.from_arrays(pairs, x_test=pairs.take(4))
    np.testing.assert_array_equal(unbatched.x_train, x)
    assert unbatched.y_train.tolist() == y.tolist() and len(unbatched.x_test) == 4
    batched = datasets.from_arrays(pairs.batch(6), x_test=pairs.batch(3).take(2))
    np.testing.assert_array_equal(batched.x_train, x)
    assert len(batched.x_test) == 6
    only_x = datasets.from_arrays(tf.data.Dataset.from_tensor_slices(x), test_fraction=0.5)
    assert only_x.task == "reconstruction" and len(only_x.x_train) == 10


def test_from_arrays_refuses_unbounded_tf_data_fast():
    import tensorflow as tf

    pairs = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2), np.float32), np.zeros(4, np.int64)))
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"infinite tf.data.Dataset \(a .repeat\(\) without count\?\)"):
        datasets.from_arrays(pairs.repeat())
    # Unknown cardinality (a filter hides it): stopped by max_samples instead of running forever.
    endless = pairs.repeat().filter(lambda x, y: True)
    with pytest.raises(DatasetError, match="yields more than max_samples=50 samples"):
        datasets.from_arrays(endless, max_samples=50)
    assert time.monotonic() - start < 30
    with pytest.raises(DatasetError, match="yields .x, y. pairs itself"):
        datasets.from_arrays(pairs, np.zeros(4))
    with pytest.raises(DatasetError, match="empty tf.data.Dataset"):
        datasets.from_arrays(pairs.take(0))


# --- public datasets, offline ------------------------------------------------------------------------------


def _fake_mnist(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "mnist.npz",
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def test_mnist_reads_the_keras_cache(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "datasets")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ds = datasets.load("mnist", download=False)
    assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (10, 784) and not ds.synthetic
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    with np.load(tmp_path / "datasets" / "mnist.npz") as raw:
        np.testing.assert_array_equal(ds.y_test, raw["y_test"].astype(np.int32))
    images = public.mnist(n_train=12, cache_dir=tmp_path, download=False, flat=False)
    assert images.x_train.shape == (12, 28, 28, 1) and images.input_shape == (28, 28, 1)


def test_mnist_without_a_copy_fails_fast_with_the_fix(tmp_path):
    start = time.monotonic()
    with pytest.raises(DatasetError) as info:
        datasets.load("mnist", cache_dir=tmp_path, download=False)
    text = str(info.value)
    assert "dataset 'mnist'" in text and str(tmp_path / "datasets" / "mnist.npz") in text
    assert "'digits'" in text and "KERAS_HOME" in text
    assert time.monotonic() - start < 5


def test_mnist_corrupt_copy_is_reported(tmp_path):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="is not a valid mnist.npz"):
        public.mnist(cache_dir=tmp_path, download=False)


def test_cifar10_reads_the_keras_cache(tmp_path):
    folder = tmp_path / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        content = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 3, 9, 1]}
        (folder / batch).write_bytes(pickle.dumps(content))
    ds = public.cifar10(cache_dir=tmp_path, download=False)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.y_test.tolist() == [0, 3, 9, 1] and ds.num_classes == 10
    # channels-first rows become channels-last pixels: red plane first in the CIFAR layout
    raw = pickle.loads((folder / "test_batch").read_bytes())[b"data"][0]
    np.testing.assert_allclose(ds.x_test[0, 0, 0, :2], [raw[0] / 255, raw[1024] / 255], rtol=1e-6)
    with pytest.raises(DatasetError, match=r"dataset 'cifar10': no copy in .* and download=False"):
        public.cifar10(cache_dir=tmp_path / "empty", download=False)


def test_speech_commands_without_tfds_names_the_fix():
    pytest.importorskip("tensorflow")
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="needs the tensorflow-datasets package.*'keywords'"):
            datasets.load("speech_commands")
    else:  # installed: no local copy and download=False must still fail with the fix, not hang
        with pytest.raises(DatasetError, match="'speech_commands' cannot be loaded"):
            public.speech_commands(data_dir="/nonexistent-tfds", download=False)


def test_mfcc_features_have_the_mlperf_kws_shape():
    t = np.arange(16000) / 16000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    features = public.mfcc_features([tone, tone[:8000]])  # the short clip is zero-padded
    assert features.shape == (2, 49, 10, 1) and features.dtype == np.float32
    np.testing.assert_allclose(features[1, :20], features[0, :20], rtol=1e-4, atol=1e-3)
    assert not np.allclose(features[1, -5:], features[0, -5:])


@pytest.mark.parametrize(
    "module", ["", ".dataset", "._arrays", ".synthetic", ".synthetic_images", ".public"]
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module("pytest_tinyml.datasets" + module), optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0 and result.attempted > 0
