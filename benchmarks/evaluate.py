"""Batched LiteRT evaluation vs the per-sample ``set_tensor``/``invoke`` loop that TFLite tutorials use.

Trains a small MLP on scikit-learn's digits for a few epochs, converts it to full int8 with
``pytest_tinyml.convert``, then evaluates every test sample both ways, measured side by side in one run
(interleaved repetitions, so machine load hits both alike):

* batched: ``LiteRTRunner.predict`` (quantize the whole set, resize the batch dimension, one ``invoke``,
  dequantize);
* tutorial loop: for each sample, quantize it, ``set_tensor``, ``invoke``, ``get_tensor``, dequantize.

Both include quantization and dequantization. The script checks that both give the same outputs and prints
the two median times and their ratio (goal: at least 10x).

    .venv/bin/python benchmarks/evaluate.py                # 10 epochs, 15 repetitions
    .venv/bin/python benchmarks/evaluate.py --repeats 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = 10.0


def train_int8_mlp(dataset, epochs: int):
    import keras

    import pytest_tinyml as tinyml

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(dataset.input_shape),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(dataset.num_classes, activation="softmax"),
        ],
        name="digits_mlp",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=32, verbose=0)
    return tinyml.convert(model, "int8", representative=dataset.x_train[:300], name="digits_mlp")


def tutorial_loop(content: bytes, x):
    """What the TFLite tutorials do: one set_tensor/invoke/get_tensor per sample, quantizing by hand."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]

    def run():
        rows = []
        for sample in x:
            scaled = sample / in_scale
            q = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + in_zero, -128, 127).astype(np.int8)
            interpreter.set_tensor(inp["index"], q[None, ...])
            interpreter.invoke()
            raw = interpreter.get_tensor(out["index"])[0]
            rows.append((raw.astype(np.float32) - out_zero) * out_scale)
        return np.stack(rows)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    import numpy as np

    import pytest_tinyml as tinyml
    from pytest_tinyml.runtime.litert import LiteRTRunner

    dataset = tinyml.datasets.load("digits")
    x, y = dataset.x_test, dataset.y_test
    artifact = train_int8_mlp(dataset, args.epochs)
    runner = LiteRTRunner(artifact)
    loop = tutorial_loop(artifact.content, x)

    batched_out, loop_out = runner.predict(x), loop()  # warm-up, and the equality check
    if not np.array_equal(batched_out, loop_out):
        print(f"outputs differ: max |difference| {np.abs(batched_out - loop_out).max()}", file=sys.stderr)
        return 1

    batched_s, loop_s = [], []
    for _ in range(args.repeats):  # interleaved, so load spikes hit both
        start = time.perf_counter()
        runner.predict(x)
        batched_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        loop()
        loop_s.append(time.perf_counter() - start)

    batched, looped = statistics.median(batched_s), statistics.median(loop_s)
    accuracy = float((batched_out.argmax(axis=1) == y).mean())
    ratio = looped / batched
    print(f"model: {artifact.name} int8, {artifact.size} bytes; {len(x)} digits test samples; "
          f"int8 accuracy {accuracy:.4f} (identical outputs both ways)")
    print(f"batched LiteRTRunner.predict : {batched * 1e3:8.3f} ms  ({batched / len(x) * 1e6:6.2f} us/sample)")
    print(f"tutorial per-sample loop     : {looped * 1e3:8.3f} ms  ({looped / len(x) * 1e6:6.2f} us/sample)")
    print(f"speed-up                     : {ratio:8.1f}x  (goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})")
    print(f"medians of {args.repeats} interleaved repetitions")
    return 0 if ratio >= GOAL else 2


if __name__ == "__main__":
    sys.exit(main())
