"""Make the firmware's built-in model: a tiny int8 MLP (16 -> 8 relu -> 4 softmax), fixed seed, no training.

It only has to be a real TFLite Micro workload for MLPerf-style ``name%``/``infer N W%`` on a board without an
upload, so weights are seeded random numbers. Run once from the repository root, with the project's venv:

    .venv/bin/python firmware/tools/make_builtin_model.py

Writes ``firmware/models/builtin.tflite`` and, through ``pytest_tinyml.analyze.export_c_array``,
``firmware/main/model_data.cc`` / ``model_data.h`` (``g_model``, ``g_model_len``). Ops: FULLY_CONNECTED, SOFTMAX.
"""

from __future__ import annotations

from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]


def build_tflite(seed: int = 5) -> bytes:
    """The int8 flatbuffer (int8 input and output, so no QUANTIZE/DEQUANTIZE ops)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(16,)),
        tf.keras.layers.Dense(8, activation="relu"),
        tf.keras.layers.Dense(4, activation="softmax"),
    ])
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    samples = rng.uniform(-1, 1, (64, 16)).astype("float32")

    def representative():
        for row in samples:
            yield [row[None, :]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    from pytest_tinyml.analyze import export_c_array

    content = build_tflite()
    path = FIRMWARE / "models" / "builtin.tflite"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    cc, h = export_c_array(path, FIRMWARE / "main")
    print(f"{path} ({len(content)} bytes), {cc}, {h}")


if __name__ == "__main__":
    main()
