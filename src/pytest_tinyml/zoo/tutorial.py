"""The tutorial family: the models of "TinyML Tutorial: Keras 3.0 + Google Edge AI + ESP32".

Layer widths follow the tutorial; where it left a size open (input shapes, class counts) the defaults below
pick the offline dataset the model trains on in tests. ``gesture_cnn`` is ours: the tutorial's gesture model
is an LSTM, which TFLite Micro cannot run in full int8, so the zoo adds a Conv1D model for the same input.

Keras is imported inside each builder so that the registry costs nothing to import.
"""

from __future__ import annotations

from pytest_tinyml.errors import ZooError
from pytest_tinyml.zoo import _checks as check
from pytest_tinyml.zoo._spec import Entry, make_entry

TUTORIAL = "TinyML Tutorial: Keras 3.0 + Google Edge AI + ESP32 (the tutorial this project grew from)"


def _head(layers, x, num_classes, activation):
    return layers.Dense(num_classes, activation=activation, name="predictions")(x)


def mlp(name, input_shape, num_classes, *, hidden=(128, 64), dropout=0.2, output_activation="softmax"):
    """Dense 128 relu, Dropout 0.2, Dense 64 relu, Dense num_classes (chapter 1)."""
    import keras
    from keras import layers

    shape = check.shape(name, input_shape, 1)
    hidden = check.int_tuple(name, "hidden", hidden)
    dropout = check.rate(name, "dropout", dropout)
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, units in enumerate(hidden):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if i == 0 and dropout:  # the tutorial drops out after the first layer only
            x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(layers, x, num_classes, activation), name=name)


def mobilenet_dscnn(
    name,
    input_shape,
    num_classes,
    *,
    stem_filters=32,
    filters=(64, 128, 256),
    dropout=0.2,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """Conv2D stride 2 + BN + ReLU, then depthwise-separable blocks with 2x2 max-pool (chapter 5)."""
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    filters = check.int_tuple(name, "filters", filters)
    # Stride 2 then one 2x2 pool per block: each spatial axis needs 2 ** (blocks + 1) pixels.
    low = 2 ** (len(filters) + 1)
    shape = check.shape(name, input_shape, 3, minimum=(low, low, 1))
    stem_filters = check.positive_int(name, "stem_filters", stem_filters)
    dropout = check.rate(name, "dropout", dropout)
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = layers.Conv2D(stem_filters, 3, strides=2, padding="same", name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, width in enumerate(filters):
        x = layers.DepthwiseConv2D(3, padding="same", name=f"block{i}_dw")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_dw_bn")(x)
        x = layers.ReLU(name=f"block{i}_dw_relu")(x)
        x = layers.Conv2D(width, 1, padding="same", name=f"block{i}_pw")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_pw_bn")(x)
        x = layers.ReLU(name=f"block{i}_pw_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(layers, x, num_classes, activation), name=name)


def audio_conv1d(
    name,
    input_shape,
    num_classes,
    *,
    filters=(32, 64),
    kernel_size=3,
    dense=64,
    dropout=0.5,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """Conv1D 32 and 64 (kernel 3, relu) each with BN and max-pool, GAP, Dense 64, Dropout 0.5 (chapter 8)."""
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    filters = check.int_tuple(name, "filters", filters)
    kernel_size = check.positive_int(name, "kernel_size", kernel_size)
    # Each block: a 'valid' convolution (loses kernel_size - 1 steps) then a pool of 2.
    low = 1
    for _ in filters:
        low = low * 2 + kernel_size - 1
    shape = check.shape(name, input_shape, 2, minimum=(low, 1))
    dense = check.positive_int(name, "dense", dense)
    dropout = check.rate(name, "dropout", dropout)
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv1D(width, kernel_size, activation="relu", name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"conv{i}_bn")(x)
        x = layers.MaxPooling1D(2, name=f"conv{i}_pool")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(layers, x, num_classes, activation), name=name)


def gesture_lstm(
    name, input_shape, num_classes, *, units=(64, 32), dense=32, dropout=0.2, output_activation="softmax"
):
    """LSTM 64 (sequences), Dropout, LSTM 32, Dropout, Dense 32 relu (chapter 8). Input (time_steps, 3)."""
    import keras
    from keras import layers

    shape = check.shape(name, input_shape, 2)
    units = check.int_tuple(name, "units", units)
    dense = check.positive_int(name, "dense", dense)
    dropout = check.rate(name, "dropout", dropout)
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, width in enumerate(units):
        x = layers.LSTM(width, return_sequences=i < len(units) - 1, name=f"lstm{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _head(layers, x, num_classes, activation), name=name)


def gesture_cnn(
    name,
    input_shape,
    num_classes,
    *,
    filters=(16, 32),
    kernel_size=5,
    dense=32,
    dropout=0.2,
    output_activation="softmax",
    bn_momentum=0.99,
):
    """Conv1D (same padding) + BN + ReLU + max-pool blocks, GAP, Dense: an LSTM-free gesture model.

    Every op (CONV_2D via EXPAND_DIMS, MAX_POOL_2D, MEAN, FULLY_CONNECTED, SOFTMAX) has an int8 kernel in
    TFLite Micro, so this is the gesture model that runs on the ESP32.
    """
    import keras
    from keras import layers

    bn_momentum = check.rate(name, "bn_momentum", bn_momentum)
    filters = check.int_tuple(name, "filters", filters)
    kernel_size = check.positive_int(name, "kernel_size", kernel_size)
    shape = check.shape(name, input_shape, 2, minimum=(2 ** len(filters), 1))
    dense = check.positive_int(name, "dense", dense)
    dropout = check.rate(name, "dropout", dropout)
    activation = check.output_activation(name, output_activation)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv1D(width, kernel_size, padding="same", name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"conv{i}_bn")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
        x = layers.MaxPooling1D(2, name=f"conv{i}_pool")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(layers, x, num_classes, activation), name=name)


def autoencoder(name, input_shape, num_classes, *, encoder=(64, 32, 16), output_activation="sigmoid"):
    """Dense 64-32-16 encoder, mirrored 32-64 decoder, Dense(input) with sigmoid output (chapter 8)."""
    import keras
    from keras import layers

    shape = check.shape(name, input_shape, 1)
    encoder = check.int_tuple(name, "encoder", encoder)
    if output_activation not in ("sigmoid", "linear", None):
        raise ZooError(
            f"zoo model {name!r}: output_activation must be 'sigmoid' (inputs in [0, 1]) or None (linear), "
            f"got {output_activation!r}"
        )
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for i, units in enumerate(encoder):
        x = layers.Dense(units, activation="relu", name=f"encoder{i}")(x)
    for i, units in enumerate(reversed(encoder[:-1])):
        x = layers.Dense(units, activation="relu", name=f"decoder{i}")(x)
    outputs = layers.Dense(shape[0], activation=output_activation, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def teacher(name, input_shape, num_classes, *, hidden=(512, 256, 128), output_activation="softmax"):
    """The distillation teacher: Dense 512-256-128 relu (chapter 2)."""
    return mlp(
        name, input_shape, num_classes, hidden=hidden, dropout=0.0, output_activation=output_activation
    )


def student(name, input_shape, num_classes, *, hidden=(64, 32), output_activation="softmax"):
    """The distillation student: Dense 64-32 relu (chapter 2)."""
    return mlp(
        name, input_shape, num_classes, hidden=hidden, dropout=0.0, output_activation=output_activation
    )


def _classifier(builder, **fields) -> Entry:
    return make_entry(builder, family="tutorial", task="classification", citation=TUTORIAL, **fields)


ENTRIES: list[Entry] = [
    _classifier(
        mlp,
        name="mlp",
        input_shape=(784,),
        num_classes=10,
        dataset="digits",
        budgets={"flash_kb": 128, "arena_kb": 8},
        notes="784 inputs (flattened MNIST) by default; on digits build with input_shape=(64,).",
    ),
    _classifier(
        mobilenet_dscnn,
        name="mobilenet_dscnn",
        input_shape=(32, 32, 3),
        num_classes=10,
        dataset="images32",
        budgets={"flash_kb": 96, "arena_kb": 48},
        notes="Inputs need at least 16x16 pixels (stride 2 and three 2x2 pools).",
    ),
    _classifier(
        audio_conv1d,
        name="audio_conv1d",
        input_shape=(49, 10),
        num_classes=12,
        dataset="keywords_seq",
        budgets={"flash_kb": 32, "arena_kb": 12},
        notes="Input (frames, features): 49 MFCC frames of 10 coefficients, as the KWS benchmark.",
    ),
    _classifier(
        gesture_lstm,
        name="gesture_lstm",
        input_shape=(50, 3),
        num_classes=4,
        dataset="gestures",
        budgets={},
        int8_tflm=False,
        notes="Not for TFLite Micro. Full-int8 calibration of a Keras 3 LSTM crashes TF 2.21's converter; "
        "float32 converts only with a fixed batch (a [1, 50, 3] signature; with a free batch axis "
        "TensorListReserve needs a static shape) and yields WHILE / VAR_HANDLE ops. Use gesture_cnn on a "
        "microcontroller.",
    ),
    _classifier(
        gesture_cnn,
        name="gesture_cnn",
        input_shape=(50, 3),
        num_classes=4,
        dataset="gestures",
        budgets={"flash_kb": 16, "arena_kb": 8},
        notes="Not in the tutorial: the MCU-friendly gesture model (Conv1D), full int8 on TFLite Micro.",
    ),
    make_entry(
        autoencoder,
        name="autoencoder",
        family="tutorial",
        task="reconstruction",
        input_shape=(64,),
        num_classes=None,
        dataset="digits",
        citation=TUTORIAL,
        budgets={"flash_kb": 24, "arena_kb": 8},
        notes="Sigmoid output: inputs must be scaled to [0, 1]; target = input.",
    ),
    _classifier(
        teacher,
        name="teacher",
        input_shape=(784,),
        num_classes=10,
        dataset="digits",
        budgets={"flash_kb": 640, "arena_kb": 16},
        notes="Distillation teacher; output_activation=None gives logits. On digits use input_shape=(64,).",
    ),
    _classifier(
        student,
        name="student",
        input_shape=(784,),
        num_classes=10,
        dataset="digits",
        budgets={"flash_kb": 64, "arena_kb": 6},
        notes="Distillation student; output_activation=None gives logits. On digits use input_shape=(64,).",
    ),
]
