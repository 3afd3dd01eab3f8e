"""Per-class accuracy for the accuracy-drop failure: the classes that moved most and the new confusions."""

from __future__ import annotations

import numpy as np

from pytest_tinyml import metrics

__all__ = ["per_class_lines"]


def per_class_lines(labels, ref_out, cand_out, *, top: int = 5) -> list:
    """Per-class accuracy of both sides for the classes that moved most, and the confusions that grew.

    Example:
        >>> import numpy as np
        >>> lines = per_class_lines([0, 1, 1], np.eye(2)[[0, 1, 1]], np.eye(2)[[0, 0, 1]])
        >>> lines[0], lines[-1]
        ('  per class (the 1 that moved most):', '  newly confused: 1 -> 0 (1x)')
    """
    from pytest_tinyml._failure import table

    y = np.asarray(labels).reshape(-1).astype(np.int64)
    ref_top = metrics.predicted_classes(np.asarray(ref_out), "reference")
    cand_top = metrics.predicted_classes(np.asarray(cand_out), "candidate")
    classes = np.unique(y)
    stats = []
    for c in classes:
        mask = y == c
        r, k = float(np.mean(ref_top[mask] == c)), float(np.mean(cand_top[mask] == c))
        stats.append((k - r, int(c), r, k, int(mask.sum())))
    stats.sort()
    moved = [s for s in stats if s[0] != 0][:top] or stats[:top]
    rows = [[str(c), str(n), f"{r:.3f}", f"{k:.3f}", f"{d:+.3f}"] for d, c, r, k, n in moved]
    lines = [f"  per class (the {len(rows)} that moved most):",
             *table(["class", "samples", "reference", "candidate", "change"], rows)]
    confusions = {}
    for truth, a, b in zip(y, ref_top, cand_top, strict=True):
        if a == truth and b != truth:
            confusions[(int(truth), int(b))] = confusions.get((int(truth), int(b)), 0) + 1
    if confusions:
        worst = sorted(confusions.items(), key=lambda kv: -kv[1])[:3]
        lines.append("  newly confused: " + ", ".join(f"{t} -> {p} ({n}x)" for (t, p), n in worst))
    return lines
