"""The 32-bit arena estimate per target against 32-bit builds of esp-tflite-micro 1.4.0.

``data/arena32_espnn.json`` holds, per zoo model that converts to int8, the firmware's built-in model and the
suite's own test models: the host figures ``runtime.tflm.arena`` reported, the model's memory graph as
``estimation.arena.read_memory_graph`` reads it, and the minimum arenas measured on ``-m32`` builds with
reference kernels, ESP-NN's generic C code (esp32, esp32c3) and ESP-NN's esp32s3 code (how: its ``about``).
Weights do not change the arena, so the zoo models were converted untrained (vww_mobilenet_v1 after two
epochs on random data: untrained, its near-constant logits give SOFTMAX an input scale TFLite Micro aborts on).
gesture_lstm does not convert to int8. Rows with ``fit: false`` were not used to fit the tail constants; the
``s3_rule_*`` rows are one-layer models that reach each branch of esp-nn's esp32s3 scratch-size functions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.estimation import arena

DATA = json.loads((Path(__file__).parent / "data" / "arena32_espnn.json").read_text())["models"]
TOLERANCE = 0.02
BUILTIN = Path(__file__).resolve().parents[1] / "firmware" / "models" / "builtin.tflite"
# esp32c3 runs the same ESP-NN code as esp32 (esp_nn.h picks esp_nn_generic_opt.h for both): one build.
MEASURED_AS = {None: "reference", "esp32": "esp32", "esp32c3": "esp32", "esp32s3": "esp32s3"}
TARGETS = list(MEASURED_AS)


def _graph(name):
    return arena.MemoryGraph.from_dict(DATA[name]["graph"])


def _persistent(name, breakdown=None):
    row, graph = DATA[name], _graph(name)
    return arena.persistent_bytes(
        tail=row["host"]["tail"], ops=dict(Counter(n.op for n in graph.nodes)),
        breakdown={k: tuple(v) for k, v in (row["host"]["breakdown"] if breakdown is None else breakdown).items()},
        scratch_buffers=len(arena.scratch_requests(graph)))


def _predict(name, target, breakdown=None, host_head=None):
    return arena.device_arena(_graph(name), persistent=_persistent(name, breakdown), target=target,
                              host_head=DATA[name]["host"]["head"] if host_head is None else host_head)


def _measured(name, target):
    return DATA[name]["measured"][MEASURED_AS[target]]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_prediction_within_2_percent_of_the_32bit_build(name, target):
    predicted, measured = _predict(name, target).arena_bytes, _measured(name, target)["arena_bytes"]
    assert abs(predicted - measured) <= TOLERANCE * measured, (name, target, predicted, measured)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_memory_plan_with_the_scratch_buffers_is_the_measured_head_to_the_byte(name, target):
    """The greedy plan redone in Python, with every kernel's scratch request, is TFLite Micro's head exactly."""
    assert _predict(name, target).head == _measured(name, target)["head"]


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_python_plan_is_the_host_s_measured_head(name):
    """On the host's own (reference-kernel) figures the plan needs no correction."""
    assert _predict(name, None).plan_offset == 0


def test_a_host_head_the_plan_does_not_explain_is_carried_to_every_target():
    """The wrong input: a host head 64 bytes over the plan (an op the plan does not model) moves each head by 64."""
    plan = _predict("kws_dscnn", "esp32s3")
    off = _predict("kws_dscnn", "esp32s3", host_head=DATA["kws_dscnn"]["host"]["head"] + 64)
    assert off.plan_offset == 64 and off.head == plan.head + 64 and off.arena_bytes == plan.arena_bytes + 64
    assert off.head != _measured("kws_dscnn", "esp32s3")["head"]


def test_the_data_covers_the_zoo_and_holds_out_models():
    from pytest_tinyml import zoo

    assert {n for n in zoo.names() if n != "gesture_lstm"} <= set(DATA)
    assert {n for n, row in DATA.items() if not row["fit"]}, "no held-out row"


def test_esp_nn_s3_scratch_changes_the_arena_and_reference_figures_miss_it():
    """The wrong input: the reference-kernel prediction for an S3 conv model misses its measured S3 arena by far,
    and the S3 prediction exceeds the reference one there (KWS DS-CNN: 23,152 -> 35,876 bytes measured)."""
    kws = "kws_dscnn"
    assert _predict(kws, "esp32s3").arena_bytes > _predict(kws, None).arena_bytes
    measured = _measured(kws, "esp32s3")["arena_bytes"]
    assert abs(_predict(kws, None).arena_bytes - measured) > TOLERANCE * measured
    assert abs(_predict(kws, "esp32").arena_bytes - measured) > TOLERANCE * measured  # the generic C needs none


def test_the_host_figure_itself_is_not_within_2_percent():
    """The wrong input: without the rescaling, the host's 64-bit figure misses the 2% on every model but the two
    tiled rule models, whose 120-150 KB of activations leave the pointer structs little weight (+0.5%, +0.6%)."""
    models = [n for n in DATA if n not in ("s3_rule_dw3x3_ch32_tiled", "s3_rule_dw5x5_ch16_tiled")]
    misses = [n for n in models
              if abs(DATA[n]["host"]["arena_bytes"] - DATA[n]["measured"]["reference"]["arena_bytes"])
              > TOLERANCE * DATA[n]["measured"]["reference"]["arena_bytes"]]
    assert sorted(misses) == sorted(models)


def test_a_breakdown_that_does_not_match_the_model_moves_the_prediction_off():
    """The prediction reads the counts: KWS's figures with no struct counted are off by more than 2%."""
    measured = _measured("kws_dscnn", None)["arena_bytes"]
    assert abs(_predict("kws_dscnn", None, breakdown={}).arena_bytes - measured) > TOLERANCE * measured


def test_a_model_bound_by_its_prepare_phase_is_not_over_estimated():
    """mlp_int8 (64 -> 32 -> 10): its temporary tensors in Prepare set the 32-bit arena (1,400 B measured);
    the first version of the estimate took the host's temporaries and predicted 1,472 (+5.1%)."""
    result = _predict("mlp_int8", None)
    assert result.bound == "prepare"
    assert abs(result.arena_bytes - 1400) <= 0.01 * 1400
    assert abs(1472 - 1400) > TOLERANCE * 1400  # the old figure would fail the 2% check


def test_stored_graphs_are_what_the_reader_reads():
    assert arena.read_memory_graph(BUILTIN).as_dict() == DATA["builtin"]["graph"]


def test_estimate_of_the_builtin_model_from_the_real_host_runtime():
    """End to end on the real host TFLite Micro: bisected host arena, its breakdown, the graph, the phases."""
    from pytest_tinyml.estimation import estimate

    for target in ("esp32", "esp32s3"):
        est = estimate(BUILTIN, target=target)
        measured = _measured("builtin", target)["arena_bytes"]
        assert est.where == "estimate"
        assert abs(est.arena_bytes - measured) <= TOLERANCE * measured, (target, est.arena_bytes, measured)
        assert est.arena_bytes < DATA["builtin"]["host"]["arena_bytes"]


def test_a_conv_that_needs_s3_scratch_estimates_more_arena_on_esp32s3(cnn_int8):
    """cnn_int8's 3x3 conv and depthwise conv request scratch on esp32s3 (848 + 960 bytes) and none on esp32:
    the estimate is larger on esp32s3 and matches each chip's measured arena (2,548 and 2,164 bytes)."""
    from pytest_tinyml.estimation import estimate

    assert arena.read_memory_graph(cnn_int8).as_dict() == DATA["cnn_int8"]["graph"]  # the measured graph
    s3, generic = estimate(cnn_int8, target="esp32s3"), estimate(cnn_int8, target="esp32")
    reference = arena.device_arena_of(cnn_int8)
    assert s3.arena_bytes > generic.arena_bytes >= reference
    for est, target in ((s3, "esp32s3"), (generic, "esp32")):
        measured = _measured("cnn_int8", target)["arena_bytes"]
        assert abs(est.arena_bytes - measured) <= TOLERANCE * measured, (target, est.arena_bytes, measured)
    assert [s.bytes for s in arena.scratch_requests(arena.read_memory_graph(cnn_int8), "esp32s3")] == [848, 960]
    assert arena.scratch_requests(arena.read_memory_graph(cnn_int8), "esp32") == []


def test_no_scratch_rules_for_a_chip_they_were_not_read_for():
    with pytest.raises(ConfigError, match="esp32p4"):
        arena.scratch_requests(_graph("kws_dscnn"), "esp32p4")


def test_esp_nn_op_data_counts_by_its_aligned_size(monkeypatch):
    """ESP-NN's conv op data (56 -> 60 bytes on 32 bits) stays in one 16-byte block; one past it would cost
    16 bytes per conv and depthwise conv (kws_dscnn: 9)."""
    before = _predict("kws_dscnn", "esp32s3")
    monkeypatch.setitem(arena.ESPNN_OP_DATA, "CONV_2D", (56, 68))
    monkeypatch.setitem(arena.ESPNN_OP_DATA, "DEPTHWISE_CONV_2D", (56, 68))
    after = _predict("kws_dscnn", "esp32s3")
    assert after.persistent - before.persistent == 16 * 9
    # and each of its 10 ESP-NN scratch buffers adds a 4-byte handle (its reference kernels request none)
    assert _predict("kws_dscnn", None).persistent == before.persistent - 4 * len(before.scratch) == before.persistent - 40
