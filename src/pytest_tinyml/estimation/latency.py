"""A per-operator latency model for Espressif chips, calibrated on published measurements.

``cycles(op) = OVERHEAD_CYCLES + cycles_per_mac[chip][path][op] * MACs`` for the MAC operators (conv,
depthwise conv, fully connected), ``OVERHEAD_CYCLES + cycles_per_element[chip][path][op] * work elements``
for the others (:func:`work_elements`); ``path`` is where the op runs on that chip
(:func:`pytest_tinyml.espnn.esp_nn_paths`: ESP-NN optimized, ESP-NN plain C, TFLM reference).

Where each constant comes from (:func:`calibration`, only rows of :mod:`pytest_tinyml.estimation.published`
marked ``calibration``, per ESP-NN kernel table):

* esp32s3, ESP-NN optimized and plain C: ESP-NN's S3 kernel tables (cycles per MAC; per element for add,
  mul, pooling, softmax);
* TFLM reference kernels: one cycles-per-MAC per chip from the person-detection example without ESP-NN; the
  non-MAC ops off the S3 take the S3's ANSI C figure scaled by that chip's reference speed;
* esp32 ESP-NN (generic optimized C): one constant fitted on the esp32 example with ESP-NN; the esp32c3 takes
  it times its reference speed relative to esp32's (an assumption: the esp32c3's own figure is held out);
* assumed, not fitted: :data:`OVERHEAD_CYCLES` and :data:`ELEMENT_CYCLES`.

Known limits, from the sources: the esp32/esp32c3 ESP-NN constants are of ESP-NN 2022-05 (b219491, the only
published figures for those chips); ESP-NN's conv and depthwise benchmarks kept their data in external RAM,
the person-detection runs in internal RAM, and no published figure separates the two on one kernel, so no
memory term is modelled; every held-out end-to-end figure is predicted low, likely from per-output costs of
small-channel layers that one calibrated shape per kernel cannot fit (the held-out 16-channel 1x1 rows are
47-66% low).

An end-to-end figure is predicted with the kernels of the ESP-NN it was measured with; ``estimate()`` uses
:data:`~pytest_tinyml.estimation.published.CURRENT_TABLE`. The ``held-out`` rows are never used to fit;
:func:`comparison` (printed by ``benchmarks/estimate.py``) gives the error on every row.

Example:
    >>> round(calibration()["esp32s3"]["esp-nn optimized"]["CONV_2D/1x1"], 2)
    0.81
"""

from __future__ import annotations

from functools import lru_cache

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.espnn import KERNELS, OPTIMIZED, PLAIN_C, REFERENCE, RULES
from pytest_tinyml.estimation import published

CHIP_MHZ = {"esp32": 240, "esp32s3": 240, "esp32c3": 160}
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
POOL_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D")
# Assumed, not fitted (no published figure isolates them): the interpreter's per-op dispatch with a kernel's
# fixed set-up, and the cost per output element of a non-MAC op ESP-NN has no benchmark for (RESHAPE, MEAN,
# LOGISTIC, ...; on esp32s3 cycles, scaled to the other chips like the reference kernels). In the
# person-detection graph both together are 0.3% of the time, so the published figures cannot check them.
OVERHEAD_CYCLES = 1000
ELEMENT_CYCLES = 20
# The estimate's range is latency * RANGE, multipliers sized on the held-out end-to-end figures (comparison()):
# their published / estimated ratios are 1.09 to 1.36 (the worst: esp32c3 with ESP-NN, 26.7% low), so 1.40 above;
# 0.70 below is the first model's width, kept: no held-out figure is predicted high, none to size it on.
# tests/test_estimate.py checks every held-out figure lies inside. Issue 18's target (25%) is not met on esp32c3.
RANGE = (0.70, 1.40)


def _op_row_macs(row: dict) -> tuple[int, int]:
    """(MACs, output elements) of an ESP-NN benchmark row.

    Example:
        >>> _op_row_macs({"op": "DEPTHWISE_CONV_2D", "in": (12, 12, 4), "k": (5, 5), "mult": 8, "pad": 1, "stride": 1})
        (80000, 3200)
    """
    if row["op"] == "FULLY_CONNECTED":
        return row["len"] * row["out_c"], row["out_c"]
    h, w, channels = row["in"]
    kh, kw = row["k"]
    oh = (h + 2 * row["pad"] - kh) // row["stride"] + 1
    ow = (w + 2 * row["pad"] - kw) // row["stride"] + 1
    if row["op"] == "DEPTHWISE_CONV_2D":  # one filter tap per output channel (channels x multiplier)
        out_c, per_output = channels * row.get("mult", 1), kh * kw
    else:
        out_c, per_output = row["out_c"], kh * kw * channels
    return oh * ow * out_c * per_output, oh * ow * out_c


def _base(key: str) -> str:
    return key.split("/")[0]


def _per_mac(table: dict, path: str, key: str):
    """cycles per MAC of ``key`` on ``path`` (a variant such as ``CONV_2D/1x1`` falls back to its op)."""
    per_path = table.get(path, {})
    return per_path.get(key, per_path.get(_base(key)))


def _default_path(key: str, chip: str, esp_nn: bool) -> str:
    """The path of the person-detection example's ops (int8, no dilation, 256 channels at the pool): as
    espnn's rules give them (an op esp-tflite-micro wraps calls the chip's ESP-NN function)."""
    op = _base(key)
    if not esp_nn or op not in RULES:
        return REFERENCE
    return PLAIN_C if KERNELS[chip][op].endswith("_ansi") else OPTIMIZED


def work_elements(op: str, input_elements: int, output_elements: int) -> int:
    """The element count a non-MAC op's cost is per: input elements for pooling (each read once: exact for
    windows that do not overlap, low for overlapping ones), output elements for the rest.

    Example:
        >>> work_elements("AVERAGE_POOL_2D", 2304, 256), work_elements("ADD", 1024, 1024)
        (2304, 1024)
    """
    return max(input_elements, output_elements) if op in POOL_OPS else output_elements


def _element_rate(fitted: dict, op: str, chip: str, path: str) -> float:
    """cycles per work element of a non-MAC op: ESP-NN's S3 optimized kernel where it runs, else ESP-NN's
    ANSI C figure (TFLM's reference kernels do the same per-element arithmetic: an assumption) scaled to the
    chip, else the assumed :data:`ELEMENT_CYCLES` scaled to the chip."""
    rates = fitted["elements"].get(op)
    if rates is not None and chip == "esp32s3" and path == OPTIMIZED:
        return rates["optimized"]
    return fitted["scale"] * (rates["ansi"] if rates is not None else ELEMENT_CYCLES)


def _graph_cycles(ops, chip: str, fitted: dict, esp_nn: bool, unknown: str | None = None) -> tuple[float, float, float]:
    """(cycles known from ``fitted``, cycles of the non-MAC ops at ``scale`` 1, MACs of the ops on path
    ``unknown`` whose constant is being solved)."""
    known = 0.0
    elements_at_unit_scale = 0.0
    free_macs = 0.0
    for key, macs, elements in ops:
        path = _default_path(key, chip, esp_nn)
        known += OVERHEAD_CYCLES
        if _base(key) not in MAC_OPS:
            elements_at_unit_scale += _element_rate({**fitted, "scale": 1.0}, key, chip, path) * elements
        elif path == unknown:
            free_macs += macs
        else:
            known += _per_mac(fitted, path, key) * macs
    return known, elements_at_unit_scale, free_macs


def calibration_rows() -> tuple[list, list]:
    """(kernel rows, end-to-end rows) the calibration may read: the ``calibration`` rows, nothing else.

    Example:
        >>> {row["role"] for rows in calibration_rows() for row in rows}
        {'calibration'}
    """
    return ([r for r in published.OP_ROWS + published.ELEMENT_ROWS if r["role"] == "calibration"],
            [r for r in published.MODEL_ROWS if r["role"] == "calibration"])


@lru_cache(maxsize=len(published.TABLES))
def calibration(table: str = published.CURRENT_TABLE) -> dict:
    """cycles per MAC by chip, path and op, fitted on the calibration rows only, with ESP-NN kernel ``table``.

    Example:
        >>> sorted(calibration())
        ['esp32', 'esp32c3', 'esp32s3']
    """
    if table not in published.TABLES:
        raise ConfigError(f"no ESP-NN kernel table {table!r}: choose one of {published.TABLES} (estimation.published)")
    op_rows, model_rows = calibration_rows()
    ops = published.PERSON_DETECTION_OPS
    rows = {r["id"]: r for r in model_rows}
    fitted: dict = {chip: {OPTIMIZED: {}, PLAIN_C: {}, REFERENCE: {}, "elements": {}, "scale": 1.0}
                    for chip in CHIP_MHZ}
    s3 = fitted["esp32s3"]
    for row in op_rows:
        if row["table"] != table:
            continue
        if "work" in row:  # a non-MAC kernel: cycles per work element, ANSI C and optimized
            s3["elements"][row["op"]] = {"ansi": row["ansi"] / row["work"], "optimized": row["optimized"] / row["work"]}
            continue
        macs, _ = _op_row_macs(row)
        # kernel benchmarks time the kernel alone: no interpreter overhead to take off
        s3[OPTIMIZED][row["key"]] = row["optimized"] / macs
        s3[PLAIN_C].setdefault(row["op"], row["ansi"] / macs)
    for chip in CHIP_MHZ:
        fitted[chip]["elements"] = s3["elements"]
    # TFLM reference kernels: one constant per chip from the example without ESP-NN. Off the S3, the non-MAC
    # ops scale with it (scale = reference cycles per MAC / the S3's), so solve both at once.
    def reference_cycles(chip):
        row = rows[f"person detection {chip} reference"]
        known, elements, macs = _graph_cycles(ops, chip, fitted[chip], False, unknown=REFERENCE)
        return row["ms"] * row["mhz"] * 1000 - known, elements, macs

    total, elements, macs = reference_cycles("esp32s3")
    s3_per_mac = (total - elements) / macs
    for chip in CHIP_MHZ:
        total, elements, macs = reference_cycles(chip)
        per_mac = s3_per_mac if chip == "esp32s3" else total / (macs + elements / s3_per_mac)
        fitted[chip][REFERENCE] = dict.fromkeys(MAC_OPS, per_mac)
        fitted[chip]["scale"] = per_mac / s3_per_mac
    # ESP-NN's plain C elsewhere: S3's figure scaled by the chip's reference speed.
    for chip in ("esp32", "esp32c3"):
        fitted[chip][PLAIN_C] = {op: v * fitted[chip]["scale"] for op, v in s3[PLAIN_C].items()}
    # ESP-NN's generic optimized C (esp32, esp32c3): fitted on the esp32 example with ESP-NN; the esp32c3
    # gets esp32's optimized/reference ratio (its own figure is held out).
    row = rows["person detection esp32 esp-nn"]
    known, elements, free = _graph_cycles(ops, "esp32", fitted["esp32"], True, unknown=OPTIMIZED)
    per_mac = (row["ms"] * row["mhz"] * 1000 - known - elements * fitted["esp32"]["scale"]) / free
    fitted["esp32"][OPTIMIZED] = dict.fromkeys(("CONV_2D", "DEPTHWISE_CONV_2D"), per_mac)
    ratio = fitted["esp32c3"][REFERENCE]["CONV_2D"] / fitted["esp32"][REFERENCE]["CONV_2D"]
    fitted["esp32c3"][OPTIMIZED] = {op: v * ratio for op, v in fitted["esp32"][OPTIMIZED].items()}
    return fitted


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """12 hex digits naming this latency model (its fitted constants and assumed costs): a board's measured /
    estimate ratio calibrates only the model it was taken against (:mod:`pytest_tinyml.estimation.calibration`).

    Example:
        >>> len(fingerprint())
        12
    """
    import hashlib
    import json

    constants = {"fitted": calibration(), "overhead": OVERHEAD_CYCLES, "element": ELEMENT_CYCLES, "mhz": CHIP_MHZ}
    return hashlib.sha256(json.dumps(constants, sort_keys=True, default=repr).encode()).hexdigest()[:12]


def op_cycles(key: str, macs: int, elements: int, chip: str, path: str,
              table: str = published.CURRENT_TABLE) -> float:
    """Estimated CPU cycles of one operator (``key``: its op name, or a kernel variant as ``CONV_2D/1x1``;
    ``elements``: :func:`work_elements`).

    Example:
        >>> op_cycles("RESHAPE", 0, 10, "esp32s3", REFERENCE)
        1200.0
    """
    if _base(key) in MAC_OPS and macs:
        fitted = calibration(table)[chip]
        per_mac = _per_mac(fitted, path, key)
        if per_mac is None:  # e.g. FC optimized on a generic chip: ESP-NN's plain C, or the reference kernel
            per_mac = _per_mac(fitted, PLAIN_C, key) or _per_mac(fitted, REFERENCE, key)
        return OVERHEAD_CYCLES + per_mac * macs
    return OVERHEAD_CYCLES + _element_rate(calibration(table)[chip], _base(key), chip, path) * elements


def graph_ms(ops, chip: str, mhz: float, esp_nn: bool = True, table: str = published.CURRENT_TABLE) -> float:
    """Milliseconds of a graph given as (op, MACs, output elements), with the example's kernel paths and the
    ESP-NN kernel ``table``.

    Example:
        >>> round(graph_ms(published.PERSON_DETECTION_OPS, "esp32s3", 240, esp_nn=False))
        2300
    """
    cycles = sum(op_cycles(key, m, e, chip, _default_path(key, chip, esp_nn), table) for key, m, e in ops)
    return cycles / (mhz * 1000)


def _ansi_fitted() -> set:
    """ids of the kernel rows whose ANSI C column :func:`calibration` fits (the first calibration row per op)."""
    first: dict = {}
    for row in calibration_rows()[0]:
        if "work" not in row:
            first.setdefault((row["table"], row["op"]), row["id"])
    return set(first.values())


def comparison() -> list:
    """Predicted vs published for every published figure: dicts with ``kind`` (kernel/model), ``id``, ``table``,
    ``published``, ``predicted``, ``unit``, ``error`` (signed fraction) and ``role``. What
    ``benchmarks/estimate.py`` prints and the tests check the band against.

    Example:
        >>> worst = max((r for r in comparison() if r["role"] == "held-out" and r["kind"] == "model"),
        ...             key=lambda r: abs(r["error"]))
        >>> RANGE[0] <= worst["published"] / worst["predicted"] <= RANGE[1]
        True
    """
    out = []
    fitted_ansi = _ansi_fitted()
    for row in published.OP_ROWS:
        macs, elements = _op_row_macs(row)
        for column, path in (("optimized", OPTIMIZED), ("ansi", PLAIN_C)):
            # kernel ticks carry no interpreter overhead
            predicted = op_cycles(row["key"], macs, elements, row["chip"], path, row["table"]) - OVERHEAD_CYCLES
            role = row["role"] if column == "optimized" else (
                "calibration" if row["id"] in fitted_ansi else "held-out")
            out.append({"kind": "kernel", "id": f"{row['id']} [{column}]", "table": row["table"],
                        "published": row[column], "predicted": predicted, "unit": "ticks", "role": role})
    for row in published.ELEMENT_ROWS:
        for column, path in (("optimized", OPTIMIZED), ("ansi", PLAIN_C)):
            predicted = op_cycles(row["op"], 0, row["work"], row["chip"], path, row["table"]) - OVERHEAD_CYCLES
            out.append({"kind": "kernel", "id": f"{row['id']} [{column}]", "table": row["table"],
                        "published": row[column], "predicted": predicted, "unit": "ticks", "role": row["role"]})
    for row in published.MODEL_ROWS:
        predicted = graph_ms(published.PERSON_DETECTION_OPS, row["chip"], row["mhz"], row["esp_nn"], row["table"])
        out.append({"kind": "model", "id": row["id"], "table": row["table"], "published": row["ms"],
                    "predicted": predicted, "unit": "ms", "role": row["role"]})
    for r in out:
        r["error"] = (r["predicted"] - r["published"]) / r["published"]
    return out
