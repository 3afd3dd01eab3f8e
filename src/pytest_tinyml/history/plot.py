"""Trend plot of the latency history: x is the run (one pytest session, shared by all its tests), one line per
test and place, p10-p90 bands, regressions marked and labelled without overlaps; one run is a bar chart.

Uses matplotlib's object API with the Agg canvas (no display, no global backend switch), imported inside
:func:`plot_history`.
"""

from __future__ import annotations

import os

from pytest_tinyml.errors import HistoryError
from pytest_tinyml.history.store import Record

LOG_SPAN = 20.0  # medians spanning more than this factor get a log latency axis
_STYLES = ("-", "--", ":", "-.")  # matplotlib cycles 10 colours: more series than that differ by line style


def runs_of(records: list[Record]) -> list[list[Record]]:
    """Records grouped by run (pytest session), oldest run first; a record without a run id is its own run.

    Example:
        >>> a = Record.new(test_id="t.py::a", kind="host", samples_us=[1.0], context={})
        >>> b = Record.new(test_id="t.py::b", kind="host", samples_us=[2.0], context={})
        >>> a.run = b.run = "r1"
        >>> [[r.test_id for r in run] for run in runs_of([b, a])]
        [['t.py::a', 't.py::b']]
    """
    grouped: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r.time):
        grouped.setdefault(record.run or f"record-{record.id}", []).append(record)
    return sorted(grouped.values(), key=lambda run: run[0].time)


def _run_label(index: int, run: list[Record]) -> str:
    commit = next(((r.git or {}).get("commit") for r in run if (r.git or {}).get("commit")), None)
    return f"{index + 1}\n{commit[:7]}" if commit else f"{index + 1}"


def _place_labels(axes, points: list[tuple[float, float, str]], renderer) -> list:
    """Annotate each (x, y, text) near its point, moving a label up until it overlaps no label placed before;
    returns the labels' boxes (display coordinates)."""
    placed = []
    low, high = axes.get_xlim()
    for x, y, text in sorted(points):
        # Labels of points in the right quarter go to their left, so they stay inside the axes.
        side, align = (-8, "right") if x > low + 0.75 * (high - low) else (8, "left")
        dy = 6.0
        while True:
            note = axes.annotate(text, (x, y), textcoords="offset points", xytext=(side, dy), color="red",
                                 fontsize=8, zorder=6, ha=align)
            box = note.get_window_extent(renderer).expanded(1.05, 1.2)  # the text alone, before any leader line
            if not any(box.overlaps(other) for other in placed) or dy > 200:
                placed.append(box)
                if dy > 6:  # moved away from its point: a thin leader line shows which point it belongs to
                    note.remove()
                    axes.annotate(text, (x, y), textcoords="offset points", xytext=(side, dy), color="red",
                                  fontsize=8, zorder=6, ha=align,
                                  arrowprops={"arrowstyle": "-", "color": "red", "lw": 0.6, "alpha": 0.6})
                break
            note.remove()
            dy += 10.0
    return placed


def _bars(figure, records: list[Record], title: str) -> None:
    """One run: a bar per test with its p10-p90 as an error bar."""
    axes = figure.add_subplot()
    records = sorted(records, key=lambda r: r.stats.median)
    stats = [r.stats for r in records]
    medians = [s.median for s in stats]
    errors = [[s.median - s.p10 for s in stats], [s.p90 - s.median for s in stats]]
    colors = ["red" if (r.verdict or {}).get("verdict") == "regression" else "C0" for r in records]
    axes.barh(range(len(records)), medians, xerr=errors, color=colors, alpha=0.8, capsize=3)
    axes.set_yticks(range(len(records)), [r.series for r in records], fontsize=8)
    positive = [m for m in medians if m > 0]
    if positive and max(positive) > LOG_SPAN * min(positive):
        axes.set_xscale("log")
    for i, median in enumerate(medians):
        axes.annotate(f"{median:.1f} us", (median, i), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel("median latency (us); error bar: p10 to p90")
    axes.set_title(f"{title} (1 run)")
    axes.grid(True, axis="x", alpha=0.3)


def _lines(figure, runs: list[list[Record]], title: str) -> None:
    """Several runs: x is the run index, one line per test and place."""
    axes = figure.add_subplot()
    series: dict[str, list[tuple[int, Record]]] = {}
    for index, run in enumerate(runs):
        for record in run:
            series.setdefault(record.series, []).append((index, record))
    regressions: list[tuple[float, float, str]] = []
    marked = set()
    for number, (name, points) in enumerate(series.items()):
        xs = [x for x, _ in points]
        stats = [r.stats for _, r in points]
        medians = [s.median for s in stats]
        (line,) = axes.plot(xs, medians, marker="o", markersize=4, label=name,
                            linestyle=_STYLES[(number // 10) % len(_STYLES)])
        axes.fill_between(xs, [s.p10 for s in stats], [s.p90 for s in stats], color=line.get_color(), alpha=0.15,
                          linewidth=0)
        for x, median, (_, record) in zip(xs, medians, points, strict=True):
            verdict = (record.verdict or {}).get("verdict")
            if verdict == "regression":
                axes.plot([x], [median], marker="X", markersize=11, color="red", zorder=5, linestyle="none",
                          label=None if "regression" in marked else "regression")
                marked.add("regression")
                change = (record.verdict or {}).get("change")
                if isinstance(change, (int, float)):
                    short = record.test_id.split("::")[-1]
                    regressions.append((x, median, f"{change:+.0%} {short}"))
            elif verdict == "faster":
                axes.plot([x], [median], marker="v", markersize=9, color="green", zorder=5, linestyle="none",
                          label=None if "faster" in marked else "faster")
                marked.add("faster")
            elif verdict in ("inconclusive", "no-baseline"):
                axes.plot([x], [median], marker="o", markersize=9, markerfacecolor="none", color="grey", zorder=4,
                          linestyle="none", label=None if "open" in marked else "inconclusive / no baseline")
                marked.add("open")
    medians = [r.stats.median for run in runs for r in run if r.stats.median > 0]
    if medians and max(medians) > LOG_SPAN * min(medians):
        axes.set_yscale("log")  # models from microseconds to tens of milliseconds: keep every line readable
    step = max(1, len(runs) // 12)
    ticks = list(range(0, len(runs), step))
    axes.set_xticks(ticks, [_run_label(i, runs[i]) for i in ticks], fontsize=8)
    axes.set_xlim(-0.5, len(runs) - 0.5)
    axes.set_title(title)
    axes.set_xlabel("run (pytest session, oldest first) and commit")
    axes.set_ylabel("median latency (us); band: p10 to p90")
    axes.grid(True, alpha=0.3)
    columns = 1 if max(len(s) for s in series) > 60 else 2
    handles, labels = axes.get_legend_handles_labels()
    markers = ("regression", "faster", "inconclusive / no baseline")
    order = sorted(range(len(labels)), key=lambda i: labels[i] in markers)  # the tests first, the markers last
    axes.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper center",
                bbox_to_anchor=(0.5, -0.18), ncol=columns, frameon=False)
    if regressions:
        figure.canvas.draw()  # final layout first, so label boxes are measured where they will be drawn
        _place_labels(axes, regressions, figure.canvas.get_renderer())


def plot_history(records: list[Record], path: str, *, title: str = "pytest-tinyml latency history") -> str:
    """Draw the latency history into a PNG; returns its path.

    Several runs: x is the run index (one pytest session, shared by every test in it; the commit below it),
    one line per test and place with its p10-p90 band, regressions as red crosses labelled with their change
    (labels never overlap), speed-ups as green triangles; the latency axis is logarithmic when medians span
    more than 20x. A single run is a bar chart of the medians with p10-p90 error bars.

    Example:
        >>> from pytest_tinyml.history import HistoryStore
        >>> plot_history(HistoryStore(".tinyml_history").records(), "latency-trend.png")  # doctest: +SKIP
        'latency-trend.png'
    """
    if not records:
        raise HistoryError(f"no latency records to plot into {path}: run the tests first "
                           "(the history is filled by tests that measure latency)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = runs_of(records)
    names = {r.series for r in records}
    if len(runs) == 1:
        figure = Figure(figsize=(10, 1.5 + 0.35 * len(names)), layout="constrained")
        FigureCanvasAgg(figure)
        _bars(figure, records, title)
    else:
        figure = Figure(figsize=(10, 5 + 0.18 * min(len(names), 40)), layout="constrained")
        FigureCanvasAgg(figure)
        _lines(figure, runs, title)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
