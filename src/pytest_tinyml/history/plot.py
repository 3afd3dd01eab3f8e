"""Trend plot of the latency history: one line per test and board, regressions marked.

Uses matplotlib's object API with the Agg canvas (no display, no global backend switch), imported inside
:func:`plot_history`.
"""

from __future__ import annotations

import datetime
import os

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history.store import Record


def _when(record: Record) -> datetime.datetime:
    return datetime.datetime.fromisoformat(record.time)


def plot_history(records: list[Record], path: str, *, title: str = "pytest-tinyml latency history") -> str:
    """Draw the median latency of every run, one line per test and board, into a PNG; returns its path.

    Regressions are marked with a red cross, runs that were saved as a baseline because none existed with
    a hollow square; the shaded band spans median to p90. The latency axis is logarithmic when the medians
    span more than 20x.

    Example:
        >>> from pytest_tinyml.history import HistoryStore
        >>> plot_history(HistoryStore(".tinyml_history").records(), "latency-trend.png")  # doctest: +SKIP
        'latency-trend.png'
    """
    if not records:
        raise HistoryError(f"no latency records to plot into {path}: run the tests first "
                           "(the history is filled by tests that measure latency)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    series: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r.time):
        series.setdefault(record.series, []).append(record)
    figure = Figure(figsize=(10, 4 + 0.25 * min(len(series), 20)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    marked = False
    styles = ("-", "--", ":", "-.")  # matplotlib cycles 10 colours: more series than that differ by line style
    for index, (name, runs) in enumerate(series.items()):
        times = [_when(r) for r in runs]
        stats = [r.stats for r in runs]
        medians = [s.median for s in stats]
        (line,) = axes.plot(times, medians, marker="o", markersize=4, label=name,
                            linestyle=styles[(index // 10) % len(styles)])
        axes.fill_between(times, medians, [s.p90 for s in stats], color=line.get_color(), alpha=0.15, linewidth=0)
        for when, median, record in zip(times, medians, runs, strict=True):
            verdict = (record.verdict or {}).get("verdict")
            if verdict == "regression":
                change = (record.verdict or {}).get("change")
                axes.plot([when], [median], marker="X", markersize=12, color="red", zorder=5,
                          label=None if marked else "regression")
                marked = True
                if isinstance(change, (int, float)):
                    axes.annotate(f"{change:+.0%}", (when, median), textcoords="offset points", xytext=(6, 6),
                                  color="red", fontsize=8)
            elif verdict == "no-baseline":
                axes.plot([when], [median], marker="s", markersize=9, markerfacecolor="none",
                          color=line.get_color(), zorder=4)
    medians = [r.stats.median for r in records if r.stats.median > 0]
    if medians and max(medians) > 20 * min(medians):
        axes.set_yscale("log")  # models from microseconds to tens of milliseconds: keep every line readable
    axes.set_title(title)
    axes.set_xlabel("run (UTC)")
    axes.set_ylabel("median latency (us); band: median to p90")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
