"""Regenerate ``board_mlp_int8.tflite``: a 64 -> 32 -> 10 int8 MLP the board tests upload to the sim.

Run: ``.venv/bin/python tests/data/make_board_model.py``. Committed so the board tests need no TensorFlow.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
inp = tf.keras.Input((64,))
hidden = tf.keras.layers.Dense(32, activation="relu")(inp)
out = tf.keras.layers.Dense(10, activation="softmax")(hidden)
model = tf.keras.Model(inp, out)


def representative():
    for _ in range(64):
        yield [rng.uniform(0, 16, (1, 64)).astype("float32")]


converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
Path(__file__).with_name("board_mlp_int8.tflite").write_bytes(converter.convert())
