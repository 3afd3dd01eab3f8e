"""The MLPerf Tiny family: the four reference models of mlcommons/tiny, rebuilt with Keras 3 layers.

Read from ``benchmark/training/*/`` of mlcommons/tiny (the ``keras_model.py`` / ``vww_model.py`` files) and
rewritten here layer for layer: same widths, kernels, strides, paddings, initializers and L2 weight decay.
One subtlety is kept on purpose: their tf.keras code passes ``kernel_initializer`` / ``kernel_regularizer``
to ``DepthwiseConv2D``, which tf.keras silently ignores (the depthwise kernel uses ``depthwise_*``; checked
with tf_keras 2.21: no loss term, GlorotUniform). So the depthwise kernels here have the default
initializer and no regularizer, which is what their trained models had.

Parameter counts (weights plus BatchNorm moving statistics, Keras ``count_params()``) equal the totals of
the weight arrays in the trained models they ship (``trained_models/*.h5``); see tests/test_zoo.py.
"""

from __future__ import annotations

from pytest_tinyml.errors import ZooError
from pytest_tinyml.zoo import _checks as check
from pytest_tinyml.zoo._spec import Entry, make_entry

PAPER = "Banbury et al., 'MLPerf Tiny Benchmark', NeurIPS 2021 Datasets and Benchmarks (arXiv:2106.07597)"


def _l2(weight_decay):
    from keras import regularizers

    return regularizers.L2(weight_decay) if weight_decay else None


def kws_dscnn(
    name,
    input_shape,
    num_classes,
    *,
    filters=64,
    blocks=4,
    weight_decay=1e-4,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """DS-CNN keyword spotter: Conv2D 64 (10x4, stride 2) then 4 depthwise-separable blocks, avg-pool, Dense."""
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    shape = check.shape(name, input_shape, 3, minimum=(2, 2, 1))
    filters = check.positive_int(name, "filters", filters)
    blocks = check.positive_int(name, "blocks", blocks)
    reg = _l2(check.non_negative(name, "weight_decay", weight_decay))
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg, name="conv")(
        inputs
    )
    x = layers.BatchNormalization(momentum=bn_momentum, name="conv_bn")(x)
    x = layers.Activation("relu", name="conv_relu")(x)
    x = layers.Dropout(0.2, name="dropout_in")(x)
    for i in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), padding="same", name=f"block{i}_dw")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_dw_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_dw_relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg, name=f"block{i}_pw")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_pw_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_pw_relu")(x)
    x = layers.Dropout(0.4, name="dropout_out")(x)
    # Their pool size is half the *input* size (24x5 for 49x10), which covers the 25x5 map in one window.
    x = layers.AveragePooling2D(pool_size=(shape[0] // 2, shape[1] // 2), name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


# MobileNetV1 body: (depthwise stride, whether the pointwise conv doubles the width), layers 2 to 14.
_VWW_BLOCKS = [(1, True), (2, True), (1, False), (2, True), (1, False), (2, True)]
_VWW_BLOCKS += [(1, False)] * 5 + [(2, True), (1, False)]


def vww_mobilenet_v1(
    name,
    input_shape,
    num_classes,
    *,
    alpha=0.25,
    weight_decay=1e-4,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """MobileNetV1 (alpha 0.25) person detector for 96x96x3 images, 2 classes."""
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    shape = check.shape(name, input_shape, 3, minimum=(32, 32, 1))  # five stride-2 stages
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0 or int(32 * alpha) < 1:
        raise ZooError(f"zoo model {name!r}: alpha must be > 0 with 32 * alpha >= 1, got {alpha!r}")
    reg = _l2(check.non_negative(name, "weight_decay", weight_decay))
    activation = check.output_activation(name, output_activation)
    conv = {"padding": "same", "kernel_initializer": "he_normal", "kernel_regularizer": reg}
    width = int(32 * alpha)  # 8 at alpha 0.25, "normally 32"
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Conv2D(width, 3, strides=2, name="conv1", **conv)(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    for i, (stride, doubles) in enumerate(_VWW_BLOCKS, start=2):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"dw{i}_bn")(x)
        x = layers.Activation("relu", name=f"dw{i}_relu")(x)
        width = width * 2 if doubles else width
        x = layers.Conv2D(width, 1, strides=1, name=f"pw{i}", **conv)(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"pw{i}_bn")(x)
        x = layers.Activation("relu", name=f"pw{i}_relu")(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def ic_resnet8(
    name,
    input_shape,
    num_classes,
    *,
    filters=16,
    weight_decay=1e-4,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """ResNet-8 (EEMBC ResNetV1): a 3x3 stem and three residual stacks of 16/32/64 filters.

    ``filters=16`` is the reference model MLPerf Tiny closed division ships (``pretrainedResnet.h5``);
    mlcommons/tiny's 2026 ``train.py`` trains a larger variant with ``filters=26``.
    """
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    shape = check.shape(name, input_shape, 3, minimum=(4, 4, 1))
    filters = check.positive_int(name, "filters", filters)
    reg = _l2(check.non_negative(name, "weight_decay", weight_decay))
    activation = check.output_activation(name, output_activation)
    conv = {"padding": "same", "kernel_initializer": "he_normal", "kernel_regularizer": reg}
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Conv2D(filters, 3, strides=1, name="stem", **conv)(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stack, (width, stride) in enumerate([(filters, 1), (filters * 2, 2), (filters * 4, 2)], start=1):
        y = layers.Conv2D(width, 3, strides=stride, name=f"stack{stack}_conv1", **conv)(x)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"stack{stack}_bn1")(y)
        y = layers.Activation("relu", name=f"stack{stack}_relu1")(y)
        y = layers.Conv2D(width, 3, strides=1, name=f"stack{stack}_conv2", **conv)(y)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"stack{stack}_bn2")(y)
        if stride != 1:  # a 1x1 strided projection (no BN) matches the identity path to the new shape
            x = layers.Conv2D(width, 1, strides=stride, name=f"stack{stack}_shortcut", **conv)(x)
        x = layers.Add(name=f"stack{stack}_add")([x, y])
        x = layers.Activation("relu", name=f"stack{stack}_relu")(x)
    pool = int(min(x.shape[1:3]))
    x = layers.AveragePooling2D(pool_size=pool, name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(
        num_classes, activation=activation, kernel_initializer="he_normal", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def ad_autoencoder(name, input_shape, num_classes, *, units=128, bottleneck=8, depth=4, bn_momentum=0.99):
    """FC autoencoder of DCASE 2020 task 2: 640 -> 128x4 -> 8 -> 128x4 -> 640, each Dense + BN + ReLU."""
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    shape = check.shape(name, input_shape, 1)
    units = check.positive_int(name, "units", units)
    bottleneck = check.positive_int(name, "bottleneck", bottleneck)
    depth = check.positive_int(name, "depth", depth)
    widths = [units] * depth + [bottleneck] + [units] * depth
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, width in enumerate(widths):
        x = layers.Dense(width, name=f"dense{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"dense{i}_bn")(x)
        x = layers.Activation("relu", name=f"dense{i}_relu")(x)
    outputs = layers.Dense(shape[0], name="reconstruction")(x)  # linear: log-mel targets are unbounded
    return keras.Model(inputs, outputs, name=name)


def _source(path: str) -> str:
    return f"mlcommons/tiny {path}; {PAPER}"


ENTRIES: list[Entry] = [
    make_entry(
        kws_dscnn,
        name="kws_dscnn",
        family="mlperf_tiny",
        task="classification",
        input_shape=(49, 10, 1),
        num_classes=12,
        dataset="keywords",
        citation=_source("benchmark/training/keyword_spotting/keras_model.py (ds_cnn)"),
        budgets={"flash_kb": 56, "arena_kb": 32},
        notes="49 frames x 10 MFCC of 1 s of 16 kHz audio (30 ms window, 20 ms stride); 12 classes "
        "(10 words, silence, unknown). Quality target 90% top-1 on Speech Commands v2.",
    ),
    make_entry(
        vww_mobilenet_v1,
        name="vww_mobilenet_v1",
        family="mlperf_tiny",
        task="classification",
        input_shape=(96, 96, 3),
        num_classes=2,
        dataset="vww96",
        citation=_source("benchmark/training/visual_wake_words/vww_model.py"),
        budgets={"flash_kb": 384, "arena_kb": 128},
        notes="MobileNetV1 alpha 0.25 for person / no person at 96x96x3. Quality target 80% top-1. "
        "Calibrate int8 on a TRAINED model: untrained, its activations shrink to ~1e-6 through 13 blocks and "
        "the degenerate scales make TFLite Micro abort (SIGABRT) at init.",
    ),
    make_entry(
        ic_resnet8,
        name="ic_resnet8",
        family="mlperf_tiny",
        task="classification",
        input_shape=(32, 32, 3),
        num_classes=10,
        dataset="images32",
        citation=_source("benchmark/training/image_classification/keras_model.py (resnet_v1_eembc)"),
        budgets={"flash_kb": 112, "arena_kb": 72},
        notes="CIFAR-10 ResNet-8 with 16 filters (the shipped reference model); filters=26 gives the larger "
        "variant mlcommons/tiny trains since 2026. Quality target 85% top-1.",
    ),
    make_entry(
        ad_autoencoder,
        name="ad_autoencoder",
        family="mlperf_tiny",
        task="anomaly",
        input_shape=(640,),
        num_classes=None,
        dataset="anomaly",
        citation=_source("benchmark/training/anomaly_detection/keras_model.py"),
        budgets={"flash_kb": 320, "arena_kb": 24},
        notes="640 inputs = 5 frames x 128 log-mel bins of ToyCar audio; anomaly score = reconstruction "
        "MSE. Quality target AUC 0.85.",
    ),
]
