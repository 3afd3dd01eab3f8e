"""The ``pytest-tinyml`` command.

    pytest-tinyml init MODEL [--data DATA.npz] [--dir DIR] [--headroom 0.1] [--trust]
    pytest-tinyml history list    [--history DIR] [-k TEXT]
    pytest-tinyml history compare [--history DIR] [-k TEXT] [--baseline NAME] [--min-effect F] [--spread-k K]
    pytest-tinyml history plot    [--history DIR] [-k TEXT] [-o trend.png]
    pytest-tinyml estimate calibrate [--history DIR] [--chip CHIP ...] [--min-runs N] [--cache-dir DIR | -o FILE]

``init`` writes the first model-quality tests from a ``.keras`` or ``.tflite`` model (see
:mod:`pytest_tinyml.scaffold`). ``compare`` checks the latest run of every test and board against its baseline with the same gate as the
plugin and exits 1 when any regressed. ``estimate calibrate`` turns the measured / estimate ratios that
``assert_budget(target=...)`` recorded on boards into a per-chip latency scale that ``tinyml.estimate`` applies
(:mod:`pytest_tinyml.estimation.calibration`). Heavy modules load only inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import sys

from pytest_tinyml.errors import TinyMLError

DEFAULT_HISTORY = ".tinyml_history"


def _series(store, text: str | None) -> dict:
    grouped: dict[str, list] = {}
    for record in store.records():
        if text is None or text in record.series:
            grouped.setdefault(record.series, []).append(record)
    return grouped


def _table(headings: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headings)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True)), "  ".join("-" * w for w in widths)]
    return lines + ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]


def cmd_list(args, store) -> int:
    grouped = _series(store, args.k)
    if not grouped:
        print(f"no latency records in {store.root}" + (f" matching {args.k!r}" if args.k else ""))
        return 0
    rows = []
    for series, records in grouped.items():
        last = records[-1]
        names = [n for n in store.baseline_names() if n == "last" or _has_named(store, last, n)]
        rows.append([series, str(len(records)), f"{last.stats.median:.1f}", f"{last.stats.p90:.1f}",
                     str(last.stats.n), (last.verdict or {}).get("verdict", "-"), ",".join(names) or "-",
                     last.time[:19].replace("T", " ")])
    for line in _table(["test @ where", "runs", "last median us", "p90 us", "n", "last verdict", "baselines",
                        "last run (UTC)"], rows):
        print(line)
    return 0


def _has_named(store, record, name: str) -> bool:
    try:
        return bool(store.named(record, name).runs)
    except TinyMLError:
        return True  # there, but corrupt: `compare` says so


def cmd_compare(args, store) -> int:
    from pytest_tinyml.history.compare import Gate, compare_runs, default_min_effect, regression_message
    from pytest_tinyml.history.store import changes

    grouped = _series(store, args.k)
    if not grouped:
        print(f"no latency records in {store.root}" + (f" matching {args.k!r}" if args.k else ""))
        return 0
    if args.baseline and args.baseline not in store.baseline_names():
        print(f"no baseline {args.baseline!r} in {store.root}; saved baselines: "
              f"{', '.join(repr(n) for n in store.baseline_names())}", file=sys.stderr)
        return 2
    regressions = 0
    for series, records in grouped.items():
        last = records[-1]
        baseline = (store.named(last, args.baseline) if args.baseline and args.baseline != "last"
                    else store.window(last, args.window))
        if not baseline.runs:
            print(f"{'not compared':<13} {series}: {baseline.why}")
            continue
        min_effect = default_min_effect(last.kind, last.where) if args.min_effect is None else args.min_effect
        gate = Gate(min_effect=min_effect, spread_k=args.spread_k, window=args.window,
                    floor_us=2.0 if last.kind == "board" else 0.0)
        result = compare_runs([r.samples_us for r in baseline.runs], last.samples_us, gate=gate,
                              excursions=[r.stats.median for r in baseline.excursions])
        print(f"{result.verdict:<13} {series}: {result.summary()}")
        if result.is_regression:
            regressions += 1
            print(regression_message(result, series=series, baseline_label=f"baseline {baseline.name!r}",
                                     now_label=f"run {last.time[:19]}", changes=changes(baseline.runs[-1], last),
                                     accept_hint="pytest --tinyml-save-baseline"))
    return 1 if regressions else 0


def cmd_plot(args, store) -> int:
    from pytest_tinyml.history.plot import plot_history, runs_of

    records = [r for r in store.records() if args.k is None or args.k in r.series]
    print(f"wrote {plot_history(records, args.output)} ({len(records)} records in {len(runs_of(records))} runs)")
    return 0


def cmd_calibrate(args) -> int:
    from pathlib import Path

    from pytest_tinyml.errors import EstimateCalibrationError
    from pytest_tinyml.estimation import calibration
    from pytest_tinyml.history.estimates import DIRECTORY, EstimateLog

    if not (Path(args.history) / DIRECTORY).is_dir():
        raise EstimateCalibrationError(
            f"no estimates in the history {args.history}: run the tests that call assert_budget(target=...) with "
            "--tinyml-board on a board of that chip (and --tinyml-history, when not the default) first")
    records = EstimateLog(args.history).records()
    if args.chip:
        from pytest_tinyml.estimation import chip_of

        chips = [chip_of(c) for c in args.chip]  # "ESP32-S3" is esp32s3, as estimate() reads it
    else:
        chips = sorted({r.target for r in records if r.measured is not None})
    if not chips:
        raise EstimateCalibrationError(
            f"no board runs in {args.history}: its {len(records)} estimate(s) were made without a board of their "
            "chip; run the assert_budget(target=...) tests with --tinyml-board on such a board first")
    found = [calibration.from_records(records, chip, min_runs=args.min_runs, history=str(args.history))
             for chip in chips]
    path = Path(args.output) if args.output else Path(args.cache_dir) / calibration.FILE_NAME
    rows = [[c.chip, f"{c.latency_scale:.3f}", f"{c.latency_spread:.3f}",
             f"{c.latency_ratio_range[0]:.3f}-{c.latency_ratio_range[1]:.3f}",
             "-" if c.arena_ratio is None else f"{c.arena_ratio:.3f}", str(c.runs), str(c.models), str(c.boards)]
            for c in found]
    for line in _table(["chip", "latency scale", "spread", "ratio range", "arena ratio", "runs", "models",
                        "boards"], rows):
        print(line)
    print(f"wrote {calibration.write(path, found)}"
          + ("" if args.output else " (tinyml.estimate applies it by default)"))
    return 0


def _whole_positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (e.g. 3), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-tinyml", description="pytest-tinyml tools")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write the first model-quality tests from your model and data",
                               description="Measure MODEL (and its float32 / int8 conversions) and write "
                               "tests/test_<model>_quality.py, the [pytest] settings and .gitignore lines. "
                               "Never overwrites a file.")
    init.add_argument("model", metavar="MODEL", help="a trained .keras model, a .tflite, or a legacy .h5")
    init.add_argument("--data", metavar="DATA.npz", default=None,
                      help="arrays x_train, y_train, x_test, y_test (any subset); without it, inputs are "
                      "generated in the model's input range")
    init.add_argument("--dir", default=".", help="project directory to write into (default: .)")
    init.add_argument("--trust", action="store_true",
                      help="accept a legacy .h5 MODEL whose Lambda layers hold Python bytecode (loading runs it)")
    init.add_argument("--headroom", type=float, default=0.10,
                      help="flash and arena budgets are the measured figures times 1 + HEADROOM (default 0.10)")
    history = commands.add_parser("history", help="latency history: list, compare, plot")
    actions = history.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--history", default=DEFAULT_HISTORY,
                        help=f"history directory (default {DEFAULT_HISTORY}, as --tinyml-history)")
    common.add_argument("-k", metavar="TEXT", default=None, help="only tests whose 'test @ where' contains TEXT")
    actions.add_parser("list", parents=[common], help="one line per test and board: runs, last median, baselines")
    compare = actions.add_parser("compare", parents=[common],
                                 help="latest run of each test against its baseline; exit 1 on a regression")
    compare.add_argument("--baseline", default=None,
                         help="named baseline (default 'last': the window of the last accepted runs)")
    compare.add_argument("--min-effect", type=float, default=None,
                         help="median slowdown that counts (default 0.05 board, 0.10 host and sim)")
    compare.add_argument("--spread-k", type=float, default=4.0,
                         help="multiple of the between-run spread that counts (default 4)")
    compare.add_argument("--window", type=int, default=10, help="accepted runs in the baseline window (default 10)")
    plot = actions.add_parser("plot", parents=[common], help="trend plot (PNG), one line per test and board")
    plot.add_argument("-o", "--output", default="latency-trend.png", help="PNG path (default latency-trend.png)")
    estimate = commands.add_parser("estimate", help="the device estimate: calibrate it from your board runs")
    steps = estimate.add_subparsers(dest="action", required=True)
    calibrate = steps.add_parser(
        "calibrate", help="per-chip latency scale from the measured / estimate ratios in the history",
        description="Read the ratios that assert_budget(target=...) recorded on boards of each chip and write "
        "the median as that chip's latency scale (with its spread and counts), which tinyml.estimate applies.")
    calibrate.add_argument("--history", default=DEFAULT_HISTORY,
                           help=f"history directory (default {DEFAULT_HISTORY}, as --tinyml-history)")
    calibrate.add_argument("--chip", action="append", default=None,
                           help="calibrate only this chip (repeatable; default: every chip with board runs)")
    calibrate.add_argument("--min-runs", type=_whole_positive, default=3, help="board runs needed per chip (default 3)")
    calibrate.add_argument("--cache-dir", default=".tinyml_cache",
                           help="write <cache-dir>/calibration.json, applied by default (as --tinyml-cache-dir)")
    calibrate.add_argument("-o", "--output", default=None,
                           help="write this file instead (apply it with tinyml.estimate(..., calibration=FILE))")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pytest-tinyml``.

    Example:
        >>> main(["history", "list", "--history", "/nonexistent"])
        no latency records in /nonexistent
        0
    """
    args = build_parser().parse_args(argv)
    if args.command == "init":
        from pytest_tinyml import scaffold

        return scaffold.main(args)
    if args.command == "estimate":
        try:
            return cmd_calibrate(args)
        except TinyMLError as exc:
            print(f"pytest-tinyml: {exc}", file=sys.stderr)
            return 2
    from pytest_tinyml.history.store import HistoryStore

    store = HistoryStore(args.history)
    handlers = {"list": cmd_list, "compare": cmd_compare, "plot": cmd_plot}
    try:
        return handlers[args.action](args, store)
    except TinyMLError as exc:
        print(f"pytest-tinyml: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
