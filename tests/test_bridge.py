"""The Keras 3 <-> tf_keras bridge: numerical equivalence on the zoo, clear errors, no side effects."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.filterwarnings(
    # zoo models are built with inputs=[x]; calling them on a bare array makes Keras 3 warn about the structure.
    "ignore:The structure of `inputs`:UserWarning"
)

# Every zoo entry: the bridge carries them all.
BRIDGED = [
    "mlp",
    "mobilenet_dscnn",
    "audio_conv1d",
    "gesture_lstm",
    "gesture_cnn",
    "autoencoder",
    "teacher",
    "student",
    "kws_dscnn",
    "vww_mobilenet_v1",
    "ic_resnet8",
    "ad_autoencoder",
]


def _randomize_batchnorm(model, rng):
    """Fresh BatchNorm layers are identities; give them real statistics so the comparison means something."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0.0, 0.1, beta.shape),
                    rng.normal(0.0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


def _outputs(model, x):
    import numpy as np

    out = model(x, training=False)
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out)


# The MLP in the fast lane; the larger zoo models (5-25 s each) in the full suite only.
@pytest.mark.parametrize("name", [n if n == "mlp" else pytest.param(n, marks=pytest.mark.slow) for n in BRIDGED])
def test_bridge_zoo_round_trip_is_numerically_equal(name):
    import numpy as np

    from pytest_tinyml import zoo
    from pytest_tinyml.optimize import to_keras3, to_tf_keras
    from pytest_tinyml.optimize._legacy import tf_keras

    rng = np.random.default_rng(0)
    model = zoo.build(name)
    _randomize_batchnorm(model, rng)
    x = rng.random((4, *model.input_shape[1:])).astype("float32")
    expected = _outputs(model, x)

    legacy = to_tf_keras(model)
    assert isinstance(legacy, tf_keras().Model)
    assert legacy.count_params() == model.count_params()
    np.testing.assert_allclose(_outputs(legacy, x), expected, atol=1e-5, rtol=0)

    back = to_keras3(legacy)
    assert [layer.name for layer in back.layers if type(layer).__name__ != "InputLayer"] == [
        layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"
    ]
    np.testing.assert_allclose(_outputs(back, x), expected, atol=1e-5, rtol=0)


def test_bridge_carries_skip_connections_nested_models_and_regularizers():
    import keras
    import numpy as np

    from pytest_tinyml.optimize import to_keras3, to_tf_keras

    inner = keras.Sequential(
        [keras.Input((4, 4, 8)), keras.layers.Conv2D(8, 1, name="inner_conv")], name="inner"
    )
    x_in = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", kernel_regularizer=keras.regularizers.L2(1e-3))(x_in)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(max_value=6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.SeparableConv2D(8, 3, padding="same")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.AveragePooling2D(2, padding="same")(x)  # 10x10 -> 5x5
    x = keras.layers.Cropping2D(((0, 1), (0, 1)))(x)  # -> 4x4
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(x_in, out)
    rng = np.random.default_rng(1)
    _randomize_batchnorm(model, rng)
    data = rng.random((5, 8, 8, 3)).astype("float32")

    legacy = to_tf_keras(model)
    np.testing.assert_allclose(_outputs(legacy, data), _outputs(model, data), atol=1e-5)
    conv = legacy.get_layer(model.layers[1].name)
    assert conv.kernel_regularizer is not None and abs(float(conv.kernel_regularizer.l2) - 1e-3) < 1e-9
    back = to_keras3(legacy)
    np.testing.assert_allclose(_outputs(back, data), _outputs(model, data), atol=1e-5)


def test_bridge_covers_the_whole_zoo():
    from pytest_tinyml import zoo

    assert {p if isinstance(p, str) else p.values[0] for p in BRIDGED} == set(zoo.names())


def test_bridge_refuses_custom_layers_and_raw_ops_naming_them():
    import keras

    from pytest_tinyml.errors import OptimizationError
    from pytest_tinyml.optimize import to_tf_keras

    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((4,))
    custom = keras.Model(inputs, Scale(name="doubler")(keras.layers.Dense(4)(inputs)), name="scaled")
    with pytest.raises(OptimizationError) as info:
        to_tf_keras(custom)
    text = str(info.value)
    assert "'doubler' (Scale)" in text and "'scaled'" in text and "supported layers" in text

    raw = keras.Model(inputs, keras.ops.add(keras.layers.Dense(4)(inputs), 1.0), name="raw")
    with pytest.raises(
        OptimizationError, match=r"keras.ops operation 'add(_\d+)?' \(Add\).*keras.layers.Add"
    ):
        to_tf_keras(raw)


def test_bridge_refuses_unbuilt_sequential_and_custom_activation():
    import keras

    from pytest_tinyml.errors import OptimizationError
    from pytest_tinyml.optimize import to_tf_keras

    with pytest.raises(OptimizationError, match="not built.*keras.Input"):
        to_tf_keras(keras.Sequential([keras.layers.Dense(2)]))

    def swish_ish(x):
        return x * keras.ops.sigmoid(x)

    custom = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation=swish_ish, name="odd")])
    with pytest.raises(OptimizationError, match="'odd'"):
        to_tf_keras(custom)


@pytest.mark.slow
def test_tfmot_loads_in_process_without_rerouting_tf_keras():
    """tfmot sets TF_USE_LEGACY_KERAS=1 at import; the loader must undo that (a clean subprocess proves it)."""
    code = (
        "import os, keras, numpy as np\n"
        "from pytest_tinyml.optimize._legacy import tfmot\n"
        "from pytest_tinyml.optimize import to_tf_keras\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "wrapped = tfmot().sparsity.keras.prune_low_magnitude(to_tf_keras(m))\n"
        "import tensorflow as tf\n"
        "print(os.environ.get('TF_USE_LEGACY_KERAS'), tf.keras.version(), type(wrapped).__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out[0] == "None"  # the environment (inherited by converter children) is untouched
    assert out[1].startswith("3.")  # tf.keras still routes to Keras 3
    assert out[2].startswith("tf_keras")


def test_importing_optimize_is_cheap():
    code = (
        "import sys\n"
        "import pytest_tinyml.optimize as o\n"
        "o.__doc__\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'numpy', "
        "'tensorflow_model_optimization') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_bridge_back_refuses_tfmot_wrappers_with_the_fix():
    import keras

    from pytest_tinyml.errors import OptimizationError
    from pytest_tinyml.optimize import qat, to_keras3

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    wrapped = qat(model, None, epochs=0)  # fake-quant wrappers, no training
    with pytest.raises(OptimizationError, match=r"tfmot wrapper\. Strip it first"):
        to_keras3(wrapped)
