"""How good the latency estimate is: predicted vs published, for every published figure the model knows.

Run: ``.venv/bin/python benchmarks/estimate.py``

Rows come from :mod:`pytest_tinyml.estimation.published` (ESP-NN's kernel table for ESP32-S3 and the
person-detection ``invoke()`` times of esp-tflite-micro's README, with and without ESP-NN). ``calibration``
rows fitted a constant of the cost model (their error is small by construction); ``HELD-OUT`` rows were
never used to fit. The last lines give the worst error over the held-out rows, end-to-end and per kernel.
No TensorFlow, no board: the cost model is pure arithmetic on the published shapes.
"""

from __future__ import annotations

from pytest_tinyml.espnn import OPTIMIZED, PLAIN_C
from pytest_tinyml.estimation import latency, published


def _rows():
    # the plain C column is fitted on the first calibration row of each op (latency.calibration)
    ansi_fitted = {}
    for row in published.OP_ROWS:
        if row["role"] == "calibration":
            ansi_fitted.setdefault(row["op"], row["id"])
    for row in published.OP_ROWS:
        macs, elements = latency._op_row_macs(row)
        for column, path in (("optimized", OPTIMIZED), ("ansi", PLAIN_C)):
            # kernel ticks carry no interpreter overhead
            predicted = latency.op_cycles(row["key"], macs, elements, row["chip"], path) - latency.OVERHEAD_CYCLES
            role = row["role"] if column == "optimized" else (
                "calibration" if ansi_fitted.get(row["op"]) == row["id"] else "held-out")
            yield "kernel", f"{row['id']} [{column}]", row[column], predicted, "ticks", role
    for row in published.MODEL_ROWS:
        predicted = latency.graph_ms(published.PERSON_DETECTION_OPS, row["chip"], row["mhz"], row["esp_nn"])
        yield "model", row["id"], row["ms"], predicted, "ms", row["role"]


def main() -> None:
    worst: dict = {}
    print(f"{'figure':<48}{'published':>12}{'predicted':>12}{'error':>9}  role")
    for kind, name, published_value, predicted, unit, role in _rows():
        error = (predicted - published_value) / published_value
        mark = "HELD-OUT" if role == "held-out" else "calibration"
        print(f"{name:<48}{published_value:>10,.0f}{unit[:2]:>2}{predicted:>10,.0f}{unit[:2]:>2}{error:>+9.1%}  {mark}")
        if role == "held-out" and abs(error) > abs(worst.get(kind, (0, ""))[0]):
            worst[kind] = (error, name)
    for kind, (error, name) in worst.items():
        print(f"worst held-out {kind} error: {error:+.1%} ({name})")
    print(f"estimate range: latency x (1 -/+ {latency.BAND:.0%}); end-to-end target 25%")
    for source in (published.ESP_NN_README, published.ESP_TFLITE_MICRO_README):
        print(f"source: {source['repo']} {source['file']} v{source['version']} @ {source['commit'][:12]}")


if __name__ == "__main__":
    main()
