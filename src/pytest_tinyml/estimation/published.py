"""Published latency figures the cost model is calibrated on and checked against (facts, with their source).

Each row: an ESP-NN kernel benchmark (ticks = CPU cycles for one call) or a whole-model ``invoke()`` time.
``role`` is ``"calibration"`` (used to fit a constant of :mod:`pytest_tinyml.estimation.latency`) or
``"held-out"`` (never used to fit; ``benchmarks/estimate.py`` reports the error on it).

Versions matter: ESP-NN's S3 kernels got faster between releases, so every row names the ESP-NN it was
measured with, and an end-to-end figure is predicted from the kernel table of *its* ESP-NN (``table``):
``"2022-01"`` (ESP-NN 13d77d1, the submodule esp-tflite-micro had when it published the S3 figures) or
``"v1.2.1"`` (the table of ESP-NN 1.2.1 to 1.2.3, :data:`CURRENT_TABLE`, which ``estimate()`` uses).

How the split was decided (before any error on a new row was computed): the rows of the first version of this
file kept their roles; the 2022-01 kernel table, added later, got the same split as the v1.2.1 table (per
kernel, the same shape calibrates or is held out); the S3 47 ms figure (ESP-NN 1.2.1, internal RAM), added
later, is held out. No row ever moved from held-out to calibration. The esp32c3 figure with ESP-NN was seen
(26.7% under) before the rows were version-matched; no constant is fitted on it.

Not added: ESP-NN 1.2.1's MobileNetV3-Small figures (S3: 26000 ms without, 1434 ms with ESP-NN). The README
names neither the graph nor the esp-tflite-micro wrappers used, and ESP-NN's HardSwish, Mean and broadcast-MUL
kernels were being added in the same weeks, so the op paths of that run cannot be reproduced.

Shapes are those of ESP-NN's own test (``tests/src/convolution_test.c``, ``fully_connected_test.c`` at the
table's commit) where its README abbreviates: the 3x3 convolution reads a 10x10 input (the v1.2.1 README
writes 8x8), the 5x5 depthwise has 4 channels with multiplier 8 (32 outputs), the FC row length is 271.

Example:
    >>> sorted({row["chip"] for row in MODEL_ROWS})
    ['esp32', 'esp32c3', 'esp32s3']
"""

from __future__ import annotations

CURRENT_TABLE = "v1.2.1"
TABLES = ("2022-01", CURRENT_TABLE)

ESP_NN_README = {"repo": "espressif/esp-nn", "file": "README.md", "version": "1.2.3",
                 "commit": "d45b843ca5f873ca9d0706ab0e7f14eafd132e98"}
ESP_NN_README_2022 = {"repo": "espressif/esp-nn", "file": "README.md", "version": "13d77d1 (2022-01-10)",
                      "commit": "13d77d1dc64f339ae8c58d068af3c36efd5c7f95"}
ESP_TFLITE_MICRO_README = {"repo": "espressif/esp-tflite-micro", "file": "README.md", "version": "1.4.0",
                           "commit": "99f49e1498b0984f4db54d9bf3938aceb99ad422"}
PERSON_DETECTION_MODEL = {"repo": "espressif/esp-tflite-micro",
                          "file": "examples/person_detection/main/person_detect_model_data.cc",
                          "version": "1.4.0 (unchanged since 093175d, 2021-10-19)",
                          "commit": "99f49e1498b0984f4db54d9bf3938aceb99ad422"}
SOURCES = (ESP_NN_README, ESP_NN_README_2022, ESP_TFLITE_MICRO_README, PERSON_DETECTION_MODEL)


def _kernels(table: str, source: dict, ticks: dict) -> list:
    """ESP-NN's kernel-wise table for ESP32-S3 (240 MHz), s8 kernels: ticks of the ANSI C and optimized code.

    Shapes: input h, w, channels; filter h, w; output channels (conv) or channel multiplier (depthwise); pad;
    stride. ``ticks``: row name -> (ansi, optimized, role).
    """
    shapes = {
        "conv 1x1 64->64 10x10": {"op": "CONV_2D", "key": "CONV_2D/1x1", "in": (10, 10, 64), "k": (1, 1),
                                  "out_c": 64},
        "conv 1x1 16->16 8x8": {"op": "CONV_2D", "key": "CONV_2D/1x1", "in": (8, 8, 16), "k": (1, 1), "out_c": 16},
        "conv 3x3 3->64 10x10": {"op": "CONV_2D", "in": (10, 10, 3), "k": (3, 3), "out_c": 64},
        "depthwise 3x3 x16 18x18": {"op": "DEPTHWISE_CONV_2D", "in": (18, 18, 16), "k": (3, 3), "mult": 1},
        "depthwise 5x5 4x8 12x12 pad1": {"op": "DEPTHWISE_CONV_2D", "in": (12, 12, 4), "k": (5, 5), "mult": 8,
                                         "pad": 1},
        "fully connected 271x3": {"op": "FULLY_CONNECTED", "len": 271, "out_c": 3},
    }
    rows = []
    for name, (ansi, optimized, role) in ticks.items():
        row = {"id": f"s3 {table} {name}", "chip": "esp32s3", "table": table, "pad": 0, "stride": 1, "mult": 1,
               **shapes[name], "ansi": ansi, "optimized": optimized, "role": role, "source": source}
        row.setdefault("key", row["op"])
        rows.append(row)
    return rows


OP_ROWS = _kernels("v1.2.1", ESP_NN_README, {
    "conv 1x1 64->64 10x10": (4712500, 331008, "calibration"),
    "conv 1x1 16->16 8x8": (312754, 39022, "held-out"),
    "conv 3x3 3->64 10x10": (2193289, 394842, "calibration"),
    "depthwise 3x3 x16 18x18": (1159831, 184176, "calibration"),
    "depthwise 5x5 4x8 12x12 pad1": (1671363, 372435, "held-out"),
    "fully connected 271x3": (8443, 1078, "calibration"),
}) + _kernels("2022-01", ESP_NN_README_2022, {
    "conv 1x1 64->64 10x10": (4663012, 428675, "calibration"),
    "conv 1x1 16->16 8x8": (301014, 32433, "held-out"),
    "conv 3x3 3->64 10x10": (2115418, 1020923, "calibration"),
    "depthwise 3x3 x16 18x18": (1190062, 203278, "calibration"),
    "depthwise 5x5 4x8 12x12 pad1": (837072, 182335, "held-out"),
    "fully connected 271x3": (15853, 9547, "calibration"),
})


def _valid_taps(size: int, window: int, pad: int) -> int:
    """Window taps inside the input along one axis (stride 1): what a pooling kernel reads."""
    return sum(min(size, o - pad + window) - max(0, o - pad) for o in range(size + 2 * pad - window + 1))


# The same tables' non-MAC kernels, per element of ``work``: output elements for elementwise add/mul (1615,
# ``basic_math_test.c``) and softmax (8x32, ``softmax_test.c``); window taps read for pooling (16x16x16,
# 3x3 window, stride 1, pad 1, ``pooling_test.c``). Each op's only row per table: all calibration.
_POOL_TAPS = _valid_taps(16, 3, 1) ** 2 * 16
ELEMENT_ROWS = [
    {"id": f"s3 {table} {name}", "chip": "esp32s3", "table": table, "op": op, "work": work, "ansi": ansi,
     "optimized": optimized, "role": "calibration", "source": source}
    for table, source, rows in (
        ("v1.2.1", ESP_NN_README, [("elementwise add 1615", "ADD", 1615, 281337, 74440),
                                   ("elementwise mul 1615", "MUL", 1615, 122703, 35002),
                                   ("max pool 3x3 16x16x16", "MAX_POOL_2D", _POOL_TAPS, 376294, 48069),
                                   ("avg pool 3x3 16x16x16", "AVERAGE_POOL_2D", _POOL_TAPS, 427293, 118052),
                                   ("softmax 8x32", "SOFTMAX", 256, 15209, 11107)]),
        ("2022-01", ESP_NN_README_2022, [("elementwise add 1615", "ADD", 1615, 320397, 87119),
                                         ("elementwise mul 1615", "MUL", 1615, 125958, 44239),
                                         ("max pool 3x3 16x16x16", "MAX_POOL_2D", _POOL_TAPS, 485714, 76747),
                                         ("avg pool 3x3 16x16x16", "AVERAGE_POOL_2D", _POOL_TAPS, 541462, 160580)]))
    for name, op, work, ansi, optimized in rows
]

# invoke() of the person-detection example (int8 MobileNet v1 0.25, 96x96x1). ``table``: the ESP-NN kernel
# table of the ESP-NN the figure was measured with (esp-tflite-micro's esp-nn submodule when it published the
# row: 13d77d1 for the S3 figures, b219491 for esp32/esp32c3, whose README carries the same 2022-01 table).
# The 47 ms row: ESP-NN 1.2.1's README note "Person detection on ESP32-S3 with internal RAM: 47ms".
MODEL_ROWS = [
    {"id": "person detection esp32s3 reference", "chip": "esp32s3", "mhz": 240, "esp_nn": False, "ms": 2300,
     "table": "2022-01", "role": "calibration", "source": ESP_TFLITE_MICRO_README},
    {"id": "person detection esp32s3 esp-nn", "chip": "esp32s3", "mhz": 240, "esp_nn": True, "ms": 54,
     "table": "2022-01", "role": "held-out", "source": ESP_TFLITE_MICRO_README},
    {"id": "person detection esp32s3 esp-nn 1.2.1", "chip": "esp32s3", "mhz": 240, "esp_nn": True, "ms": 47,
     "table": "v1.2.1", "role": "held-out", "source": ESP_NN_README},
    {"id": "person detection esp32 reference", "chip": "esp32", "mhz": 240, "esp_nn": False, "ms": 4084,
     "table": "2022-01", "role": "calibration", "source": ESP_TFLITE_MICRO_README},
    {"id": "person detection esp32 esp-nn", "chip": "esp32", "mhz": 240, "esp_nn": True, "ms": 380,
     "table": "2022-01", "role": "calibration", "source": ESP_TFLITE_MICRO_README},
    {"id": "person detection esp32c3 reference", "chip": "esp32c3", "mhz": 160, "esp_nn": False, "ms": 3355,
     "table": "2022-01", "role": "calibration", "source": ESP_TFLITE_MICRO_README},
    {"id": "person detection esp32c3 esp-nn", "chip": "esp32c3", "mhz": 160, "esp_nn": True, "ms": 426,
     "table": "2022-01", "role": "held-out", "source": ESP_TFLITE_MICRO_README},
]

# The person-detection graph (kernel key, MACs, work elements: latency.work_elements), read by analyze.read_ops from the example's
# own model (PERSON_DETECTION_MODEL: the C array written out as a .tflite outside this repository). Keys as
# estimate() gives them on esp32s3: CONV_2D/1x1 is ESP-NN's 1x1 convolution over a multiple of 8 channels.
# The first op is a depthwise conv (1 channel, multiplier 8, stride 2); the classifier is a 1x1 conv.
PERSON_DETECTION_OPS = [
    ("DEPTHWISE_CONV_2D", 165888, 18432),
    ("DEPTHWISE_CONV_2D", 165888, 18432),
    ("CONV_2D/1x1", 294912, 36864),
    ("DEPTHWISE_CONV_2D", 82944, 9216),
    ("CONV_2D/1x1", 294912, 18432),
    ("DEPTHWISE_CONV_2D", 165888, 18432),
    ("CONV_2D/1x1", 589824, 18432),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 294912, 9216),
    ("DEPTHWISE_CONV_2D", 82944, 9216),
    ("CONV_2D/1x1", 589824, 9216),
    ("DEPTHWISE_CONV_2D", 20736, 2304),
    ("CONV_2D/1x1", 294912, 4608),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 589824, 4608),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 589824, 4608),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 589824, 4608),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 589824, 4608),
    ("DEPTHWISE_CONV_2D", 41472, 4608),
    ("CONV_2D/1x1", 589824, 4608),
    ("DEPTHWISE_CONV_2D", 10368, 1152),
    ("CONV_2D/1x1", 294912, 2304),
    ("DEPTHWISE_CONV_2D", 20736, 2304),
    ("CONV_2D/1x1", 589824, 2304),
    ("AVERAGE_POOL_2D", 0, 2304),
    ("CONV_2D/1x1", 512, 2),
    ("RESHAPE", 0, 2),
    ("SOFTMAX", 0, 2),
]
