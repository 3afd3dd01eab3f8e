"""pytest hooks and thin fixtures of pytest-tinyml.

Loading this module imports no TensorFlow, Keras, numpy or pyserial: every fixture imports its class inside
its body, and hooks do nothing unless a tinyml test ran.
"""

from __future__ import annotations

import pytest

from pytest_tinyml import memo, options
from pytest_tinyml import report as tinyml_report
from pytest_tinyml.history import hooks as history_hooks

NO_BOARD_REASON = (
    "needs a board: run with --tinyml-board=/dev/ttyUSB0 (a serial port, rfc2217://host:port, "
    "socket://host:port) or --tinyml-board=sim for the host simulator"
)
MARKERS = {
    "tinyml_board": "tinyml_board(kind=None): the test runs on a board given by --tinyml-board; skipped "
    "without one. kind= names the chip the test's budgets are for (e.g. 'esp32s3'); other boards skip it.",
    "tinyml_latency": "tinyml_latency(min_effect=None, spread_k=4, window=10, min_runs=3, reruns=2, floor_us=None, "
    "seen_margin=1.25): latency regression gate of this test; min_effect is the smallest median slowdown that fails "
    "(default 0.05 on a board, 0.10 on the host and the sim).",
}
_COLLECTOR = pytest.StashKey["tinyml_report.Collector"]()
_PREVIOUS_FACTS_ROOT = pytest.StashKey[object]()


def pytest_addoption(parser):
    options.add_options(parser)


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    resolved = options.resolve(config)  # every option parsed once (a bad ini value fails here, before collection)
    # Vet verdicts, arena figures and op probes are kept in the cache directory (memo.py: stdlib only).
    config.stash[_PREVIOUS_FACTS_ROOT] = memo.set_root(resolved.cache_dir)
    if resolved.trust_legacy:
        from pytest_tinyml import identity  # no heavy imports: stdlib and errors only

        identity.set_trust_legacy(True)
    collector = tinyml_report.Collector()
    config.stash[_COLLECTOR] = collector
    config.pluginmanager.register(_SummaryPlugin(collector), "tinyml-summary")
    history_hooks.register(config)
    if resolved.boards and resolved.boards[0].kind == "embedded" and config.pluginmanager.has_plugin("pytest_embedded"):
        from pytest_tinyml.board import embedded_plugin  # imports nothing of pytest-embedded

        config.pluginmanager.register(embedded_plugin.EmbeddedSession(), embedded_plugin.NAME)


def pytest_unconfigure(config):
    if _PREVIOUS_FACTS_ROOT in config.stash:  # pytester runs configure in-process: give the root back
        memo.set_root(config.stash[_PREVIOUS_FACTS_ROOT])


def pytest_report_header(config):
    boards = options.of(config).boards
    if boards:
        return "tinyml boards: " + ", ".join(b.text for b in boards)
    return None


def pytest_collection_modifyitems(config, items):
    # A skip marker (rather than pytest.skip in setup) so the report points at the test, not at this file.
    if options.of(config).boards:
        return
    skip = pytest.mark.skip(reason=NO_BOARD_REASON)
    for item in items:
        if item.get_closest_marker("tinyml_board") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    token = tinyml_report.set_current_item(item)
    try:
        return (yield)
    finally:
        tinyml_report.reset_current_item(token)


class _SummaryPlugin:
    """Collects recorded figures from every test report (on the xdist controller too)."""

    def __init__(self, collector) -> None:
        self.collector = collector

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome == "failed":
            self.collector.add(report.nodeid, report.user_properties, report.outcome)


@pytest.hookimpl(trylast=True)  # the summary table ends the run's output, after other plugins' tables
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    collector = config.stash.get(_COLLECTOR, None)
    if collector is None or not collector.rows or hasattr(config, "workerinput"):
        return
    terminalreporter.write_sep("=", "tinyml summary")
    for line in collector.lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    path = options.of(config).report
    collector = config.stash.get(_COLLECTOR, None)
    if path and collector is not None and not hasattr(config, "workerinput"):
        collector.write_json(str(path))


@pytest.fixture(scope="session")
def tinyml_cache(request):
    """Content-addressed cache of training and conversion: ``tinyml_cache.fit(...)``, ``.convert(...)``."""
    from pytest_tinyml.cache import TinyMLCache

    resolved = options.of(request.config)
    return TinyMLCache(resolved.cache_dir, retry_failures=resolved.cache_retry)


@pytest.fixture
def tinyml_board(request):
    """The board this worker leased (``--tinyml-board``); skips the test when none was given."""
    boards = options.of(request.config).boards
    if not boards:
        pytest.skip(NO_BOARD_REASON)
    if boards[0].kind == "embedded":  # over pytest-embedded's dut; nothing of it is imported otherwise
        from pytest_tinyml.board.embedded import board_for_test
    else:
        from pytest_tinyml.board.fixture import board_for_test

    return board_for_test(request)
