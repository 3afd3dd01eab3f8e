"""Loaders for the real public datasets: MNIST, CIFAR-10 (keras.datasets) and Speech Commands (tfds).

A loader first reads the copy Keras keeps in ``$KERAS_HOME/datasets`` (``~/.keras/datasets``), in the same
layout ``keras.datasets`` writes, so a machine without network uses a pre-downloaded copy. Only when no
copy is there, and ``download=True``, does it ask Keras to download, with a socket timeout so a blocked
network fails fast. Every failure is a :class:`DatasetError` naming the dataset and the fix.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
from pathlib import Path

import numpy as np

from pytest_tinyml.datasets.dataset import Dataset
from pytest_tinyml.errors import DatasetError

DOWNLOAD_TIMEOUT_S = 20.0


def keras_datasets_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where keras.datasets caches files: ``cache_dir`` or ``$KERAS_HOME`` or ``~/.keras``, plus ``datasets``.

    Example:
        >>> keras_datasets_dir("/tmp/k").as_posix()
        '/tmp/k/datasets'
    """
    base = cache_dir or os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(os.path.expanduser(str(base))) / "datasets"


def _fix(name: str, where: Path, what: str) -> str:
    return (
        f"To use {name!r} offline, put {what} in {where} (run keras.datasets.{name}.load_data() once on a "
        "machine with network and copy ~/.keras/datasets over, or set KERAS_HOME), or train on the offline "
        "'digits' dataset or a synthetic one (pytest_tinyml.datasets.names())."
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(name: str, where: Path, what: str):
    import keras

    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return getattr(keras.datasets, name).load_data()
    except Exception as exc:  # keras wraps URL errors in a bare Exception
        raise DatasetError(
            f"dataset {name!r}: no local copy and the download failed ({type(exc).__name__}: {exc}). "
            + _fix(name, where, what)
        ) from None


def _subset(x, y, n, seed):
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DatasetError(f"n_train / n_test must be positive integers or None, got {n!r}")
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[keep], y[keep]


def _finish(name, arrays, n_train, n_test, seed, input_shape, num_classes, description) -> Dataset:
    (x_train, y_train), (x_test, y_test) = arrays
    x_train, y_train = _subset(x_train, y_train, n_train, seed)
    x_test, y_test = _subset(x_test, y_test, n_test, seed + 1)
    scale = np.float32(1.0 / 255.0)
    return Dataset(
        name=name,
        x_train=(x_train.astype(np.float32) * scale).reshape((-1, *input_shape)),
        y_train=np.asarray(y_train).reshape(-1).astype(np.int32),
        x_test=(x_test.astype(np.float32) * scale).reshape((-1, *input_shape)),
        y_test=np.asarray(y_test).reshape(-1).astype(np.int32),
        input_shape=input_shape,
        num_classes=num_classes,
        task="classification",
        synthetic=False,
        description=description,
    )


def mnist(
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    *,
    flat: bool = True,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """MNIST digits, pixels scaled to [0, 1]: (784,) when ``flat`` (the ``mlp`` default) else (28, 28, 1).

    ``n_train`` / ``n_test`` keep a seeded random subset.

    Example:
        >>> ds = mnist(n_train=1000, n_test=200)   # doctest: +SKIP
    """
    where = keras_datasets_dir(cache_dir)
    path = where / "mnist.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(
                f"dataset 'mnist': {path} is not a valid mnist.npz ({exc}); delete it and download again. "
                + _fix("mnist", where, "mnist.npz")
            ) from None
    elif download:
        arrays = _download("mnist", where, "mnist.npz")
    else:
        raise DatasetError(
            f"dataset 'mnist': {path} does not exist and download=False. " + _fix("mnist", where, "mnist.npz")
        )
    if arrays[0][0].shape[1:] != (28, 28):
        raise DatasetError(
            f"dataset 'mnist': {path} holds images of shape {arrays[0][0].shape[1:]}, not (28, 28)"
        )
    shape = (784,) if flat else (28, 28, 1)
    return _finish("mnist", arrays, n_train, n_test, seed, shape, 10, "MNIST handwritten digits (real data).")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The CIFAR python batches are pickles, which is how keras.datasets reads them too.
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(batch[b"labels"], dtype=np.int32)


def cifar10(
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """CIFAR-10, (32, 32, 3) pixels scaled to [0, 1], 10 classes (the ``ic_resnet8`` benchmark data).

    Example:
        >>> ds = cifar10(n_train=1000, n_test=200)   # doctest: +SKIP
    """
    where = keras_datasets_dir(cache_dir)
    what = "the extracted cifar-10-batches-py folder (data_batch_1..5, test_batch)"
    candidates = [where / "cifar-10-batches-py-target" / "cifar-10-batches-py", where / "cifar-10-batches-py"]
    folder = next((c for c in candidates if (c / "test_batch").is_file()), None)
    if folder is not None:
        try:
            train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
            arrays = (
                (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
                _read_cifar_batch(folder / "test_batch"),
            )
        except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise DatasetError(
                f"dataset 'cifar10': cannot read {folder} ({type(exc).__name__}: {exc}); delete it and "
                "download again. " + _fix("cifar10", where, what)
            ) from None
    elif download:
        arrays = _download("cifar10", where, what)
    else:
        raise DatasetError(
            f"dataset 'cifar10': no copy in {where} and download=False. " + _fix("cifar10", where, what)
        )
    return _finish("cifar10", arrays, n_train, n_test, seed, (32, 32, 3), 10, "CIFAR-10 images (real data).")


# tfds's label order for speech_commands (10 words, then silence and unknown), as MLPerf Tiny KWS uses.
SPEECH_COMMANDS_LABELS = (
    "down",
    "go",
    "left",
    "no",
    "off",
    "on",
    "right",
    "stop",
    "up",
    "yes",
    "_silence_",
    "_unknown_",
)


def mfcc_features(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """MLPerf Tiny KWS features: 1 s of audio -> (49, 10, 1) MFCCs per clip (float32).

    As mlcommons/tiny's ``get_dataset.py`` (mfcc): |STFT| with 30 ms windows every 20 ms, 40 mel bins from
    20 Hz to 4 kHz, log(x + 1e-6), first 10 MFCCs. ``audio`` is an array (clips, samples) or a list of 1-D
    clips, int16 or float in [-1, 1]; each clip is zero-padded or cut to one second.

    Example:
        >>> mfcc_features(np.zeros((2, 16000), np.int16)).shape   # doctest: +SKIP
        (2, 49, 10, 1)
    """
    import tensorflow as tf

    samples = sample_rate  # one second
    clips = [np.asarray(clip) for clip in audio]
    if not clips or any(clip.ndim != 1 for clip in clips):
        raise DatasetError("mfcc_features: audio must be a non-empty sequence of 1-D clips (clips, samples)")
    audio = np.stack([np.pad(clip, (0, max(0, samples - len(clip))))[:samples] for clip in clips])
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / 32768.0
    audio = audio.astype(np.float32)
    window, stride = int(sample_rate * 0.030), int(sample_rate * 0.020)
    stft = tf.signal.stft(audio, frame_length=window, frame_step=stride)
    spectrogram = tf.abs(stft)
    mel = tf.signal.linear_to_mel_weight_matrix(40, spectrogram.shape[-1], sample_rate, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(spectrogram, mel, 1) + 1e-6)
    mfccs = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10]
    return mfccs.numpy()[..., None].astype(np.float32)


def speech_commands(
    n_train: int | None = 2000,
    n_test: int | None = 500,
    seed: int = 0,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Dataset:
    """Google Speech Commands v2 through tensorflow-datasets, as MLPerf KWS features (49, 10, 1), 12 classes.

    Takes ``n_train`` / ``n_test`` clips through a seeded shuffle (None: all, about 86k / 4.9k) and computes
    :func:`mfcc_features`. tfds keeps its copy in ``data_dir`` (default ``~/tensorflow_datasets``).

    Example:
        >>> ds = speech_commands(n_train=500, n_test=100)   # doctest: +SKIP
    """
    fix = (
        "Install tensorflow-datasets (pip install tensorflow-datasets), prepare it once on a machine with "
        "network (`tfds build speech_commands`, then copy ~/tensorflow_datasets or pass data_dir=), or pass "
        "download=True; offline, use the synthetic 'keywords' dataset (same 49x10x1 input, 12 classes)."
    )
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetError(
            "dataset 'speech_commands' needs the tensorflow-datasets package. " + fix
        ) from None
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            train, test = tfds.load(
                "speech_commands",
                split=["train", "test"],
                as_supervised=True,
                data_dir=data_dir,
                download=download,
            )
    except Exception as exc:  # tfds raises AssertionError, DatasetNotFoundError, network errors...
        raise DatasetError(
            f"dataset 'speech_commands' cannot be loaded ({type(exc).__name__}: {exc}). " + fix
        ) from None

    def features(split, n):
        # A seeded shuffle buffer, so a small n still draws from many speakers and all classes.
        split = split.shuffle(10_000, seed=seed)
        split = split if n is None else split.take(n)
        clips, labels = [], []
        for audio, label in split.as_numpy_iterator():
            clips.append(audio)
            labels.append(label)
        return mfcc_features(np.stack(clips)), np.asarray(labels, np.int32)

    x_train, y_train = features(train, n_train)
    x_test, y_test = features(test, n_test)
    return Dataset(
        name="speech_commands",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=(49, 10, 1),
        num_classes=12,
        task="classification",
        synthetic=False,
        description="Google Speech Commands v2 (real data), MLPerf Tiny KWS MFCC features; labels "
        + ", ".join(SPEECH_COMMANDS_LABELS),
    )
