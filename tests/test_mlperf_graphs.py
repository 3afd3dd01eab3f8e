"""The MLPerf Tiny zoo entries convert, at batch 1 with static shapes, to the published int8 reference graphs.

The reference figures below were read from mlcommons/tiny (commit 1afd2c9, benchmark/training/*/trained_models/)
with our own flatbuffer reader (``pytest_tinyml.analyze``): kws_ref_model.tflite, vww_96_int8.tflite,
pretrainedResnet_quant.tflite, ad01_int8.tflite. The files themselves are not part of this repository.
Before batch-1 tracing, every Flatten converted to SHAPE + STRIDED_SLICE + PACK + RESHAPE: same MACs, three
extra ops per Flatten. Now every compute op matches the published graph op for op, with equal MACs; the one
difference left is that today's converter folds the Flatten's RESHAPE (1x1x1xC -> 1xC, a copy) into the
FULLY_CONNECTED that follows it (which flattens its input itself), so the published heads' RESHAPE is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml.runtime.litert import LiteRTRunner

pytestmark = pytest.mark.slow

C, D = "CONV_2D", "DEPTHWISE_CONV_2D"
HEAD = ["AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
PUBLISHED = {
    # zoo name: (published file, op list in graph order, total MACs)
    "kws_dscnn": ("kws_ref_model.tflite", [C] + [D, C] * 4 + HEAD, 2_656_768),
    "vww_mobilenet_v1": ("vww_96_int8.tflite", [C] + [D, C] * 13 + HEAD, 7_489_664),
    "ic_resnet8": ("pretrainedResnet_quant.tflite",
                   [C, C, C, "ADD", C, C, C, "ADD", C, C, C, "ADD"] + HEAD, 12_501_632),
    "ad_autoencoder": ("ad01_int8.tflite", ["FULLY_CONNECTED"] * 10, 264_192),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_zoo_entry_converts_to_the_published_graph(name):
    import keras

    _, ops, macs = PUBLISHED[name]
    keras.utils.set_random_seed(0)
    model = tinyml.zoo.build(name)
    spec = tinyml.zoo.spec(name)
    samples = np.random.default_rng(0).random((100, *spec.input_shape)).astype(np.float32)
    art = tinyml.convert(model, "int8", representative=samples)
    analysis = tinyml.analyze.analyze(art, tflm=False).to_dict()
    ours = [op["op"] for op in analysis["ops"]]
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(ours), ours
    assert ours == [op for op in ops if op != "RESHAPE"]  # the published RESHAPE is folded into FULLY_CONNECTED
    assert ours.count("RESHAPE") == 0 and ops.count("RESHAPE") == (0 if name == "ad_autoencoder" else 1)
    assert analysis["macs_total"] == macs
    assert art.inputs[0].shape == (1, *spec.input_shape) and art.params["fixed_batch"] == 1

    # Host evaluation still runs the whole set in batches, with the outputs of one-at-a-time runs.
    runner = LiteRTRunner(art)
    x = np.random.default_rng(1).random((8, *spec.input_shape)).astype(np.float32)
    batched = runner.predict(x)
    assert runner.batchable and runner._batch == 8
    one_by_one = np.concatenate([LiteRTRunner(art).predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batched, one_by_one)


def test_litert_recipes_keep_their_batch_axis():
    """Only TFLite Micro recipes are traced at batch 1: a LiteRT model keeps its free batch dimension."""
    import keras

    keras.utils.set_random_seed(0)
    model = tinyml.zoo.build("kws_dscnn")
    art = tinyml.convert(model, "dynamic_range")
    assert "fixed_batch" not in art.params
    assert "SHAPE" in {op["op"] for op in tinyml.analyze.analyze(art, tflm=False).to_dict()["ops"]}


def test_a_flatten_is_one_reshape_and_the_host_still_evaluates_in_batches():
    import keras

    from pytest_tinyml.runtime.litert import batch_free_copy

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], name="flat_cnn")
    samples = np.random.default_rng(0).random((100, 8, 8, 1)).astype(np.float32)
    for recipe in ("int8", "float32"):
        art = tinyml.convert(model, recipe, representative=samples)
        ops = [op["op"] for op in tinyml.analyze.analyze(art, tflm=False).to_dict()["ops"]]
        assert ops[-3:] == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"] and ops.count("RESHAPE") == 1, ops
        assert batch_free_copy(art.content) != art.content  # the RESHAPE target [1, 144] pins the batch
        runner = LiteRTRunner(art)
        x = np.random.default_rng(2).random((33, 8, 8, 1)).astype(np.float32)
        batched = runner.predict_raw(x)
        assert runner.batchable and runner._batch == 33
        one_by_one = np.concatenate([LiteRTRunner(art).predict_raw(x[i : i + 1]) for i in range(len(x))])
        if recipe == "int8":
            np.testing.assert_array_equal(batched, one_by_one)
        else:
            np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
