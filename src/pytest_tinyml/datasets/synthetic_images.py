"""Seeded synthetic image datasets shaped like the MLPerf Tiny vision benchmarks (CIFAR-10, Visual Wake Words).

Not real photographs: procedural patterns a small CNN learns in a few epochs. Pixels are float32 in [0, 1].
"""

from __future__ import annotations

import numpy as np

from pytest_tinyml.datasets.dataset import Dataset
from pytest_tinyml.datasets.synthetic import balanced_labels, check_sizes, split_dataset


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (n, 3))


def images32(n_train: int = 500, n_test: int = 200, seed: int = 0) -> Dataset:
    """32x32x3 gratings in 10 classes: 5 orientations (0-144 degrees) x 2 spatial frequencies.

    Phase, colours, exact frequency and noise are random per sample, so the class lives in orientation
    and frequency only: a conv net has to learn oriented filters, as on real images.

    Example:
        >>> images32(n_train=20, n_test=10).x_train.shape
        (20, 32, 32, 3)
    """
    n_train, n_test = check_sizes("images32", n_train, n_test)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = balanced_labels(rng, n, 10)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    angle = np.deg2rad((y % 5) * 36.0 + rng.uniform(-6, 6, n))
    cycles = np.where(y < 5, rng.uniform(1.5, 2.5, n), rng.uniform(4.5, 6.0, n))
    phase = rng.uniform(0, 2 * np.pi, n)
    along = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * cycles[:, None, None] * along + phase[:, None, None])
    fg, bg = _random_colours(rng, n), _random_colours(rng, n)
    x = wave[..., None] * fg[:, None, None, :] + (1.0 - wave[..., None]) * bg[:, None, None, :]
    x = np.clip(x + rng.normal(0.0, 0.08, x.shape), 0.0, 1.0)
    description = (
        "SYNTHETIC 32x32 RGB images (not CIFAR-10): sinusoidal gratings, class = orientation (5) x spatial "
        "frequency (2); random phase, colours and noise."
    )
    return split_dataset(
        "images32", x.astype(np.float32), y, n_train, (32, 32, 3), 10, "classification", description
    )


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def vww96(n_train: int = 200, n_test: int = 60, seed: int = 0) -> Dataset:
    """96x96x3 scenes, 2 classes: 0 = no person, 1 = person (a head-and-body silhouette).

    Every scene has a light colour gradient, 1-3 distractor rectangles and 0-2 dark discs; class 1 adds a
    dark figure (round head over an upright ellipse body) at a random place and scale.

    Example:
        >>> vww96(n_train=4, n_test=2).input_shape
        (96, 96, 3)
    """
    n_train, n_test = check_sizes("vww96", n_train, n_test)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = balanced_labels(rng, n, 2)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    x = np.empty((n, 96, 96, 3))
    for i, label in enumerate(y):
        c0, c1 = rng.uniform(0.45, 1.0, (2, 3))  # a lit scene: the figure is a dark silhouette against it
        direction = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(direction) * xx + np.sin(direction) * yy) / 192.0 + 0.5
        image = ramp[..., None] * c0 + (1.0 - ramp[..., None]) * c1
        for _ in range(rng.integers(1, 4)):
            h, w = rng.integers(8, 40, 2)
            top, left = rng.integers(0, 96 - h), rng.integers(0, 96 - w)
            image[top : top + h, left : left + w] = rng.uniform(0.3, 1.0, 3)
        for _ in range(rng.integers(0, 3)):  # dark round distractors: a head alone is not a person
            r = rng.uniform(3.0, 8.0)
            image[_ellipse(yy, xx, rng.uniform(r, 96 - r), rng.uniform(r, 96 - r), r, r)] = rng.uniform(
                0, 0.25, 3
            )
        if label:
            head = rng.uniform(5.0, 9.0)
            cx = rng.uniform(2 * head, 96 - 2 * head)
            cy = rng.uniform(head, 96 - 7 * head)
            body = _ellipse(yy, xx, cy + 4.2 * head, cx, 3.2 * head, 1.6 * head)
            mask = _ellipse(yy, xx, cy, cx, head, head) | body
            image[mask] = rng.uniform(0.0, 0.25, 3)
        x[i] = image
    x = np.clip(x + rng.normal(0.0, 0.04, x.shape), 0.0, 1.0)
    description = (
        "SYNTHETIC 96x96 RGB scenes (not COCO / Visual Wake Words): light gradient background with distractor "
        "rectangles and dark discs; class 1 adds a dark head-and-body silhouette."
    )
    return split_dataset("vww96", x.astype(np.float32), y, n_train, (96, 96, 3), 2, "classification", description)
