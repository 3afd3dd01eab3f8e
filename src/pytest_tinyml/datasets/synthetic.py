"""Seeded synthetic datasets, one per task of the zoo, small enough to train on in seconds.

They are NOT real data: each is a generator of learnable patterns with the shapes of a real benchmark
(every ``description`` says so). Class templates come from a fixed seed, so all seeds share the same
classes; ``seed`` only changes which samples are drawn. Train and test samples are drawn from one stream,
classes balanced and shuffled.
"""

from __future__ import annotations

import numpy as np

from pytest_tinyml.datasets.dataset import Dataset
from pytest_tinyml.errors import DatasetError

_TEMPLATE_SEED = 20211  # fixed: class definitions never depend on the user's seed

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_")
GESTURES = ("idle", "shake", "circle", "punch")


def check_sizes(name: str, n_train: object, n_test: object, minimum: int = 2) -> tuple[int, int]:
    """``(n_train, n_test)`` as ints; ``DatasetError`` naming the dataset unless both are integers >= ``minimum``."""
    for arg, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise DatasetError(f"dataset {name!r}: {arg} must be an integer >= {minimum}, got {value!r}")
    return int(n_train), int(n_test)


def balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """``n`` labels, each class equally often (up to one), in a seeded random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int32)


def split_dataset(name, x, y, n_train, input_shape, num_classes, task, description) -> Dataset:
    """A synthetic ``Dataset``: the first ``n_train`` samples train, the rest test."""
    return Dataset(
        name=name,
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        task=task,
        synthetic=True,
        description=description,
    )


def _blobs(rng: np.random.Generator, count: int, frames: int, coefficients: int) -> np.ndarray:
    """A smooth (frames, coefficients) pattern: a sum of ``count`` signed Gaussian blobs."""
    t = np.arange(frames)[:, None]
    c = np.arange(coefficients)[None, :]
    pattern = np.zeros((frames, coefficients))
    for _ in range(count):
        t0, c0 = rng.uniform(8, frames - 8), rng.uniform(0, coefficients - 1)
        wt, wc = rng.uniform(3, 8), rng.uniform(0.8, 2.5)
        pattern += (
            rng.choice([-1.0, 1.0])
            * rng.uniform(0.8, 1.6)
            * np.exp(-(((t - t0) / wt) ** 2) - ((c - c0) / wc) ** 2)
        )
    return pattern


def _shift_time(pattern: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(pattern)
    if shift >= 0:
        out[shift:] = pattern[: len(pattern) - shift]
    else:
        out[:shift] = pattern[-shift:]
    return out


def keywords(n_train: int = 600, n_test: int = 240, seed: int = 0, *, noise: float = 0.45) -> Dataset:
    """Keyword-like MFCC patterns shaped like the MLPerf KWS input: (49, 10, 1), 12 classes.

    Each word is a fixed pattern of Gaussian blobs in (frame, coefficient) space, shifted in time by up to
    +-6 frames, scaled by 0.7-1.3 and buried in Gaussian noise; ``_silence_`` is noise alone and
    ``_unknown_`` a fresh random pattern per sample.

    Example:
        >>> keywords(n_train=24, n_test=12).x_train.shape
        (24, 49, 10, 1)
    """
    return _keywords("keywords", n_train, n_test, seed, noise, (49, 10, 1))


def keywords_seq(n_train: int = 600, n_test: int = 240, seed: int = 0, *, noise: float = 0.45) -> Dataset:
    """:func:`keywords` as sequences of 49 frames x 10 coefficients, for Conv1D models (``audio_conv1d``).

    Example:
        >>> keywords_seq(n_train=24, n_test=12).input_shape
        (49, 10)
    """
    return _keywords("keywords_seq", n_train, n_test, seed, noise, (49, 10))


def _keywords(name, n_train, n_test, seed, noise, input_shape) -> Dataset:
    n_train, n_test = check_sizes(name, n_train, n_test)
    frames, coefficients = 49, 10
    words = len(KEYWORDS) - 2
    template_rng = np.random.default_rng(_TEMPLATE_SEED)
    templates = [_blobs(template_rng, 3, frames, coefficients) for _ in range(words)]
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = balanced_labels(rng, n, len(KEYWORDS))
    x = np.empty((n, frames, coefficients))
    for i, label in enumerate(y):
        if label < words:
            pattern = templates[label]
        elif KEYWORDS[label] == "_silence_":
            pattern = np.zeros((frames, coefficients))
        else:
            pattern = _blobs(rng, 3, frames, coefficients)
        pattern = _shift_time(pattern, int(rng.integers(-6, 7))) * rng.uniform(0.7, 1.3)
        x[i] = pattern + rng.normal(0.0, noise, pattern.shape)
    description = (
        "SYNTHETIC keyword-spotting data (not speech): 49x10 MFCC-like patterns, one fixed Gaussian-blob "
        f"pattern per word for {', '.join(KEYWORDS[:words])}, plus _silence_ (noise) and _unknown_ (random "
        "patterns); random time shift, gain and noise."
    )
    return split_dataset(
        name,
        x.reshape((n, *input_shape)).astype(np.float32),
        y,
        n_train,
        input_shape,
        12,
        "classification",
        description,
    )


def gestures(n_train: int = 400, n_test: int = 160, seed: int = 0, *, time_steps: int = 50) -> Dataset:
    """Accelerometer gestures (x, y, z in g, 25 Hz): idle, shake, circle, punch. Input (time_steps, 3).

    Example:
        >>> gestures(n_train=8, n_test=4).input_shape
        (50, 3)
    """
    n_train, n_test = check_sizes("gestures", n_train, n_test)
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 16:
        raise DatasetError(f"dataset 'gestures': time_steps must be an integer >= 16, got {time_steps!r}")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = balanced_labels(rng, n, len(GESTURES))
    t = np.arange(time_steps) / 25.0
    x = np.empty((n, time_steps, 3))
    for i, label in enumerate(y):
        gravity = np.array([rng.normal(0, 0.15), rng.normal(0, 0.15), 1.0])
        signal = np.tile(gravity / np.linalg.norm(gravity), (time_steps, 1))
        phase = rng.uniform(0, 2 * np.pi)
        if GESTURES[label] == "shake":
            signal[:, 0] += rng.uniform(0.8, 1.5) * np.sin(2 * np.pi * rng.uniform(3, 5) * t + phase)
        elif GESTURES[label] == "circle":
            amplitude, freq = rng.uniform(0.5, 1.0), rng.uniform(0.6, 1.2)
            signal[:, 0] += amplitude * np.sin(2 * np.pi * freq * t + phase)
            signal[:, 1] += amplitude * np.cos(2 * np.pi * freq * t + phase)
        elif GESTURES[label] == "punch":
            t0, width = rng.uniform(0.2, t[-1] - 0.4), 0.08
            pulse = np.exp(-(((t - t0) / width) ** 2)) - 0.6 * np.exp(-(((t - t0 - 0.2) / width) ** 2))
            signal[:, 0] += rng.uniform(1.5, 3.0) * pulse
        x[i] = signal + rng.normal(0.0, 0.15, signal.shape)
    description = (
        f"SYNTHETIC IMU gestures (not recorded): {time_steps} steps of 3-axis acceleration at 25 Hz, classes "
        f"{', '.join(GESTURES)}; random phase, frequency, amplitude, tilt and noise."
    )
    return split_dataset(
        "gestures",
        x.astype(np.float32),
        y,
        n_train,
        (time_steps, 3),
        len(GESTURES),
        "classification",
        description,
    )


def _machine_spectrum(rng: np.random.Generator, frames: int, bins: int, fundamental: float) -> np.ndarray:
    """(frames, bins) log-mel-like spectrum of a humming machine scaled to about [0, 1]."""
    b = np.arange(bins)
    floor = 0.35 * np.exp(-b / 60.0) + 0.05
    harmonics = np.zeros(bins)
    for k in range(1, 8):
        centre = k * fundamental
        if centre < bins:
            harmonics += rng.uniform(0.25, 0.45) / k**0.5 * np.exp(-(((b - centre) / 1.5) ** 2))
    frame_gain = 1.0 + rng.normal(0.0, 0.03, (frames, 1))
    return (floor + harmonics)[None, :] * frame_gain


def anomaly(
    n_train: int = 400, n_test: int = 200, seed: int = 0, *, anomaly_fraction: float = 0.5
) -> Dataset:
    """Machine-sound spectra shaped like the MLPerf AD input (640 = 5 frames x 128 bins).

    The train split holds normal samples only (``y_train`` all 0); the test split mixes normal (0) and
    anomalous (1) samples. Normal: a harmonic hum whose fundamental varies by +-2%. Anomalous: the same
    hum with an extra non-harmonic tone, a broadband burst, or a fundamental off by 5-10%.

    Example:
        >>> ds = anomaly(n_train=10, n_test=10)
        >>> sorted(set(ds.y_test.tolist()))
        [0, 1]
    """
    n_train, n_test = check_sizes("anomaly", n_train, n_test)
    if isinstance(anomaly_fraction, bool) or not 0.0 < float(anomaly_fraction) < 1.0:
        raise DatasetError(f"dataset 'anomaly': anomaly_fraction must be in (0, 1), got {anomaly_fraction!r}")
    frames, bins, base = 5, 128, 9.0
    rng = np.random.default_rng(seed)
    n_anomalous = max(1, round(n_test * anomaly_fraction))
    y_test = rng.permutation(np.r_[np.zeros(n_test - n_anomalous), np.ones(n_anomalous)]).astype(np.int32)
    labels = np.r_[np.zeros(n_train, np.int32), y_test]
    x = np.empty((n_train + n_test, frames, bins))
    b = np.arange(bins)
    for i, label in enumerate(labels):
        if not label:
            x[i] = _machine_spectrum(rng, frames, bins, base * rng.uniform(0.98, 1.02))
            continue
        kind = rng.integers(3)
        if kind == 2:  # speed fault: the whole harmonic series moves
            shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.10)
            x[i] = _machine_spectrum(rng, frames, bins, base * (1.0 + shift))
            continue
        x[i] = _machine_spectrum(rng, frames, bins, base * rng.uniform(0.98, 1.02))
        if kind == 0:  # a bearing whine between harmonics
            centre = (rng.integers(1, 12) + rng.uniform(0.35, 0.65)) * base
            x[i] += rng.uniform(0.08, 0.25) * np.exp(-(((b - centre) / 1.5) ** 2))[None, :]
        else:  # a knock: broadband energy in one or two frames
            hit = rng.choice(frames, size=rng.integers(1, 3), replace=False)
            x[i, hit] += rng.uniform(0.04, 0.12) * np.exp(-b / rng.uniform(40, 120))[None, :]
    x += rng.normal(0.0, 0.03, x.shape)
    description = (
        "SYNTHETIC machine-sound spectra (not ToyCar recordings): 5 frames x 128 log-mel-like bins "
        "flattened to 640; train = normal only; test labels 0 normal / 1 anomalous (extra tone, knock or "
        "speed change)."
    )
    return Dataset(
        name="anomaly",
        x_train=x[:n_train].reshape(n_train, -1).astype(np.float32),
        y_train=labels[:n_train],
        x_test=x[n_train:].reshape(n_test, -1).astype(np.float32),
        y_test=y_test,
        input_shape=(frames * bins,),
        num_classes=None,
        task="anomaly",
        synthetic=True,
        description=description,
    )
