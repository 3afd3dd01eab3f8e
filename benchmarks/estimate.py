"""How good the latency estimate is: predicted vs published, for every published figure the model knows.

Run: ``.venv/bin/python benchmarks/estimate.py``

Rows come from :mod:`pytest_tinyml.estimation.published` (ESP-NN's kernel tables for ESP32-S3, two versions,
and the person-detection ``invoke()`` times of esp-tflite-micro's and ESP-NN's READMEs, with and without
ESP-NN); each is predicted with the ESP-NN kernel table of its version (``table`` column).
``calibration`` rows fitted a constant of the cost model (their error is small by construction);
``HELD-OUT`` rows were never used to fit. The last lines give the worst error over the held-out rows,
end-to-end and per kernel, next to the estimate's band. The numbers are ``latency.comparison()``, the function
the tests check the band against. No TensorFlow, no board: the cost model is pure arithmetic on the shapes.
"""

from __future__ import annotations

from pytest_tinyml.estimation import latency, published


def main() -> None:
    rows = latency.comparison()
    width = max(len(r["id"]) for r in rows) + 2
    print(f"{'figure':<{width}}{'table':>8}{'published':>13}{'predicted':>13}{'error':>9}  role")
    worst: dict = {}
    for r in rows:
        unit = r["unit"][:2]
        mark = "HELD-OUT" if r["role"] == "held-out" else "calibration"
        print(f"{r['id']:<{width}}{r['table']:>8}{r['published']:>11,.0f}{unit:>2}{r['predicted']:>11,.0f}{unit:>2}"
              f"{r['error']:>+9.1%}  {mark}")
        if r["role"] == "held-out" and abs(r["error"]) > abs(worst.get(r["kind"], {"error": 0})["error"]):
            worst[r["kind"]] = r
    for kind in ("model", "kernel"):
        if kind in worst:
            print(f"worst held-out {'end-to-end' if kind == 'model' else kind} error: {worst[kind]['error']:+.1%} "
                  f"({worst[kind]['id']})")
    ratios = [r["published"] / r["predicted"] for r in rows if r["kind"] == "model" and r["role"] == "held-out"]
    print(f"held-out published / estimate: {min(ratios):.2f} to {max(ratios):.2f}; estimate range: latency x "
          f"{latency.RANGE[0]:.2f} to {latency.RANGE[1]:.2f}; issue 18's end-to-end target: within 25%")
    for source in published.SOURCES:
        print(f"source: {source['repo']} {source['file']} {source['version']} @ {source['commit'][:12]}")


if __name__ == "__main__":
    main()
