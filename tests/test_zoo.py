"""The reference zoo: registry, specs, shapes, parameter counts, overrides and errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pytest_tinyml import datasets, zoo
from pytest_tinyml.errors import TinyMLError, ZooError

# name -> (count_params(), trainable parameters, input shape, output shape) with the default arguments.
# count_params() includes BatchNorm's moving mean and variance, as Keras reports it.
EXPECTED = {
    "mlp": (109_386, 109_386, (None, 784), (None, 10)),
    "mobilenet_dscnn": (51_978, 50_570, (None, 32, 32, 3), (None, 10)),
    "audio_conv1d": (12_524, 12_332, (None, 49, 10), (None, 12)),
    "gesture_lstm": (31_012, 31_012, (None, 50, 3), (None, 4)),
    "gesture_cnn": (4_228, 4_132, (None, 50, 3), (None, 4)),
    "autoencoder": (13_584, 13_584, (None, 64), (None, 64)),
    "teacher": (567_434, 567_434, (None, 784), (None, 10)),
    "student": (52_650, 52_650, (None, 784), (None, 10)),
    # MLPerf Tiny. Where the figures come from:
    # - kws_dscnn: computed from keyword_spotting/keras_model.py (ds_cnn): Conv2D 10x4x1x64+64 = 2,624;
    #   4 x (depthwise 3x3x64+64 = 640, pointwise 64x64+64 = 4,160); Dense 64x12+12 = 780; 9 BatchNorms x
    #   4 x 64 = 2,304 -> 24,908. Their shipped kws_ref_model_float32.tflite has exactly these layer shapes
    #   (BN folded). mlcommons/tiny publishes no count.
    # - vww_mobilenet_v1, ic_resnet8, ad_autoencoder: equal to the total size of the weight arrays in the
    #   trained models mlcommons/tiny ships (visual_wake_words/trained_models/vww_96.h5: 221,794;
    #   image_classification/trained_models/pretrainedResnet.h5: 78,666;
    #   anomaly_detection/trained_models/ad01.h5: 269,992), summed with h5py.
    "kws_dscnn": (24_908, 23_756, (None, 49, 10, 1), (None, 12)),
    "vww_mobilenet_v1": (221_794, 216_322, (None, 96, 96, 3), (None, 2)),
    "ic_resnet8": (78_666, 78_186, (None, 32, 32, 3), (None, 10)),
    "ad_autoencoder": (269_992, 267_928, (None, 640), (None, 640)),
}


def _trainable(model) -> int:
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_import_costs_no_keras_numpy_or_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        from pytest_tinyml import zoo
        assert len(zoo.names()) == 12 and zoo.spec("kws_dscnn").input_shape == (49, 10, 1)
        heavy = [m for m in ("keras", "tensorflow", "numpy") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_names_and_families():
    assert zoo.names() == list(EXPECTED)
    assert zoo.names("mlperf_tiny") == ["kws_dscnn", "vww_mobilenet_v1", "ic_resnet8", "ad_autoencoder"]
    assert set(zoo.names("tutorial")) | set(zoo.names("mlperf_tiny")) == set(EXPECTED)
    with pytest.raises(ZooError, match="unknown zoo family 'mlperf'"):
        zoo.names("mlperf")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_spec_is_complete(name):
    s = zoo.spec(name)
    assert s.name == name
    assert s.family in ("tutorial", "mlperf_tiny") and s.citation
    assert s.task in ("classification", "reconstruction", "anomaly")
    assert (s.num_classes is None) == (s.task != "classification")
    assert s.input_shape == EXPECTED[name][2][1:]
    assert s.dataset in datasets.names()
    if s.int8_tflm:
        assert set(s.budgets) == {"flash_kb", "arena_kb"} and all(v > 0 for v in s.budgets.values())
        # int8 weights take a byte each: a flash budget below the trainable count could never be met
        assert s.budgets["flash_kb"] * 1024 > EXPECTED[name][1]
    else:
        assert s.budgets == {} and "int8" in s.notes
    assert isinstance(s.hyperparams, dict)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builds_with_pinned_shapes_and_counts(name):
    total, trainable, input_shape, output_shape = EXPECTED[name]
    model = zoo.build(name)
    assert model.name == name
    assert not model.compiled  # users compile with their own loss and optimizer
    assert model.count_params() == total
    assert _trainable(model) == trainable
    assert tuple(model.input_shape) == input_shape
    assert tuple(model.output_shape) == output_shape


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builds_for_its_spec_dataset(name):
    """Every entry pairs with the dataset its spec names: build with the dataset's shape and it fits."""
    s = zoo.spec(name)
    ds = datasets.load(s.dataset, **({} if s.dataset.startswith("digits") else {"n_train": 4, "n_test": 2}))
    num_classes = ds.num_classes if s.task == "classification" else None
    model = zoo.build(name, input_shape=ds.input_shape, num_classes=num_classes)
    prediction = model(ds.x_test[:2], training=False)  # eager: no tf.function tracing per model
    expected = (2, ds.num_classes) if s.task == "classification" else (2, *ds.input_shape)
    assert tuple(prediction.shape) == expected


def test_ic_resnet8_large_variant():
    # benchmark/training/image_classification/train.py (2026) trains resnet_v1_eembc(conv_filters=26).
    assert zoo.build("ic_resnet8", filters=26).count_params() == 205_306


def test_kws_dscnn_layers_match_mlperf():
    from keras import layers

    model = zoo.build("kws_dscnn")
    first = model.get_layer("conv")
    assert first.kernel_size == (10, 4) and first.strides == (2, 2) and first.filters == 64
    assert tuple(first.output.shape[1:]) == (25, 5, 64)
    assert model.get_layer("avg_pool").pool_size == (24, 5)
    convs = [la for la in model.layers if type(la) is layers.Conv2D]
    depthwise = [la for la in model.layers if isinstance(la, layers.DepthwiseConv2D)]
    assert len(convs) == 5 and len(depthwise) == 4
    # L2(1e-4) on the Conv2D kernels; none on depthwise kernels (tf.keras ignored theirs).
    assert all(abs(float(c.kernel_regularizer.l2) - 1e-4) < 1e-12 for c in convs)
    assert all(d.depthwise_regularizer is None for d in depthwise)
    assert [la.rate for la in model.layers if isinstance(la, layers.Dropout)] == [0.2, 0.4]


def test_vww_mobilenet_v1_layers_match_mlperf():
    from keras import layers

    model = zoo.build("vww_mobilenet_v1")
    convs = [la for la in model.layers if type(la) is layers.Conv2D]
    depthwise = [la for la in model.layers if isinstance(la, layers.DepthwiseConv2D)]
    assert [c.filters for c in convs] == [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]
    assert [d.strides[0] for d in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert all(type(c.kernel_initializer).__name__ == "HeNormal" for c in convs)
    assert tuple(model.get_layer("avg_pool").output.shape[1:]) == (1, 1, 256)
    assert zoo.build("vww_mobilenet_v1", alpha=0.5).count_params() > 221_794


def test_ic_resnet8_layers_match_mlperf():
    from keras import layers

    model = zoo.build("ic_resnet8")
    assert len([la for la in model.layers if isinstance(la, layers.Add)]) == 3
    assert [model.get_layer(f"stack{i}_shortcut").filters for i in (2, 3)] == [32, 64]
    assert tuple(model.get_layer("avg_pool").output.shape[1:]) == (1, 1, 64)
    assert type(model.get_layer("predictions").kernel_initializer).__name__ == "HeNormal"


def test_ad_autoencoder_layers_match_mlperf():
    from keras import layers

    model = zoo.build("ad_autoencoder")
    widths = [la.units for la in model.layers if isinstance(la, layers.Dense)]
    assert widths == [128] * 4 + [8] + [128] * 4 + [640]
    assert len([la for la in model.layers if isinstance(la, layers.BatchNormalization)]) == 9
    assert model.get_layer("reconstruction").activation.__name__ == "linear"


def test_overrides():
    mlp = zoo.build("mlp", input_shape=(64,), num_classes=10)
    assert tuple(mlp.input_shape) == (None, 64) and mlp.count_params() == 64 * 128 + 128 + 128 * 64 + 64 + 650
    assert tuple(zoo.build("kws_dscnn", input_shape=(49, 40, 1), num_classes=2).output_shape) == (None, 2)
    assert tuple(zoo.build("ad_autoencoder", input_shape=(128,)).output_shape) == (None, 128)
    assert tuple(zoo.build("mobilenet_dscnn", input_shape=(16, 16, 1)).output_shape) == (None, 10)
    assert tuple(zoo.build("gesture_lstm", input_shape=(20, 6), num_classes=3).output_shape) == (None, 3)
    assert zoo.build("mlp", input_shape=64).input_shape == (None, 64)  # a bare int for 1-D inputs


def test_hyperparameters():
    assert zoo.spec("mlp").hyperparams == {
        "hidden": (128, 64),
        "dropout": 0.2,
        "output_activation": "softmax",
    }
    small = zoo.build("mlp", input_shape=(64,), hidden=(16,), dropout=0.0)
    assert small.count_params() == 64 * 16 + 16 + 16 * 10 + 10
    logits = zoo.build("student", input_shape=(64,), output_activation=None)
    assert logits.get_layer("predictions").activation.__name__ == "linear"
    assert zoo.build("kws_dscnn", weight_decay=0).get_layer("conv").kernel_regularizer is None
    fast_bn = zoo.build("ic_resnet8", bn_momentum=0.9)
    assert {la.momentum for la in fast_bn.layers if hasattr(la, "moving_mean")} == {0.9}
    assert zoo.spec("ic_resnet8").hyperparams["bn_momentum"] == 0.99  # Keras's default, as the reference


def test_seed_makes_initial_weights_reproducible():
    import numpy as np

    a = zoo.build("student", input_shape=(8,), seed=3).get_weights()
    b = zoo.build("student", input_shape=(8,), seed=3).get_weights()
    c = zoo.build("student", input_shape=(8,), seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_unknown_name_lists_known_models():
    with pytest.raises(ZooError) as info:
        zoo.build("resnet50")
    text = str(info.value)
    assert "unknown zoo model 'resnet50'" in text and "kws_dscnn" in text and "gesture_cnn" in text
    assert isinstance(info.value, TinyMLError) and isinstance(info.value, KeyError)
    with pytest.raises(ZooError, match="unknown zoo model"):
        zoo.spec("nope")


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("mlp", {"units": 3}, r"no hyperparameter units; accepted: hidden=\(128, 64\)"),
        ("mlp", {"dropout": 1.5}, r"dropout must be a number in \[0, 1\), got 1.5"),
        ("mlp", {"hidden": ()}, "hidden must be a sequence of at least 1 positive integers"),
        ("mlp", {"hidden": (64, -2)}, r"hidden\[1\] must be a positive integer, got -2"),
        ("mlp", {"output_activation": "relu"}, "output_activation must be"),
        ("mlp", {"num_classes": 1}, "num_classes must be an integer >= 2"),
        ("mlp", {"input_shape": (8, 8)}, "input_shape must have 1 dimension"),
        ("mobilenet_dscnn", {"input_shape": (8, 8, 1)}, r"too small: axis 0 must be >= 16"),
        ("vww_mobilenet_v1", {"alpha": 0}, "alpha must be > 0"),
        ("kws_dscnn", {"weight_decay": -1}, "weight_decay must be a number >= 0"),
        ("ad_autoencoder", {"num_classes": 2}, "autoencoder .* takes no num_classes"),
        ("audio_conv1d", {"input_shape": (5, 10)}, "too small"),
        ("gesture_cnn", {"bn_momentum": 1.0}, r"bn_momentum must be a number in \[0, 1\)"),
    ],
)
def test_bad_arguments_raise_zoo_error(name, kwargs, message):
    with pytest.raises(ZooError, match=message):
        zoo.build(name, **kwargs)


GESTURE_CNN_ON_TFLM = """
import json, sys
import numpy as np
import tensorflow as tf
from tflite_micro.python.tflite_micro import runtime
from pytest_tinyml import datasets, zoo

ds = datasets.load("gestures", n_train=64, n_test=8)
model = zoo.build("gesture_cnn", seed=0)
def representative():
    for x in ds.x_train[:64]:
        yield [x[None]]
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
flatbuffer = converter.convert()
interpreter = runtime.Interpreter.from_bytes(flatbuffer, arena_size=int(sys.argv[1]) * 1024)
interpreter.set_input(np.zeros((1, 50, 3), np.int8), 0)
interpreter.invoke()
print(json.dumps({"flash": len(flatbuffer), "out": list(interpreter.get_output(0).shape)}))
"""


@pytest.mark.slow
def test_gesture_cnn_converts_to_int8_and_runs_on_tflm_within_budget():
    """The spec claims gesture_cnn is the MCU gesture model: prove it (in a child: converters can crash)."""
    import json

    budgets = zoo.spec("gesture_cnn").budgets
    done = subprocess.run(
        [sys.executable, "-c", GESTURE_CNN_ON_TFLM, str(budgets["arena_kb"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["out"] == [1, 4]
    assert result["flash"] <= budgets["flash_kb"] * 1024


@pytest.mark.parametrize("module", ["__init__", "_checks", "_spec"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    name = "pytest_tinyml.zoo" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_default_seed_makes_builds_identical():
    """Same initial weights every session by default, so the training cache hits; seed=None stays random."""
    import numpy as np

    first, second = zoo.build("student", input_shape=(8,), num_classes=3), zoo.build("student", input_shape=(8,), num_classes=3)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))
    third = zoo.build("student", input_shape=(8,), num_classes=3, seed=None)
    assert not all(np.array_equal(a, b) for a, b in zip(first.get_weights(), third.get_weights(), strict=True))
