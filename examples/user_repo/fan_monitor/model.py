"""The team's own model: a small 1-D CNN over accelerometer windows, sized for an ESP32."""

from __future__ import annotations

import keras


def build_model(input_shape=(128, 3), num_classes: int = 4) -> keras.Model:
    """A Conv1D classifier (about 6k parameters).

    Example:
        >>> build_model().output_shape
        (None, 4)
    """
    inputs = keras.Input(shape=input_shape, name="accel")
    x = keras.layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(24, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="condition")(x)
    return keras.Model(inputs, outputs, name="fan_monitor")
