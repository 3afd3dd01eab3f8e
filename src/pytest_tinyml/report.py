"""Figures that tinyml checks record, gathered into summary rows as plain data.

Assertions and the board call :func:`record` with named figures (model, recipe, flash_kb, ...). Inside a
pytest test they go to the test's ``user_properties`` as ``tinyml.<name>``: JUnit XML carries them, and
pytest-xdist ships them back to the controller, where :class:`Collector` regroups them per test. Outside
pytest, :func:`record` does nothing. This module imports nothing heavy.
"""

from __future__ import annotations

import json
import math
import os
from contextvars import ContextVar

from pytest_tinyml._files import write_atomic

PREFIX = "tinyml."
_current_item: ContextVar = ContextVar("tinyml_current_item", default=None)

# Columns of the terminal table: (figure name, heading, format).
COLUMNS = [
    ("model", "model", "{}"),
    ("recipe", "recipe", "{}"),
    ("flash_kb", "flash KB", "{:.1f}"),
    ("arena_kb", "arena KB", "{:.1f}"),
    ("sparsity", "sparsity", "{:.2f}"),
    ("gzip_kb", "gzip KB", "{:.1f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("roc_auc", "ROC AUC", "{:.4f}"),
    ("drop", "drop", "{:+.4f}"),
    ("top1_agreement", "top-1 agree", "{:.4f}"),
    ("max_error_steps", "max err steps", "{:.0f}"),
    ("latency_median_us", "latency us", "{:.0f}"),
    ("latency_ms", "latency ms", "{:.1f}"),
    ("estimate_latency_ms", "est. latency ms", "{:.1f}"),
    ("latency_ratio", "measured/est.", "{:.2f}"),
    ("target", "target", "{}"),
    ("where", "where", "{}"),
]


def recipe_label(recipe: str, params: dict | None) -> str:
    """The recipe as the artifact knows it: the training-time steps its params record, then the conversion.

    ``params["qat"]`` (a quantization-aware-trained source), ``params["pruning"]`` (``target_sparsity``) and
    ``params["clustering"]`` (``clusters``) are written by ``convert`` from what the optimize recipes tag on
    the models they return.

    Example:
        >>> recipe_label("int8", {"qat": True})
        'qat int8'
        >>> recipe_label("int8", {"pruning": {"target_sparsity": 0.8, "sparsity": 0.79}})
        'pruned 0.80 int8'
        >>> recipe_label("int8", {"clustering": {"clusters": 16}})
        'clustered 16 int8'
        >>> recipe_label("float32", {})
        'float32'
    """
    params = params or {}
    steps = []
    pruning = params.get("pruning")
    if isinstance(pruning, dict) and pruning.get("target_sparsity") is not None:
        steps.append(f"pruned {float(pruning['target_sparsity']):.2f}")
    clustering = params.get("clustering")
    if isinstance(clustering, dict) and clustering.get("clusters") is not None:
        steps.append(f"clustered {int(clustering['clusters'])}")
    if params.get("qat"):
        steps.append("qat")
    return " ".join([*steps, str(recipe)])


def optimization_figures(params: dict | None) -> dict:
    """``sparsity`` and ``gzip_kb`` for the summary, from an artifact's params, when its recipe knows them.

    Example:
        >>> optimization_figures({"pruning": {"sparsity": 0.8}, "gzip_size": 2048})
        {'sparsity': 0.8, 'gzip_kb': 2.0}
        >>> optimization_figures({})
        {}
    """
    params = params or {}
    figures = {}
    pruning = params.get("pruning")
    if isinstance(pruning, dict) and pruning.get("sparsity") is not None:
        figures["sparsity"] = float(pruning["sparsity"])
    if params.get("gzip_size") is not None:
        figures["gzip_kb"] = float(params["gzip_size"]) / 1024
    return figures


def set_current_item(item):
    """Called by the plugin around each test call; returns a token for :func:`reset_current_item`."""
    return _current_item.set(item)


def reset_current_item(token) -> None:
    """Undo :func:`set_current_item` with the token it returned."""
    _current_item.reset(token)


def current_item():
    """The pytest item of the running test call, or None outside one.

    Example:
        >>> current_item() is None
        True
    """
    return _current_item.get()


def plain(value):
    """JSON-safe plain value (numpy scalars become Python numbers, NaN becomes None).

    Example:
        >>> plain({"a": float("nan"), 3: (1, 2.5)})
        {'a': None, '3': [1, 2.5]}
    """
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, TypeError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def record(**figures) -> None:
    """Record figures for the running test (no-op outside pytest); a figure given as None is removed (a later
    call that has no such figure does not leave an earlier call's value beside its own). ``where`` labels the
    other figures of the call; a test whose figures come from several places gets ``where="estimate+host"``
    (in the order they were first recorded) and ``where_of``, figure -> where.

    Example:
        >>> record(model="mlp", recipe="int8", flash_kb=12.5)
    """
    item = _current_item.get()
    if item is None:
        return
    where = figures.pop("where", None)
    for name, value in figures.items():
        _put(item, PREFIX + name, value)
    # One row per test: when its figures come from more than one place (an estimate's arena beside a host
    # accuracy, a sim latency beside a device budget), ``where`` names them all ("estimate+host") and
    # ``where_of`` says which figure is from where; a single ``where`` would label the others wrongly.
    where_of = dict(next((v for k, v in item.user_properties if k == _WHERE_OF), {}))
    for name, value in figures.items():
        if value is None or where is not None:
            where_of.pop(name, None)  # re-inserted last: the order is the order the places were recorded in
        if value is not None and where is not None:
            where_of[name] = where  # a figure re-recorded without a where (the history's latency) keeps its own
    _put(item, _WHERE_OF, where_of or None)
    places = list(dict.fromkeys(where_of.values()))
    if places or where is not None:
        _put(item, PREFIX + "where", "+".join(places) if places else where)
    _put(item, PREFIX + "where_of", where_of if len(places) > 1 else None)


_WHERE_OF = "tinyml-where-of"  # figure -> where, for every figure recorded with one (not a summary column)


def _put(item, key: str, value) -> None:
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != key]
    if value is not None:
        item.user_properties.append((key, plain(value)))


class Collector:
    """Regroups recorded figures by test id, in the order tests reported. Lives on the controller."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def add(self, nodeid: str, user_properties, outcome: str) -> None:
        figures = {k[len(PREFIX):]: v for k, v in user_properties if isinstance(k, str) and k.startswith(PREFIX)}
        if not figures:
            return
        row = self.rows.setdefault(nodeid, {"test": nodeid})
        row.update(figures)
        if outcome != "passed" or row.get("outcome") in (None, "passed"):
            row["outcome"] = outcome

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headings and formatted cells; only the columns some row has."""
        used = [c for c in COLUMNS if any(c[0] in row for row in self.rows.values())]
        headings = ["test"] + [heading for _, heading, _ in used] + ["outcome"]
        cells = []
        for nodeid, row in self.rows.items():
            line = [nodeid.split("::")[-1]]
            for name, _, fmt in used:
                value = row.get(name)
                try:
                    line.append("-" if value is None else fmt.format(value))
                except (ValueError, TypeError):
                    line.append(str(value))
            line.append(row.get("outcome", ""))
            cells.append(line)
        return headings, cells

    def lines(self) -> list[str]:
        headings, cells = self.table()
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headings)]
        out = ["  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True))]
        out.append("  ".join("-" * w for w in widths))
        out.extend("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)
        return out

    def write_json(self, path: str, extra: dict | None = None) -> None:
        """Write the rows atomically (temp file + rename) so a reader never sees half a report; the file's
        mode follows the umask, like every other output."""
        payload = {"version": 1, "tests": list(self.rows.values())}
        if extra:
            payload.update(extra)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomic(path, json.dumps(payload, indent=2, sort_keys=True), prefix=".tinyml-report-")
