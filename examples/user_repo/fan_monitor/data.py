"""Accelerometer windows of a cooling fan, four conditions.

Stands in for the team's recordings: 128 samples of 3-axis acceleration at 1 kHz per window. Each condition
has its own signature (imbalance: a strong 1x rotation tone; bearing wear: high-frequency bursts; blocked
intake: a slower rotation with a broadband rise), plus sensor noise.
"""

from __future__ import annotations

import numpy as np

CONDITIONS = ("normal", "imbalance", "bearing_wear", "blocked_intake")
WINDOW = 128
RATE_HZ = 1000.0


def _window(condition: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(WINDOW) / RATE_HZ
    rpm_hz = rng.uniform(45, 55) if condition != 3 else rng.uniform(30, 38)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    base = 0.3 * np.sin(2 * np.pi * rpm_hz * t[:, None] + phase)
    if condition == 1:
        base *= 3.0
    if condition == 2:
        bursts = (rng.random(WINDOW) < 0.08)[:, None] * rng.normal(0, 1.2, size=(WINDOW, 3))
        base += bursts * np.sin(2 * np.pi * 320 * t[:, None])
    if condition == 3:
        base += rng.normal(0, 0.25, size=(WINDOW, 3))
    return (base + rng.normal(0, 0.08, size=(WINDOW, 3))).astype("float32")


def load_windows(n_per_condition: int = 150, seed: int = 7):
    """Windows ``(n, 128, 3)`` and labels ``(n,)``, shuffled.

    Example:
        >>> x, y = load_windows(10)
        >>> x.shape
        (40, 128, 3)
    """
    rng = np.random.default_rng(seed)
    x = np.stack([_window(c, rng) for c in range(len(CONDITIONS)) for _ in range(n_per_condition)])
    y = np.repeat(np.arange(len(CONDITIONS)), n_per_condition).astype("int32")
    order = rng.permutation(len(y))
    return x[order], y[order]
