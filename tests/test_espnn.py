"""The ESP-NN lint: the table pinned against the sources it was read from, and the rules on real models.

If a pin here fails, the table was edited: re-read esp-tflite-micro's tensorflow/lite/micro/kernels/esp_nn/*.cc
and esp-nn's include/esp_nn_*.h and src/*/ at the new version, update SOURCES, and change the pins together.
With TINYML_ESP_NN_GIT / TINYML_ESP_TFLITE_MICRO_GIT set to git dirs of those projects, the table is checked
against their sources at the pinned commits (skipped otherwise).
"""

from __future__ import annotations

import functools

import pytest
import runtime_models

from pytest_tinyml import espnn
from pytest_tinyml.errors import ConfigError, TinyMLAssertionError


def test_sources_are_pinned():
    assert espnn.SOURCES["esp-nn"]["commit"] == "d45b843ca5f873ca9d0706ab0e7f14eafd132e98"
    assert espnn.SOURCES["esp-nn"]["version"].startswith("1.2.3 ")
    assert espnn.SOURCES["esp-tflite-micro"]["commit"] == "99f49e1498b0984f4db54d9bf3938aceb99ad422"
    assert espnn.SOURCES["esp-tflite-micro"]["version"].startswith("1.4.0 ")


def test_kernel_table_is_pinned():
    """esp_nn.h: esp32s3 -> esp_nn_esp32s3.h, esp32p4 -> esp_nn_esp32p4.h, every other chip -> esp_nn_generic_opt.h."""
    assert espnn.CHIPS == ("esp32", "esp32s3", "esp32c3", "esp32p4")
    assert espnn.KERNELS["esp32"] is espnn.KERNELS["esp32c3"]
    assert espnn.KERNELS["esp32"] == {
        "CONV_2D": "esp_nn_conv_s8_opt",
        "DEPTHWISE_CONV_2D": "esp_nn_depthwise_conv_s8_opt",
        "FULLY_CONNECTED": "esp_nn_fully_connected_s8_ansi",
        "FULLY_CONNECTED/per-channel": "esp_nn_fully_connected_per_ch_s8_ansi",
        "ADD": "esp_nn_add_elementwise_s8_ansi",
        "MUL": "esp_nn_mul_elementwise_s8_ansi",
        "AVERAGE_POOL_2D": "esp_nn_avg_pool_s8_ansi",
        "MAX_POOL_2D": "esp_nn_max_pool_s8_ansi",
        "SOFTMAX": "esp_nn_softmax_s8_opt",
    }
    for chip in ("esp32s3", "esp32p4"):
        assert set(espnn.KERNELS[chip]) == set(espnn.KERNELS["esp32"])
        assert all(kernel.endswith("_" + chip) for kernel in espnn.KERNELS[chip].values())
    # Ops esp-tflite-micro wraps (kernels/esp_nn/*.cc); everything else is TFLM's reference kernel.
    assert sorted(espnn.RULES) == ["ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                   "MAX_POOL_2D", "MUL", "SOFTMAX"]
    assert sorted(espnn.KNOWN_BUGS) == ["esp-nn#34"]


def _small(layers, shape):
    import keras

    keras.utils.set_random_seed(runtime_models.RNG_SEED)
    model = keras.Sequential([keras.Input(shape), *layers])
    return runtime_models.artifact(runtime_models._convert(model, shape, int8=True), "small")


@functools.cache
def _fc_width_8():
    import keras

    return _small([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(8)], (64,))


@functools.cache
def _odd_channels():
    """Conv2D(6 channels) -> MaxPooling (6 channels: not a multiple of 4) -> Dense(8). (The converter lowers a
    dilated Conv2D to SPACE_TO_BATCH_ND + CONV_2D, so dilation is tested on the rule below.)"""
    import keras

    return _small([keras.layers.Conv2D(6, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                   keras.layers.Flatten(), keras.layers.Dense(8)], (12, 12, 3))


def _paths(artifact, chip):
    return [(o.op, o.path, o.kernel, o.bugs) for o in espnn.esp_nn_paths(artifact, chip).ops]


@pytest.mark.slow
def test_mlp_paths_per_chip(mlp_int8):
    # mlp_int8: per-channel FC 64->32, FC 32->10, SOFTMAX.
    assert _paths(mlp_int8, "esp32s3") == [
        ("FULLY_CONNECTED", espnn.OPTIMIZED, "esp_nn_fully_connected_per_ch_s8_esp32s3", ()),
        ("FULLY_CONNECTED", espnn.OPTIMIZED, "esp_nn_fully_connected_per_ch_s8_esp32s3", ("esp-nn#34",)),
        ("SOFTMAX", espnn.OPTIMIZED, "esp_nn_softmax_s8_esp32s3", ()),
    ]
    assert _paths(mlp_int8, "esp32p4")[1] == ("FULLY_CONNECTED", espnn.OPTIMIZED,
                                              "esp_nn_fully_connected_per_ch_s8_esp32p4", ())
    assert [p[1] for p in _paths(mlp_int8, "esp32c3")] == [espnn.PLAIN_C, espnn.PLAIN_C, espnn.OPTIMIZED]


@pytest.mark.slow
def test_odd_channel_pooling_falls_back_to_plain_c():
    plan = espnn.esp_nn_paths(_odd_channels(), "esp32s3")
    by_op = {o.op: o for o in plan.ops}
    assert by_op["CONV_2D"].path == espnn.OPTIMIZED
    assert by_op["MAX_POOL_2D"].path == espnn.PLAIN_C and by_op["MAX_POOL_2D"].kernel == "esp_nn_max_pool_s8_ansi"
    assert "6 channels" in by_op["MAX_POOL_2D"].reason
    assert by_op["RESHAPE"].path == espnn.REFERENCE


def test_float_model_runs_reference_kernels():
    artifact = runtime_models.artifact(runtime_models.mlp_float_bytes(), "mlp_float")
    assert {o.path for o in espnn.esp_nn_paths(artifact, "esp32s3").ops} == {espnn.REFERENCE}


def _op(name, inputs, outputs, **options):
    return espnn._Op(0, name, inputs, outputs, options)


I8 = "int8"


@pytest.mark.parametrize("op, chip, path, kernel", [
    (_op("CONV_2D", [((1, 8, 8, 4), I8, 1), ((8, 3, 3, 4), I8, 8)], [((1, 6, 6, 8), I8, 1)], dilation=(2, 2)),
     "esp32s3", espnn.REFERENCE, "tflm reference conv_2d"),
    (_op("CONV_2D", [((1, 8, 8, 4), I8, 1), ((8, 3, 3, 2), I8, 8)], [((1, 6, 6, 8), I8, 1)], dilation=(1, 1)),
     "esp32p4", espnn.PLAIN_C, "esp_nn_conv_s8_ansi"),
    (_op("CONV_2D", [((1, 8, 8, 4), I8, 1), ((8, 3, 3, 4), "int4", 8)], [((1, 6, 6, 8), I8, 1)]),
     "esp32s3", espnn.REFERENCE, "tflm reference conv_2d"),
    (_op("DEPTHWISE_CONV_2D", [((1, 8, 8, 3), I8, 1), ((1, 3, 3, 3), I8, 3)], [((1, 6, 6, 3), I8, 1)],
         dilation=(1, 1), depth_multiplier=1), "esp32s3", espnn.OPTIMIZED, "esp_nn_depthwise_conv_s8_opt"),
    (_op("DEPTHWISE_CONV_2D", [((1, 8, 8, 8), I8, 1), ((1, 3, 3, 8), I8, 8)], [((1, 6, 6, 8), I8, 1)],
         dilation=(1, 1), depth_multiplier=1), "esp32p4", espnn.OPTIMIZED, "esp_nn_depthwise_conv_s8_esp32p4"),
    (_op("ADD", [((1, 4, 4, 8), I8, 1), ((1, 1, 1, 8), I8, 1)], [((1, 4, 4, 8), I8, 1)]),
     "esp32s3", espnn.REFERENCE, "tflm reference add"),
    (_op("ADD", [((1, 4, 4, 8), "int16", 1), ((1, 4, 4, 8), "int16", 1)], [((1, 4, 4, 8), "int16", 1)]),
     "esp32s3", espnn.REFERENCE, "tflm reference add"),
    (_op("SOFTMAX", [((1, 10), I8, 1)], [((1, 10), "int16", 1)]), "esp32s3", espnn.REFERENCE,
     "tflm reference softmax"),
    (_op("FULLY_CONNECTED", [((1, 64), I8, 1), ((10, 64), I8, 1)], [((1, 10), I8, 1)]),
     "esp32s3", espnn.OPTIMIZED, "esp_nn_fully_connected_s8_esp32s3"),
])
def test_rules_on_shapes_models_rarely_convert_to(op, chip, path, kernel):
    result = espnn._path(op, chip)
    assert (result.path, result.kernel) == (path, kernel), result.reason
    assert not result.bugs  # per-tensor FC is not esp-nn#34


@pytest.mark.slow
def test_fast_path_assertion_passes_a_model_that_fits():
    import pytest_tinyml as tinyml

    plan = tinyml.assert_esp_nn_fast_path(_fc_width_8(), target="esp32s3")
    assert not plan.slow and not plan.bugs


@pytest.mark.slow
def test_fast_path_assertion_fails_on_the_known_bug(mlp_int8):
    import pytest_tinyml as tinyml

    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_esp_nn_fast_path(mlp_int8, target="esp32s3")
    text = str(failure.value)
    assert "hit a known ESP-NN bug" in text and "esp-nn#34" in text
    assert "multiple of 8" in text


@pytest.mark.slow
def test_fast_path_assertion_fails_on_plain_c_and_allow_lets_it_pass():
    import pytest_tinyml as tinyml

    with pytest.raises(TinyMLAssertionError, match=r"2 op\(s\) miss ESP-NN's fast path on esp32"):
        tinyml.assert_esp_nn_fast_path(_fc_width_8(), target="esp32")
    tinyml.assert_esp_nn_fast_path(_fc_width_8(), target="esp32", allow=("FULLY_CONNECTED",))


@pytest.mark.slow
def test_fast_path_assertion_fails_on_a_plain_c_fallback():
    import pytest_tinyml as tinyml

    with pytest.raises(TinyMLAssertionError) as failure:
        tinyml.assert_esp_nn_fast_path(_odd_channels(), target="esp32s3")
    assert "MAX_POOL_2D" in str(failure.value) and "esp-nn plain C" in str(failure.value)


def test_bad_arguments_are_config_errors(mlp_int8):
    import pytest_tinyml as tinyml

    with pytest.raises(ConfigError, match="unknown ESP-NN target 'esp8266'"):
        espnn.esp_nn_paths(mlp_int8, "esp8266")
    with pytest.raises(ConfigError, match="allow= names ops ESP-NN does not wrap"):
        tinyml.assert_esp_nn_fast_path(mlp_int8, allow=("RESHAPE",))


def _git_show(variable: str, project: str, path: str) -> str:
    """``path`` at the pinned commit of a local clone named by ``variable`` (skips when it is not set)."""
    import os
    import subprocess

    git_dir = os.environ.get(variable)
    if not git_dir:
        pytest.skip(f"set {variable} to a clone of {espnn.SOURCES[project]['repo']} to check the table against it")
    commit = espnn.SOURCES[project]["commit"]
    out = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _defines(header: str) -> dict:
    import re

    return dict(re.findall(r"^#define\s+(esp_nn_\w+)\s+(esp_nn_\w+)\s*$", header, flags=re.M))


_ESP_NN_NAMES = {"CONV_2D": "esp_nn_conv_s8", "DEPTHWISE_CONV_2D": "esp_nn_depthwise_conv_s8",
                 "FULLY_CONNECTED": "esp_nn_fully_connected_s8",
                 "FULLY_CONNECTED/per-channel": "esp_nn_fully_connected_per_ch_s8",
                 "ADD": "esp_nn_add_elementwise_s8", "MUL": "esp_nn_mul_elementwise_s8",
                 "AVERAGE_POOL_2D": "esp_nn_avg_pool_s8", "MAX_POOL_2D": "esp_nn_max_pool_s8",
                 "SOFTMAX": "esp_nn_softmax_s8"}


@pytest.mark.parametrize("chip, header", [("esp32s3", "include/esp_nn_esp32s3.h"), ("esp32p4", "include/esp_nn_esp32p4.h"),
                                          ("esp32", "include/esp_nn_generic_opt.h"),
                                          ("esp32c3", "include/esp_nn_generic_opt.h")])
def test_kernel_table_matches_esp_nn_headers(chip, header):
    """Each chip's function is the one esp-nn's per-chip header #defines (TINYML_ESP_NN_GIT=<git dir>)."""
    defines = _defines(_git_show("TINYML_ESP_NN_GIT", "esp-nn", header))
    assert {op: defines[name] for op, name in _ESP_NN_NAMES.items()} == espnn.KERNELS[chip]
    version = _git_show("TINYML_ESP_NN_GIT", "esp-nn", "idf_component.yml")
    assert f'version: "{espnn.SOURCES["esp-nn"]["version"].split()[0]}"' in version


def test_wrapped_ops_match_esp_tflite_micro_kernels():
    """The ops esp-tflite-micro hands to ESP-NN are its kernels/esp_nn/*.cc (TINYML_ESP_TFLITE_MICRO_GIT=<git dir>)."""
    files = {"ADD": "add", "CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise_conv",
             "FULLY_CONNECTED": "fully_connected", "MUL": "mul", "AVERAGE_POOL_2D": "pooling",
             "MAX_POOL_2D": "pooling", "SOFTMAX": "softmax"}
    assert sorted(files) == sorted(espnn.RULES)
    for op, stem in files.items():
        source = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro",
                           f"tensorflow/lite/micro/kernels/esp_nn/{stem}.cc")
        calls = {"AVERAGE_POOL_2D": "esp_nn_avg_pool_s8(", "MAX_POOL_2D": "esp_nn_max_pool_s8("}
        assert calls.get(op, _ESP_NN_NAMES[op] + "(") in source, (op, stem)
    pooling = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro", "tensorflow/lite/micro/kernels/esp_nn/pooling.cc")
    assert "depth % 4 == 0" in pooling and "esp_nn_max_pool_s8_ansi(" in pooling
    fc = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro", "tensorflow/lite/micro/kernels/esp_nn/fully_connected.cc")
    assert "esp_nn_fully_connected_per_ch_s8(" in fc and "data.is_per_channel" in fc
    version = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro", "idf_component.yml")
    assert f'version: "{espnn.SOURCES["esp-tflite-micro"]["version"].split()[0]}"' in version


def test_scratch_rules_match_the_sources():
    """Which wrappers request scratch (esp-tflite-micro) and which size function each chip's header picks
    (esp-nn): conv, depthwise conv and softmax ask; the generic C size functions for conv and depthwise
    return 0 (TINYML_ESP_NN_GIT and TINYML_ESP_TFLITE_MICRO_GIT=<git dirs>)."""
    import re

    for stem in ("add", "conv", "depthwise_conv", "fully_connected", "mul", "pooling", "softmax"):
        source = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro", f"tensorflow/lite/micro/kernels/esp_nn/{stem}.cc")
        asks = set(re.findall(r"esp_nn_get_(\w+?)_scratch_size\(", source))
        assert asks == ({"conv": {"conv"}, "depthwise_conv": {"depthwise_conv"}, "softmax": {"softmax"}}.get(stem, set()))
    softmax = _git_show("TINYML_ESP_TFLITE_MICRO_GIT", "esp-tflite-micro", "tensorflow/lite/micro/kernels/esp_nn/softmax.cc")
    assert "input_width = input->dims->data[1]" in softmax  # the width softmax_scratch_bytes is given
    for header, suffix in (("include/esp_nn_generic_opt.h", "opt"), ("include/esp_nn_esp32s3.h", "esp32s3")):
        defines = _defines(_git_show("TINYML_ESP_NN_GIT", "esp-nn", header))
        for kind in ("conv", "depthwise_conv", "softmax"):
            assert defines[f"esp_nn_get_{kind}_scratch_size"] == f"esp_nn_get_{kind}_scratch_size_{suffix}"
    for path in ("src/convolution/esp_nn_conv_opt.c", "src/convolution/esp_nn_depthwise_conv_opt.c"):
        body = _git_show("TINYML_ESP_NN_GIT", "esp-nn", path)
        size_function = body[body.index("_scratch_size_opt("):]
        assert re.match(r"[^{]*\{\s*return 0;\s*\}", size_function), path
    assert espnn.conv_scratch_bytes("esp32", input_hwc=(8, 8, 8), filter_hw=(3, 3), output_hwc=(8, 8, 8),
                                    stride_hw=(1, 1), padding_hw=(1, 1)) == 0
    assert espnn.softmax_scratch_bytes("esp32", width=10) == espnn.softmax_scratch_bytes("esp32s3", width=10) == 40
