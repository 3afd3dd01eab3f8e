"""How a failed tinyml assertion reads: a title, context lines, a table and what to try next.

Example:
    >>> print("\\n".join(table(["metric", "value"], [["flash", "24.5 KB"]])))
      metric  value
      ------  -------
      flash   24.5 KB
"""

from __future__ import annotations

import math

from pytest_tinyml.errors import TinyMLAssertionError

HINT_CALIBRATION = "more calibration samples (representative=x_train[:500], drawn like the test data)"
HINT_QAT = "try QAT: pytest_tinyml.optimize.qat (quantization-aware training)"
HINT_PER_CHANNEL = "per-channel weight quantization (the int8 recipe's default) instead of per-tensor"
HINT_SCALE = "check that x is scaled like the representative data (e.g. 0..1 vs 0..255)"


def fmt(value, spec: str = "{:.4f}") -> str:
    """A figure as table text: "-" for None, inf spelled out."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return spec.format(value)


def table(headings: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, a dashed rule under the headings."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True)).rstrip()]
    lines.append("  " + "  ".join("-" * w for w in widths))
    lines.extend("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return lines


def fail(title: str, context: list[str], headings: list[str], rows: list[list[str]], hints: list[str]):
    """Raise TinyMLAssertionError with the report as its message."""
    __tracebackhide__ = True
    lines = [title, *context, "", *table(headings, rows)]
    if hints:
        lines += ["", "what to try:"] + [f"  - {hint}" for hint in hints]
    raise TinyMLAssertionError("\n".join(lines))


def quantized_hints(candidate) -> list[str]:
    """What to try when a quantized candidate scores below its float reference."""
    recipe = candidate.recipe.lower()
    hints = [HINT_CALIBRATION]
    if "int8" in recipe or "int16" in recipe or candidate.output_quant is not None:
        hints += [HINT_QAT, HINT_PER_CHANNEL]
    if candidate.kind == "keras":
        hints = ["the candidate is a float Keras model: compare the same weights, or retrain with the same seed"]
    return hints + [HINT_SCALE]
