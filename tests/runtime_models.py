"""Tiny real TFLite models for the runtime, TFLM, analyzer and loader tests (built once per process).

Dense and conv models convert safely in-process with ``tf.lite.TFLiteConverter`` (only recurrent layers
crash the calibrator), which costs ~1 s per model instead of a converter child process each. Weights are
seeded so every run builds the same bytes.
"""

from __future__ import annotations

import functools

import numpy as np

RNG_SEED = 1234


def _convert(model, sample_shape, *, int8: bool):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(RNG_SEED)
        calibration = rng.uniform(0.0, 1.0, (100, *sample_shape)).astype(np.float32)

        def representative():
            for i in range(len(calibration)):
                yield [calibration[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _mlp(inputs: int = 64, hidden: int = 32, classes: int = 10, batch_size: int | None = None):
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    return keras.Sequential(
        [
            keras.Input((inputs,), batch_size=batch_size),
            keras.layers.Dense(hidden, activation="relu", bias_initializer="random_normal"),
            keras.layers.Dense(classes, activation="softmax", bias_initializer="random_normal"),
        ]
    )


@functools.cache
def mlp_int8_bytes() -> bytes:
    """int8 MLP 64 -> 32 -> 10 with int8 I/O and a free batch dimension."""
    return _convert(_mlp(), (64,), int8=True)


@functools.cache
def mlp_float_bytes() -> bytes:
    """float32 MLP 64 -> 32 -> 10."""
    return _convert(_mlp(), (64,), int8=False)


@functools.cache
def mlp_int8_batch_one_bytes() -> bytes:
    """The int8 MLP converted with a fixed batch of 1 (shape signature [1, 64])."""
    return _convert(_mlp(batch_size=1), (64,), int8=True)


@functools.cache
def mlp_int8_batch_bytes(batch: int) -> bytes:
    """The int8 MLP converted with a fixed batch (input shape [batch, 64])."""
    return _convert(_mlp(batch_size=batch), (64,), int8=True)


@functools.cache
def cnn_int8_bytes() -> bytes:
    """int8 CNN: Conv2D(4, 3x3) -> DepthwiseConv2D(3x3) -> AveragePooling -> Flatten -> Dense(10)."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, activation="relu"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    return _convert(model, (8, 8, 1), int8=True)


def artifact(content: bytes, name: str):
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    return TFLiteArtifact.from_bytes(content, name=name)


def inputs(n: int, shape=(64,), seed: int = 0) -> np.ndarray:
    """Float inputs in [0, 1), the calibration range."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype(np.float32)


@functools.cache
def topk_float_bytes() -> bytes:
    """float32 Dense(8) -> top_k(3): TOPK_V2 runs in LiteRT but TFLite Micro has no kernel for it."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8), keras.layers.Lambda(lambda t: keras.ops.top_k(t, 3)[0])]
    )
    return _convert(model, (16,), int8=False)


@functools.cache
def conv1d_mean_int8_bytes() -> bytes:
    """int8 Conv1D -> MaxPool -> GlobalAveragePooling1D (MEAN) -> Dense: the op mix where XNNPACK's int8 MEAN
    rounds differently from the builtin and TFLite Micro kernels."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    model = keras.Sequential(
        [
            keras.Input((50, 3)),
            keras.layers.Conv1D(16, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Conv1D(32, 5, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    return _convert(model, (50, 3), int8=True)


@functools.cache
def residual_int8_bytes() -> bytes:
    """int8 Conv2D + BatchNorm blocks with a residual ADD, like ResNet-8: the optimized builtin kernels round
    differently from the reference kernels (and TFLite Micro) here."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.AveragePooling2D(4)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return _convert(keras.Model(inputs, outputs), (16, 16, 3), int8=True)


@functools.cache
def hybrid_conv_bytes() -> bytes:
    """Dynamic-range (hybrid) Conv2D(64, 3x3) on 8x8x4: int8 weights (2304 of them, above the converter's
    1024-element threshold) with float activations. LiteRT runs it; TFLite Micro has no hybrid kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(RNG_SEED)
    model = keras.Sequential(
        [keras.Input((8, 8, 4)), keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.Flatten(),
         keras.layers.Dense(3)]
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    return converter.convert()


@functools.cache
def two_input_int8_bytes() -> bytes:
    """int8 Dense(4, softmax) over Concatenate(a, Dense(8)(b)): two (8,) inputs, int8 I/O."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(RNG_SEED)
    a, b = keras.Input((8,)), keras.Input((8,))
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Concatenate()([a, keras.layers.Dense(8)(b)]))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model([a, b], out))
    calibration = np.random.default_rng(RNG_SEED).uniform(0.0, 1.0, (50, 2, 1, 8)).astype(np.float32)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([pair[0], pair[1]] for pair in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@functools.cache
def wide_output_int8_bytes() -> bytes:
    """int8 Dense(64) on 64 inputs, its output concatenated 64 times: 4096 output bytes per sample (64 lines of
    tinyml-predictions, more than the 48 a board holds for resend)."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(64)(inputs)
    eight = keras.layers.Concatenate()([hidden] * 8)  # TFLite Micro's CONCATENATION takes at most 10 inputs
    return _convert(keras.Model(inputs, keras.layers.Concatenate()([eight] * 8)), (64,), int8=True)


@functools.cache
def two_output_int8_bytes() -> bytes:
    """int8 Dense(32, relu) on 64 inputs with two Dense(10, softmax) heads: two outputs of the same width."""
    import keras

    keras.utils.set_random_seed(RNG_SEED)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    heads = [keras.layers.Dense(10, activation="softmax")(hidden) for _ in range(2)]
    return _convert(keras.Model(inputs, heads), (64,), int8=True)
