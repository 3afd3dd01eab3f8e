"""Published latency figures the cost model is calibrated on and checked against (facts, with their source).

Each row: an ESP-NN kernel benchmark (ticks = CPU cycles for one call) or a whole-model ``invoke()`` time.
``role`` is ``"calibration"`` (used to fit a constant of :mod:`pytest_tinyml.estimation.latency`) or
``"held-out"`` (never used to fit; ``benchmarks/estimate.py`` reports the error on it).

Example:
    >>> sorted({row["chip"] for row in MODEL_ROWS})
    ['esp32', 'esp32c3', 'esp32s3']
"""

from __future__ import annotations

ESP_NN_README = {"repo": "espressif/esp-nn", "file": "README.md", "version": "1.2.3",
                 "commit": "d45b843ca5f873ca9d0706ab0e7f14eafd132e98"}
ESP_TFLITE_MICRO_README = {"repo": "espressif/esp-tflite-micro", "file": "README.md", "version": "1.4.0",
                           "commit": "99f49e1498b0984f4db54d9bf3938aceb99ad422"}

# ESP-NN"s kernel-wise table for ESP32-S3 (240 MHz), s8 kernels: ticks of the ANSI C and optimized versions.
# Shapes: input h, w, channels; filter h, w; output channels (conv) or channel multiplier (depthwise); pad; stride.
OP_ROWS = [
    {"id": "s3 conv 1x1 64->64 10x10", "chip": "esp32s3", "op": "CONV_2D", "key": "CONV_2D/1x1", "in": (10, 10, 64), "k": (1, 1),
     "out_c": 64, "pad": 0, "stride": 1, "ansi": 4712500, "optimized": 331008, "role": "calibration"},
    {"id": "s3 conv 1x1 16->16 8x8", "chip": "esp32s3", "op": "CONV_2D", "key": "CONV_2D/1x1", "in": (8, 8, 16), "k": (1, 1),
     "out_c": 16, "pad": 0, "stride": 1, "ansi": 312754, "optimized": 39022, "role": "held-out"},
    {"id": "s3 conv 3x3 3->64 8x8", "chip": "esp32s3", "op": "CONV_2D", "in": (8, 8, 3), "k": (3, 3),
     "out_c": 64, "pad": 0, "stride": 1, "ansi": 2193289, "optimized": 394842, "role": "calibration"},
    {"id": "s3 depthwise 3x3 x16 18x18", "chip": "esp32s3", "op": "DEPTHWISE_CONV_2D", "in": (18, 18, 16),
     "k": (3, 3), "out_c": 16, "pad": 0, "stride": 1, "ansi": 1159831, "optimized": 184176, "role": "calibration"},
    {"id": "s3 depthwise 5x5 4->8 12x12 pad1", "chip": "esp32s3", "op": "DEPTHWISE_CONV_2D", "in": (12, 12, 4),
     "k": (5, 5), "out_c": 8, "pad": 1, "stride": 1, "ansi": 1671363, "optimized": 372435, "role": "held-out"},
    {"id": "s3 fully connected 271x3", "chip": "esp32s3", "op": "FULLY_CONNECTED", "len": 271, "out_c": 3,
     "ansi": 8443, "optimized": 1078, "role": "calibration"},
]
for _row in OP_ROWS:
    _row["source"] = ESP_NN_README
    _row.setdefault("key", _row["op"])

# invoke() of the person-detection example (int8 MobileNet v1 0.25, 96x96x1), internal memory.
MODEL_ROWS = [
    {"id": "person detection esp32s3 reference", "chip": "esp32s3", "mhz": 240, "esp_nn": False, "ms": 2300, "role": "calibration"},
    {"id": "person detection esp32s3 esp-nn", "chip": "esp32s3", "mhz": 240, "esp_nn": True, "ms": 54, "role": "held-out"},
    {"id": "person detection esp32 reference", "chip": "esp32", "mhz": 240, "esp_nn": False, "ms": 4084, "role": "calibration"},
    {"id": "person detection esp32 esp-nn", "chip": "esp32", "mhz": 240, "esp_nn": True, "ms": 380, "role": "calibration"},
    {"id": "person detection esp32c3 reference", "chip": "esp32c3", "mhz": 160, "esp_nn": False, "ms": 3355, "role": "calibration"},
    {"id": "person detection esp32c3 esp-nn", "chip": "esp32c3", "mhz": 160, "esp_nn": True, "ms": 426, "role": "held-out"},
]
for _row in MODEL_ROWS:
    _row["source"] = ESP_TFLITE_MICRO_README

# The person-detection graph as pytest-tinyml reads it (kernel key, MACs, output elements;
# CONV_2D/1x1: a 1x1 convolution over a multiple of 8 input channels): the zoo's vww_mobilenet_v1
# built at 96x96x1 with 2 classes and converted to int8 (the example"s architecture), read by analyze.read_ops.
PERSON_DETECTION_OPS = [
    ("CONV_2D", 165888, 18432),
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
    ("AVERAGE_POOL_2D", 0, 256),
    ("SHAPE", 0, 4),
    ("STRIDED_SLICE", 0, 1),
    ("PACK", 0, 2),
    ("RESHAPE", 0, 256),
    ("FULLY_CONNECTED", 512, 2),
    ("SOFTMAX", 0, 2),
]
