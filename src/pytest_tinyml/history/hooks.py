"""pytest side of the latency history: compare after each test, fail regressions, summarize, export.

Flow per test: :func:`pytest_tinyml.history.observe` appends records to the item; when the test body
returns, :meth:`HistoryPlugin.pytest_runtest_call` compares each with its baseline, stores it, saves
baselines, records figures (JUnit, JSON, xdist) and warns about missing baselines -- in the call phase, so
warnings belong to the test. :meth:`HistoryPlugin.pytest_runtest_makereport` then turns a passing report
into a failure when a regression was found. The controller gathers the figures for the terminal section
and the OpenMetrics file. Nothing heavy is imported until a test observes a latency.
"""

from __future__ import annotations

import os
import warnings

import pytest

from pytest_tinyml import options
from pytest_tinyml import report as tinyml_report
from pytest_tinyml.errors import ConfigError
from pytest_tinyml.history import compare as cmp
from pytest_tinyml.history.store import DEFAULT_BASELINE, HistoryStore, HistoryWarning, Record

OBSERVATIONS = pytest.StashKey[list]()
OUTCOMES = pytest.StashKey[list]()
PLUGIN = pytest.StashKey["HistoryPlugin"]()
METRICS_FILE = "metrics.txt"
_PROPERTY = "latency_comparisons"


def register(config) -> None:
    """Called from the plugin's ``pytest_configure``; registering twice is a no-op."""
    if config.pluginmanager.has_plugin("tinyml-history"):
        return
    plugin = HistoryPlugin(config)
    config.stash[PLUGIN] = plugin
    config.pluginmanager.register(plugin, "tinyml-history")


def add_observation(item, record: Record) -> Record:
    """Queue ``record`` on the running test; a repeated test id and place gets ``#2``, ``#3``, ..."""
    queued = item.stash.setdefault(OBSERVATIONS, [])
    taken = {r.series for r in queued}
    base, number = record.test_id, 1
    while record.series in taken:
        number += 1
        record.test_id = f"{base}#{number}"
    queued.append(record)
    return record


def _thresholds(item, record: Record) -> tuple[float, float]:
    marker = item.get_closest_marker("tinyml_latency")
    if marker is not None and marker.args:
        raise ConfigError(f"tinyml_latency takes keywords only on {item.nodeid}, got {marker.args!r}: "
                          "write @pytest.mark.tinyml_latency(min_effect=0.2, alpha=0.01)")
    kwargs = dict(marker.kwargs) if marker else {}
    unknown = set(kwargs) - {"min_effect", "alpha"}
    if unknown:
        raise ConfigError(f"tinyml_latency got unknown arguments {sorted(unknown)} on {item.nodeid}; "
                              "known: min_effect=0.05, alpha=0.01")
    alpha = kwargs.get("alpha", cmp.DEFAULT_ALPHA)
    min_effect = kwargs.get("min_effect")
    min_effect = cmp.default_min_effect(record.kind, record.where) if min_effect is None else min_effect
    cmp.check_thresholds(alpha, min_effect)
    return float(alpha), float(min_effect)


def _label(record: Record, prefix: str) -> str:
    commit = (record.git or {}).get("commit")
    where = f"commit {commit[:10]}{'+dirty' if record.git.get('dirty') else ''}" if commit else "no git"
    return f"{prefix} ({record.time[:16].replace('T', ' ')} UTC, {where})"


class HistoryPlugin:
    """Registered as ``tinyml-history``; one per process (controller and each xdist worker)."""

    def __init__(self, config) -> None:
        self.config = config
        resolved = options.of(config)
        self.save_name = resolved.save_baseline
        self.baseline_name = resolved.baseline
        self.root = resolved.history_dir
        self.rows: list[dict] = []  # controller: one per comparison, for the terminal and the metrics file
        self.outputs: list[str] = []  # files written at session end, named in the terminal section
        self._store: HistoryStore | None = None

    @property
    def store(self) -> HistoryStore:
        if self._store is None:
            self._store = HistoryStore(self.root)
        return self._store

    # -- per test ---------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        item.stash[OBSERVATIONS] = []
        try:
            result = yield
        except BaseException:
            try:
                self._settle(item, passed=False)
            except Exception as exc:  # the test's own failure is the news; keep ours beside it
                item.add_report_section("call", "tinyml history", f"could not store the latency: {exc}")
            raise
        self._settle(item, passed=True)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.when == "call" and report.passed:
            failures = [o["message"] for o in item.stash.get(OUTCOMES, []) if o["verdict"] == cmp.REGRESSION]
            if failures:
                report.outcome = "failed"
                report.longrepr = "\n\n".join(failures)
        return report

    def _settle(self, item, *, passed: bool) -> None:
        records = item.stash.get(OBSERVATIONS, [])
        if not records:
            return
        outcomes, notices = [], []
        for record in records:
            outcome = self._judge(item, record, passed)
            record.verdict = {k: v for k, v in outcome.items() if k != "message"}
            self.store.add(record)
            outcomes.append(outcome)
            if outcome["verdict"] in (cmp.NO_BASELINE, cmp.NOT_COMPARED) and passed:
                notices.append(f"{record.series}: {outcome['note']}")
        item.stash[OUTCOMES] = outcomes
        token = tinyml_report.set_current_item(item)
        try:
            # Flat figures of the most telling comparison (a regression first) for JUnit readers; the full
            # list for the JSON report and the controller's summary.
            worst = max(outcomes, key=lambda o: (o["verdict"] == cmp.REGRESSION, o.get("change") or 0.0))
            flat = {f"latency_{k}": worst[k] for k in ("verdict", "change", "p_value", "baseline_median_us")
                    if worst.get(k) is not None}
            tinyml_report.record(
                latency_median_us=records[-1].stats.median, **flat,
                **{_PROPERTY: [{k: v for k, v in o.items() if k != "message"} for o in outcomes]},
            )
        finally:
            tinyml_report.reset_current_item(token)
        path, line = str(item.path), (item.location[1] or 0) + 1
        for notice in notices:  # attributed to the test, so the warnings summary names it
            warnings.warn_explicit(HistoryWarning(notice), HistoryWarning, path, line)

    def _judge(self, item, record: Record, passed: bool) -> dict:
        stats = record.stats
        row = {"test_id": record.test_id, "where": record.where, "kind": record.kind, "median_us": stats.median,
               "p90_us": stats.p90, "n": stats.n}
        if not passed:
            return {**row, "verdict": cmp.NOT_COMPARED, "note": "not compared: the test did not pass"}
        alpha, min_effect = _thresholds(item, record)
        baseline, why = self.store.baseline_for(record, self.baseline_name)
        if baseline is None:
            name = self.save_name or self.baseline_name or DEFAULT_BASELINE
            self.store.save_baseline(record, name)
            verdict = cmp.NOT_COMPARED if why.startswith("not compared") else cmp.NO_BASELINE
            return {**row, "verdict": verdict, "note": f"{why}; saved this run as baseline {name!r} "
                    f"in {self.root} (nothing was compared)"}
        result = cmp.compare_samples(baseline.samples_us, record.samples_us, alpha=alpha, min_effect=min_effect)
        row.update(baseline_name=baseline.baseline_name, baseline_median_us=result.baseline.median,
                   baseline_p90_us=result.baseline.p90, baseline_n=result.baseline.n, change=result.change,
                   p_value=result.p_value, alpha=alpha, min_effect=min_effect, verdict=result.verdict,
                   note=result.summary())
        if self.save_name:
            self.store.save_baseline(record, self.save_name)
            row["note"] += f"; saved as baseline {self.save_name!r}"
            if result.is_regression:
                row.update(verdict=cmp.ACCEPTED, note=row["note"] + " (slowdown accepted)")
        elif result.is_regression:
            accept = f"pytest '{item.nodeid}' --tinyml-save-baseline" + (
                f"={self.baseline_name}" if self.baseline_name else "")
            row["message"] = cmp.regression_message(
                result, series=record.series, baseline_label=_label(baseline, f"baseline {baseline.baseline_name!r}"),
                now_label=_label(record, "now"), accept_hint=accept)
        elif result.verdict == cmp.FASTER:
            # Left alone, the old baseline would hide a later slowdown back to the old speed.
            row["note"] += "; to keep the gain, save it: --tinyml-save-baseline"
        return row

    # -- controller: gather, summarize, export --------------------------------------------------------
    def pytest_runtest_logreport(self, report):
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == tinyml_report.PREFIX + _PROPERTY and isinstance(value, list):
                self.rows.extend(v for v in value if isinstance(v, dict))

    def pytest_terminal_summary(self, terminalreporter):
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("-", "tinyml latency history")
        for line in summary_lines(self.rows) + self.outputs:
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session):
        """Runs before the terminal summary: files written here are named in it."""
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        text = openmetrics(self.rows)
        metrics = os.path.join(self.root, METRICS_FILE)
        write_metrics(metrics, text, append=False)
        self.outputs.append(f"OpenMetrics: {metrics}")
        embedded = self.config.getoption("metric_path", default=None)  # pytest-embedded's --metric-path
        if embedded:
            write_metrics(str(embedded), text, append=True)
            self.outputs.append(f"OpenMetrics appended to --metric-path {embedded}")
        report_path = options.of(self.config).report
        if report_path:  # a reporting run (the reference job): draw the trend next to the JSON report
            self.outputs.append(self._plot(os.path.splitext(str(report_path))[0] + "-latency-trend.png"))

    def _plot(self, path: str) -> str:
        from pytest_tinyml.history.plot import plot_history

        try:
            return f"trend plot: {plot_history(self.store.records(), path)}"
        except Exception as exc:  # a plot is a by-product: say why it is missing, never fail the run for it
            return f"no trend plot ({type(exc).__name__}: {exc})"


def summary_lines(rows: list[dict]) -> list[str]:
    """The terminal section as plain text (pure data in, lines out): a table of every observation, then one
    note per observation that was not compared (or was accepted), saying why and what was saved.

    Example:
        >>> for line in summary_lines([{"test_id": "t.py::a", "where": "sim", "verdict": "no-baseline",
        ...                             "median_us": 812.0, "n": 30, "note": "no baseline yet; saved"}]):
        ...     print(line.rstrip())
        verdict      test @ where   baseline us  now us  change  p-value  n
        -----------  -------------  -----------  ------  ------  -------  ----
        no-baseline  t.py::a @ sim            -   812.0       -        -  -/30
        no-baseline  t.py::a @ sim: no baseline yet; saved
    """

    def number(value, fmt: str) -> str:
        return fmt.format(value) if isinstance(value, (int, float)) else "-"

    headings = ["verdict", "test @ where", "baseline us", "now us", "change", "p-value", "n"]
    cells = [[str(row.get("verdict", "?")), f"{row.get('test_id')} @ {row.get('where')}",
              number(row.get("baseline_median_us"), "{:.1f}"), number(row.get("median_us"), "{:.1f}"),
              number(row.get("change"), "{:+.1%}"), number(row.get("p_value"), "{:.2g}"),
              f"{row.get('baseline_n', '-')}/{row.get('n', '-')}"] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headings)]
    right = {2, 3, 4, 5}  # numbers line up on the right

    def line(values) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    lines = [line(headings), line(["-" * w for w in widths])] + [line(c) for c in cells]
    quiet = (cmp.UNCHANGED, cmp.REGRESSION)  # the table says it all; a regression failed its test
    lines += [f"{row.get('verdict', '?'):<12} {row.get('test_id')} @ {row.get('where')}: {row.get('note', '')}"
              for row in rows if row.get("verdict") not in quiet]
    return lines


def _label_value(text) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(rows: list[dict]) -> str:
    """Lines ``name{label="value",...} number`` as pytest-embedded's ``log_metric`` writes them.

    Example:
        >>> print(openmetrics([{"test_id": "t.py::a", "where": "sim", "kind": "board", "median_us": 812.5}]), end="")
        tinyml_latency_median_us{test="t.py::a",where="sim",kind="board"} 812.5
    """
    fields = [("median_us", "tinyml_latency_median_us"), ("p90_us", "tinyml_latency_p90_us"),
              ("n", "tinyml_latency_samples"), ("baseline_median_us", "tinyml_latency_baseline_median_us"),
              ("change", "tinyml_latency_change_ratio"), ("p_value", "tinyml_latency_p_value")]
    lines = []
    for row in rows:
        labels = ",".join(f'{k}="{_label_value(row.get(src))}"'
                          for k, src in (("test", "test_id"), ("where", "where"), ("kind", "kind")))
        for src, name in fields:
            if isinstance(row.get(src), (int, float)):
                lines.append(f"{name}{{{labels}}} {row[src]}")
        if "verdict" in row and "baseline_median_us" in row:
            lines.append(f"tinyml_latency_regression{{{labels}}} {int(row['verdict'] == cmp.REGRESSION)}")
    return "".join(line + "\n" for line in lines)


def write_metrics(path: str, text: str, *, append: bool) -> None:
    """Replace ``path`` atomically, or append under ``<path>.lock`` (pytest-embedded's lock) with ``append``."""
    import filelock

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not append:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        return
    with filelock.FileLock(f"{path}.lock"), open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
