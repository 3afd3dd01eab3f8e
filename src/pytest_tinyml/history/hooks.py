"""pytest side of the latency history: compare after each test, fail regressions, summarize, export.

Flow per test: :func:`pytest_tinyml.history.observe` appends records to the item; when the test body
returns, :meth:`HistoryPlugin.pytest_runtest_call` compares each with its baseline, stores it, saves
baselines, records figures (JUnit, JSON, xdist) and warns about missing baselines -- in the call phase, so
warnings belong to the test. :meth:`HistoryPlugin.pytest_runtest_makereport` then turns a passing report
into a failure when a regression was found. The controller gathers the figures for the terminal section
and the OpenMetrics file. Nothing heavy is imported until a test observes a latency.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
import warnings

import pytest

from pytest_tinyml import options
from pytest_tinyml import report as tinyml_report
from pytest_tinyml.errors import ConfigError, CorruptBaseline
from pytest_tinyml.history import compare as cmp
from pytest_tinyml.history.store import DEFAULT_BASELINE, Baseline, HistoryStore, HistoryWarning, Record
from pytest_tinyml.history.store import changes as store_changes

OBSERVATIONS = pytest.StashKey[list]()
REMEASURE = pytest.StashKey[dict]()
OUTCOMES = pytest.StashKey[list]()
PLUGIN = pytest.StashKey["HistoryPlugin"]()
METRICS_FILE = "metrics.txt"
_PROPERTY = "latency_comparisons"
# The host counts as busier than at the baseline when its 1-minute load is above 1.5x the baseline's median
# load plus half a load unit per core: a neighbour then steals enough time to move a median.
_LOAD_FACTOR, _LOAD_PER_CPU = 1.5, 0.5


def register(config) -> None:
    """Called from the plugin's ``pytest_configure``; registering twice is a no-op.

    Raises :class:`pytest.UsageError` for ``--tinyml-baseline=NAME`` when no baseline NAME was ever saved.
    """
    if config.pluginmanager.has_plugin("tinyml-history"):
        return
    plugin = HistoryPlugin(config)
    if not hasattr(config, "workerinput"):
        plugin.check_baseline_name()
    config.stash[PLUGIN] = plugin
    config.pluginmanager.register(plugin, "tinyml-history")


def add_observation(item, record: Record, remeasure=None) -> Record:
    """Queue ``record`` on the running test; a repeated test id and place gets ``#2``, ``#3``, ...

    ``remeasure``, when given, measures the same thing again (returns samples in us, records nothing); the
    gate calls it, a bounded number of times, before it calls a change.
    """
    queued = item.stash.setdefault(OBSERVATIONS, [])
    taken = {r.series for r in queued}
    base, number = record.test_id, 1
    while record.series in taken:
        number += 1
        record.test_id = f"{base}#{number}"
    plugin = item.config.stash.get(PLUGIN, None)
    if plugin is not None:
        record.run = plugin.run_id
    queued.append(record)
    if remeasure is not None:
        item.stash.setdefault(REMEASURE, {})[record.id] = remeasure
    return record


def _gate(item, record: Record) -> cmp.Gate:
    marker = item.get_closest_marker("tinyml_latency")
    known = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cmp.Gate))
    if marker is not None and marker.args:
        raise ConfigError(f"tinyml_latency takes keywords only on {item.nodeid}, got {marker.args!r}: "
                          "write @pytest.mark.tinyml_latency(min_effect=0.2)")
    kwargs = dict(marker.kwargs) if marker else {}
    unknown = set(kwargs) - {f.name for f in dataclasses.fields(cmp.Gate)}
    if unknown:
        raise ConfigError(f"tinyml_latency got unknown arguments {sorted(unknown)} on {item.nodeid}; known: {known}")
    if kwargs.get("min_effect") is None:
        kwargs["min_effect"] = cmp.default_min_effect(record.kind, record.where)
    if "floor_us" not in kwargs:
        kwargs["floor_us"] = cmp.FLOOR_TICKS * _tick_us(record)
    return cmp.Gate(**kwargs)


def _tick_us(record: Record) -> float:
    """The timer's resolution: given by the observer, else 1 us on boards and the sim, perf_counter's on the host."""
    tick = record.context.get("tick_us")
    if isinstance(tick, (int, float)) and tick > 0:
        return float(tick)
    if record.kind == "board":
        return cmp.BOARD_TICK_US
    return time.get_clock_info("perf_counter").resolution * 1e6


def unreliable_host(record: Record, runs: list[Record]) -> str | None:
    """Why this host measurement cannot be trusted against ``runs``, or ``None``: more pytest-xdist workers
    than at the baseline, or a load average well above the baseline's.

    Example:
        >>> now = Record.new(test_id="t", kind="host", samples_us=[1], context={})
        >>> now.load = {"load_1m": 3.6, "cpu_count": 2, "xdist_workers": 1}
        >>> base = Record.new(test_id="t", kind="host", samples_us=[1], context={})
        >>> base.load = {"load_1m": 0.4, "cpu_count": 2, "xdist_workers": 1}
        >>> unreliable_host(now, [base])
        'host busier than at the baseline: load average 3.6 now, 0.4 then (2 cores)'
    """
    from pytest_tinyml.latency import median

    if record.load is None:
        return None
    workers = record.load.get("xdist_workers") or 1
    before = max(((r.load or {}).get("xdist_workers") or 1 for r in runs), default=1)
    if workers > before:
        return f"{workers} pytest-xdist workers share this host now, {before} at the baseline"
    load, cpus = record.load.get("load_1m"), record.load.get("cpu_count") or 1
    loads = [(r.load or {}).get("load_1m") for r in runs]
    loads = [v for v in loads if isinstance(v, (int, float))]
    if isinstance(load, (int, float)) and loads:
        then = median(loads)
        if load > _LOAD_FACTOR * then + _LOAD_PER_CPU * cpus:
            return f"host busier than at the baseline: load average {load:g} now, {then:g} then ({cpus} cores)"
    return None


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
        # One id for this pytest session, shared by the xdist workers: the trend plot's runs.
        workerinput = getattr(config, "workerinput", None) or {}
        self.run_id = str(workerinput.get("testrunuid") or uuid.uuid4().hex)[:12]
        self.rows: list[dict] = []  # controller: one per comparison, for the terminal and the metrics file
        self.outputs: list[str] = []  # files written at session end, named in the terminal section
        self._store: HistoryStore | None = None

    @property
    def store(self) -> HistoryStore:
        if self._store is None:
            self._store = HistoryStore(self.root)
        return self._store

    def check_baseline_name(self) -> None:
        """A mistyped ``--tinyml-baseline`` must not pass a slowdown: refuse a name that was never saved."""
        name = self.baseline_name
        if not name or name == DEFAULT_BASELINE or name == self.save_name:
            return
        names = self.store.baseline_names()
        if name not in names:
            raise pytest.UsageError(
                f"--tinyml-baseline={name}: no baseline {name!r} in {self.root}; saved baselines: "
                f"{', '.join(repr(n) for n in names)} ('last' is the moving window of accepted runs). "
                f"Save one with --tinyml-save-baseline={name}")

    # -- per test ---------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        item.stash[OBSERVATIONS] = []
        item.stash[REMEASURE] = {}
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
            outcome = self._judge(item, record, passed, item.stash.get(REMEASURE, {}).get(record.id))
            record.verdict = {k: v for k, v in outcome.items() if k not in ("message", "test_id", "where", "kind")}
            self.store.add(record)
            if self.save_name and self.save_name != DEFAULT_BASELINE and outcome["accepted"]:
                moving = self.store.window(record, outcome.get("window", cmp.DEFAULT_WINDOW))
                runs = [] if record.verdict.get("reset") else moving.runs
                self.store.save_baseline(self.save_name, record, runs + [record], moving.excursions if runs else [])
            outcomes.append(outcome)
            if outcome["verdict"] in (cmp.NO_BASELINE, cmp.NOT_COMPARED, cmp.INCONCLUSIVE) and passed:
                notices.append(f"{outcome['verdict']}: {record.series}: {outcome['note']}")
        item.stash[OUTCOMES] = outcomes
        token = tinyml_report.set_current_item(item)
        try:
            # Flat figures of the most telling comparison (a regression first) for JUnit readers; the full
            # list for the JSON report and the controller's summary.
            worst = max(outcomes, key=lambda o: (o["verdict"] == cmp.REGRESSION, o.get("change") or 0.0))
            flat = {f"latency_{k}": worst[k] for k in ("verdict", "change", "baseline_median_us")
                    if worst.get(k) is not None}
            tinyml_report.record(
                latency_median_us=records[-1].stats.median, **flat,
                **{_PROPERTY: [{k: v for k, v in o.items() if k != "message"} for o in outcomes]},
            )
        finally:
            tinyml_report.reset_current_item(token)
        path, line = str(item.path), (item.location[1] or 0) + 1
        for notice in notices:  # attributed to the test, so the warnings summary names it (and only it)
            warnings.warn_explicit(HistoryWarning(notice), HistoryWarning, path, line)

    def _judge(self, item, record: Record, passed: bool, remeasure) -> dict:
        stats = record.stats
        row = {"test_id": record.test_id, "where": record.where, "kind": record.kind, "median_us": stats.median,
               "p10_us": stats.p10, "p90_us": stats.p90, "n": stats.n, "accepted": False}
        if not passed:
            return {**row, "verdict": cmp.NOT_COMPARED, "note": "not compared: the test did not pass"}
        gate = _gate(item, record)
        row["window"] = gate.window
        name = self.baseline_name or DEFAULT_BASELINE
        saving = self.save_name is not None
        try:
            baseline = (self.store.window(record, gate.window) if name == DEFAULT_BASELINE
                        else self.store.named(record, name))
        except CorruptBaseline as exc:
            if self.save_name == name:  # replacing it is what was asked
                baseline = Baseline(name, [], [], f"{exc}; replaced as asked")
            else:
                return {**row, "verdict": cmp.INCONCLUSIVE, "baseline_name": name, "note": str(exc),
                        "reason": "corrupt baseline"}
        runs, why = baseline.runs, baseline.why
        if not runs:
            verdict = cmp.NOT_COMPARED if why.startswith("not compared") else cmp.NO_BASELINE
            starts = ("starts the moving baseline 'last'" if name == DEFAULT_BASELINE else "nothing was compared")
            note = f"{why}; this run {starts} (comparisons begin after {gate.min_runs} runs)"
            if saving:
                note += f"; saved as baseline {self.save_name!r}"
            return {**row, "verdict": verdict, "baseline_name": name, "note": note, "accepted": True}
        unreliable = unreliable_host(record, runs)
        failed_again: list[str] = []

        def again():
            try:
                return remeasure()
            except Exception as exc:  # the first measurement stands; say why there was no second
                failed_again.append(f"{type(exc).__name__}: {exc}")
                return None

        result = cmp.compare_runs([r.samples_us for r in runs], record.samples_us, gate=gate,
                                  excursions=[r.stats.median for r in baseline.excursions],
                                  remeasure=again if remeasure is not None else None, unreliable=unreliable)
        if len(result.medians_us) > 1:  # re-measured: keep the samples of the measurement that decided
            record.samples_us = list(result.now.samples)
            record.context["measured_medians_us"] = list(result.medians_us)
        row.update(median_us=result.now.median, p10_us=result.now.p10, p90_us=result.now.p90, n=result.now.n,
                   baseline_name=name, baseline_median_us=result.center, baseline_spread_us=result.spread,
                   baseline_runs=result.runs, baseline_n=result.baseline_n, allowed_us=result.allowed_us,
                   change=result.change, verdict=result.verdict, measured_medians_us=list(result.medians_us),
                   reason=result.reason, note=result.summary(), min_effect=gate.min_effect)
        if failed_again:
            row["note"] += f"; could not measure again ({failed_again[0]})"
        too_little = result.verdict == cmp.INCONCLUSIVE and not unreliable
        row["accepted"] = result.verdict in (cmp.UNCHANGED, cmp.FASTER) or too_little or saving
        if saving:
            row["note"] += f"; saved as baseline {self.save_name!r}"
            if result.verdict in (cmp.REGRESSION, cmp.FASTER):
                # The change is accepted: the baseline starts again from this run, or the old runs would
                # outvote it and call the next run at the new speed a regression (or a speed-up) again.
                row.update(verdict=cmp.ACCEPTED, reset=True,
                           note=row["note"] + f" ({result.verdict} accepted: the baseline starts again here)")
        elif result.is_regression:
            accept = f"pytest '{item.nodeid}' --tinyml-save-baseline" + (
                f"={self.baseline_name}" if self.baseline_name else "")
            label = f"baseline {name!r}" + (f" ({runs[0].time[:16].replace('T', ' ')} .. "
                                             f"{runs[-1].time[:16].replace('T', ' ')} UTC)")
            row["message"] = cmp.regression_message(
                result, series=record.series, baseline_label=label, now_label=_label(record, "now"),
                changes=store_changes(runs[-1], record), accept_hint=accept)
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
    """The terminal section as plain text (pure data in, lines out): a table of every observation, then a
    note for the outcomes that no warning explains (a speed-up, an accepted change). No-baseline,
    inconclusive and not-compared outcomes are explained once, by their warning.

    Example:
        >>> for line in summary_lines([{"test_id": "t.py::a", "where": "sim", "verdict": "no-baseline",
        ...                             "median_us": 812.0, "n": 30, "note": "no earlier run"}]):
        ...     print(line.rstrip())
        verdict      test @ where   baseline us  now us  change  allowed us  runs   n
        -----------  -------------  -----------  ------  ------  ----------  ----  --
        no-baseline  t.py::a @ sim            -   812.0       -           -     -  30
    """

    def number(value, fmt: str) -> str:
        return fmt.format(value) if isinstance(value, (int, float)) and value == value else "-"

    headings = ["verdict", "test @ where", "baseline us", "now us", "change", "allowed us", "runs", "n"]
    cells = [[str(row.get("verdict", "?")), f"{row.get('test_id')} @ {row.get('where')}",
              number(row.get("baseline_median_us"), "{:.1f}"), number(row.get("median_us"), "{:.1f}"),
              number(row.get("change"), "{:+.1%}"), number(row.get("allowed_us"), "{:.1f}"),
              number(row.get("baseline_runs"), "{}"), number(row.get("n"), "{}")] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headings)]
    right = {2, 3, 4, 5, 6, 7}  # numbers line up on the right

    def line(values) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    lines = [line(headings), line(["-" * w for w in widths])] + [line(c) for c in cells]
    explained = (cmp.FASTER, cmp.ACCEPTED)  # the others: the table, a failed test, or their warning
    lines += [f"{row.get('verdict', '?'):<12} {row.get('test_id')} @ {row.get('where')}: {row.get('note', '')}"
              for row in rows if row.get("verdict") in explained]
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
              ("change", "tinyml_latency_change_ratio"), ("allowed_us", "tinyml_latency_allowed_us"),
              ("baseline_runs", "tinyml_latency_baseline_runs")]
    lines = []
    for row in rows:
        labels = ",".join(f'{k}="{_label_value(row.get(src))}"'
                          for k, src in (("test", "test_id"), ("where", "where"), ("kind", "kind")))
        for src, name in fields:
            if isinstance(row.get(src), (int, float)):
                lines.append(f"{name}{{{labels}}} {row[src]}")
        if "verdict" in row and "baseline_median_us" in row:
            lines.append(f"tinyml_latency_regression{{{labels}}} {int(row['verdict'] == cmp.REGRESSION)}")
            lines.append(f"tinyml_latency_inconclusive{{{labels}}} {int(row['verdict'] == cmp.INCONCLUSIVE)}")
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
