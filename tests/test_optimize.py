"""Optimization recipes on digits with the zoo's mlp: pruning, 2:4, clustering, QAT vs PTQ, the pipeline.

The figures the tests check (and print with -s) are measured, never hard-coded: sparsity reached, int8
accuracies of PTQ vs QAT evaluated in LiteRT with quantized inputs, gzip size of pruned vs dense int8.
"""

from __future__ import annotations

import numpy as np
import pytest

SEED = 0


def digits():
    from pytest_tinyml import datasets

    return datasets.load("digits")


@pytest.fixture(scope="module")
def dataset():
    return digits()


@pytest.fixture(scope="module")
def trained_mlp(dataset):
    """The zoo's mlp for digits (input (64,), 10 classes), trained once per module, seeded."""
    import keras

    from pytest_tinyml import zoo

    keras.utils.set_random_seed(SEED)
    model = zoo.build("mlp", input_shape=(64,), num_classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset.x_train, dataset.y_train, epochs=20, batch_size=32, verbose=0)
    return model


def float_accuracy(model, dataset) -> float:
    probabilities = np.asarray(model.predict(dataset.x_test, verbose=0))
    return float((probabilities.argmax(-1) == dataset.y_test).mean())


def int8_accuracy(artifact, dataset) -> float:
    """Top-1 accuracy of a full-int8 flatbuffer in LiteRT, inputs quantized with the input scale/zero point."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=artifact.content)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    scale, zero_point = inp["quantization"]
    assert inp["dtype"] == np.int8 and scale > 0
    x = np.clip(np.round(dataset.x_test / scale + zero_point), -128, 127).astype(np.int8)
    interpreter.resize_tensor_input(inp["index"], (len(x), *inp["shape"][1:]))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return float((interpreter.get_tensor(out["index"]).argmax(-1) == dataset.y_test).mean())


# --- pruning ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "schedule", "backend"),
    [
        (0.5, "polynomial", "tfmot"),
        (0.8, "polynomial", "tfmot"),
        (0.8, "constant", "tfmot"),
        (0.8, "polynomial", "native"),
    ],
)
def test_optimize_prune_reaches_requested_sparsity(trained_mlp, dataset, target, schedule, backend):
    import keras

    from pytest_tinyml.optimize import prune

    before = [w.copy() for w in trained_mlp.get_weights()]
    result = prune(trained_mlp, dataset, target_sparsity=target, schedule=schedule, backend=backend, epochs=2)
    assert isinstance(result.model, keras.Model)  # Keras 3, stripped: no tfmot wrappers
    assert {type(layer).__name__ for layer in result.model.layers} <= {"InputLayer", "Dense", "Dropout"}
    assert abs(result.sparsity - target) <= 0.02, result.per_layer
    assert all(abs(s - target) <= 0.02 for s in result.per_layer.values()), result.per_layer
    # measured on the returned model, independently of the recipe's own figure
    kernels = [layer.kernel.numpy() for layer in result.model.layers if type(layer).__name__ == "Dense"]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(result.sparsity)
    accuracy = float_accuracy(result.model, dataset)
    print(
        f"prune {backend} {schedule} {target}: sparsity {result.sparsity:.4f}, float accuracy {accuracy:.4f}"
    )
    assert accuracy >= float_accuracy(trained_mlp, dataset) - 0.08
    assert all(np.array_equal(a, b) for a, b in zip(before, trained_mlp.get_weights(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tfmot", "native"])
def test_optimize_prune_two_of_four(trained_mlp, dataset, backend):
    from pytest_tinyml.optimize import prune

    result = prune(trained_mlp, dataset, structured="2:4", backend=backend, epochs=1)
    assert result.target_sparsity == 0.5 and abs(result.sparsity - 0.5) <= 0.02
    for layer in result.model.layers:
        if type(layer).__name__ != "Dense":
            continue
        kernel = layer.kernel.numpy()  # (inputs, outputs): groups of 4 consecutive inputs per output
        zeros_per_group = (kernel.reshape(-1, 4, kernel.shape[1]) == 0).sum(axis=1)
        assert (zeros_per_group >= 2).all(), layer.name


def test_optimize_native_callback_masks_by_magnitude():
    """The Keras 3 callback on a tiny model: schedule values and which weights it zeroes."""
    import keras

    from pytest_tinyml.optimize import MagnitudePruning
    from pytest_tinyml.optimize.native_prune import polynomial_sparsity

    assert polynomial_sparsity(0, 0.8, 0, 10) == 0.0
    assert polynomial_sparsity(5, 0.8, 0, 10) == pytest.approx(0.8 * (1 - 0.5**3))
    assert polynomial_sparsity(10, 0.8, 0, 10) == pytest.approx(0.8)

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, use_bias=False)])
    kernel = np.arange(1, 33, dtype="float32").reshape(8, 4) * np.where(np.arange(32) % 2, 1, -1).reshape(
        8, 4
    )
    model.layers[0].set_weights([kernel])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    callback = MagnitudePruning(0.75, schedule="constant", end_step=0)
    model.fit(
        np.ones((4, 8), "float32"), np.zeros((4, 4), "float32"), epochs=1, verbose=0, callbacks=[callback]
    )
    pruned = model.layers[0].kernel.numpy()
    np.testing.assert_array_equal(pruned != 0, np.abs(kernel) > 24)  # the 24 smallest of 32 magnitudes gone


# --- clustering ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_optimize_cluster_limits_unique_weights(trained_mlp, dataset):
    import keras

    from pytest_tinyml.optimize import cluster

    result = cluster(trained_mlp, dataset, clusters=16, epochs=1)
    assert isinstance(result.model, keras.Model)
    assert set(result.unique_values) == {"dense_0/kernel", "dense_1/kernel", "predictions/kernel"}
    assert all(2 <= n <= 16 for n in result.unique_values.values()), result.unique_values
    accuracy = float_accuracy(result.model, dataset)
    print(f"cluster 16: unique {result.unique_values}, float accuracy {accuracy:.4f}")
    assert accuracy >= float_accuracy(trained_mlp, dataset) - 0.08


# --- QAT vs PTQ, and the combined pipeline ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ptq_artifact(trained_mlp, dataset):
    from pytest_tinyml.conversion import convert

    return convert(trained_mlp, "int8", representative=dataset.x_train)


@pytest.mark.slow
def test_optimize_qat_int8_at_least_ptq(trained_mlp, dataset, ptq_artifact):
    from pytest_tinyml.conversion import convert
    from pytest_tinyml.optimize import qat
    from pytest_tinyml.optimize._legacy import tf_keras

    qat_model = qat(trained_mlp, dataset, epochs=3)
    assert isinstance(qat_model, tf_keras().Model)
    assert any(type(layer).__name__.startswith("QuantizeWrapper") for layer in qat_model.layers)
    artifact = convert(qat_model, "int8", representative=dataset.x_train)
    assert artifact.params.get("qat") is True
    ptq, qat_accuracy = int8_accuracy(ptq_artifact, dataset), int8_accuracy(artifact, dataset)
    print(f"int8 accuracy: PTQ {ptq:.4f}, QAT {qat_accuracy:.4f}")
    assert qat_accuracy >= ptq - 0.005


@pytest.mark.slow
def test_optimize_pipeline_keeps_sparsity_into_int8(trained_mlp, dataset, ptq_artifact):
    from pytest_tinyml.optimize import gzip_size, pipeline, tflite_weight_sparsity

    artifact = pipeline(trained_mlp, dataset, target_sparsity=0.8, prune_epochs=2, qat_epochs=2)
    params = artifact.params
    assert artifact.recipe == "int8" and artifact.inputs[0].dtype == "int8"
    assert abs(params["sparsity_pruned"] - 0.8) <= 0.02
    assert abs(params["sparsity_qat"] - 0.8) <= 0.02  # pruning-preserving QAT kept the zeros
    assert abs(params["sparsity_tflite"] - 0.8) <= 0.02  # and so did int8 conversion
    assert tflite_weight_sparsity(ptq_artifact) < 0.05  # the dense model is not sparse by accident
    dense_gz, pruned_gz = gzip_size(ptq_artifact), gzip_size(artifact)
    accuracy, ptq_accuracy = int8_accuracy(artifact, dataset), int8_accuracy(ptq_artifact, dataset)
    print(
        f"pipeline 0.8: int8 {artifact.size} B, gzip {pruned_gz} B; dense int8 {ptq_artifact.size} B, "
        f"gzip {dense_gz} B; accuracy {accuracy:.4f} vs dense PTQ {ptq_accuracy:.4f}"
    )
    assert pruned_gz < 0.6 * dense_gz
    assert accuracy >= ptq_accuracy - 0.08


def test_optimize_gzip_size_accepts_bytes_paths_and_artifacts(tmp_path):
    from pytest_tinyml.optimize import gzip_size
    from pytest_tinyml.tflite.artifact import TFLiteArtifact

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert gzip_size(bytes(4096)) < 100 < gzip_size(noise)
    path = tmp_path / "noise.bin"
    path.write_bytes(noise)
    assert gzip_size(path) == gzip_size(noise) == gzip_size(str(path))
    assert gzip_size(TFLiteArtifact(content=noise)) == gzip_size(noise)


def test_optimize_bad_arguments_are_typed_errors(dataset):
    import keras

    from pytest_tinyml.errors import ConfigError
    from pytest_tinyml.optimize import prune

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ConfigError, match="schedule='cubic'"):
        prune(model, dataset, schedule="cubic")
    with pytest.raises(ConfigError, match="target_sparsity=1.5"):
        prune(model, dataset, target_sparsity=1.5)
    with pytest.raises(ConfigError, match="structured='1:8'"):
        prune(model, dataset, structured="1:8")
    with pytest.raises(ConfigError, match="x_train and y_train"):
        prune(model, object())


# --- cache --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_optimize_recipes_memoize_in_tinyml_cache(tmp_path):
    """A second identical run is a cache hit returning the same weights; a changed argument is a miss."""
    import keras

    from pytest_tinyml.cache import TinyMLCache
    from pytest_tinyml.datasets import from_arrays
    from pytest_tinyml.optimize import distill, prune, qat

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 16)).astype("float32")
    data = from_arrays(x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    cache = TinyMLCache(tmp_path)

    first = prune(model, data, target_sparsity=0.5, epochs=1, cache=cache)
    again = prune(model, data, target_sparsity=0.5, epochs=1, cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert again.sparsity == first.sparsity and again.model is not first.model
    for a, b in zip(first.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    prune(model, data, target_sparsity=0.6, epochs=1, cache=cache)
    assert cache.misses == 2

    q1 = qat(model, data, epochs=1, cache=cache)
    q2 = qat(model, data, epochs=1, cache=cache)
    assert (cache.misses, cache.hits) == (3, 2)
    for a, b in zip(q1.get_weights(), q2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    student = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3)])
    twin = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3)])
    twin.set_weights(student.get_weights())
    distill(model, student, data, epochs=1, cache=cache)
    distill(model, twin, data, epochs=1, cache=cache)
    assert (cache.misses, cache.hits) == (4, 3)
    for a, b in zip(student.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_optimize_accepts_tf_keras_models_without_changing_them(tmp_path):
    from pytest_tinyml.cache import TinyMLCache
    from pytest_tinyml.datasets import from_arrays
    from pytest_tinyml.errors import ConfigError
    from pytest_tinyml.optimize import cluster, prune
    from pytest_tinyml.optimize._legacy import tf_keras

    tfk = tf_keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 16)).astype("float32")
    data = from_arrays(x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0))
    model = tfk.Sequential([tfk.Input((16,)), tfk.layers.Dense(8, activation="relu"), tfk.layers.Dense(3)])
    before = [w.copy() for w in model.get_weights()]
    cache = TinyMLCache(tmp_path)

    result = prune(model, data, target_sparsity=0.5, epochs=1, cache=cache)
    again = prune(model, data, target_sparsity=0.5, epochs=1, cache=cache)
    assert isinstance(result.model, tfk.Model) and isinstance(again.model, tfk.Model)
    assert abs(result.sparsity - 0.5) <= 0.02 and again.sparsity == result.sparsity and cache.hits == 1
    clustered = cluster(model, data, clusters=4, epochs=1)
    assert isinstance(clustered.model, tfk.Model) and max(clustered.unique_values.values()) <= 4
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(ConfigError, match="backend='tfmot' for tf_keras"):
        prune(model, data, backend="native")


# --- other Keras backends -----------------------------------------------------------------------------------
JAX_SCRIPT = """
import os, sys
import keras, numpy as np
from pytest_tinyml.optimize import Distiller, MagnitudePruning, measure_sparsity
assert keras.backend.backend() == "jax", keras.backend.backend()
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 16)).astype("float32")
y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.75, end_step=4, frequency=1)])
unstructured = measure_sparsity(model)[0]
model.fit(x, y, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.5, end_step=0, structured="2:4")])
kernel = np.asarray(model.layers[0].kernel)
two_of_four = bool(((kernel.reshape(-1, 4, kernel.shape[1]) == 0).sum(axis=1) >= 2).all())
student = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, activation="softmax")])
before = np.asarray(student.layers[0].kernel).copy()
model.trainable = False
distiller = Distiller(model, student, temperature=2.0, alpha=0.5)
distiller.compile(optimizer="adam")
loss = distiller.fit(x, y, epochs=1, verbose=0).history["loss"][-1]
moved = not np.allclose(before, np.asarray(student.layers[0].kernel))
print(unstructured, two_of_four, moved, np.isfinite(loss))
"""


@pytest.mark.slow
def test_optimize_native_pruning_and_distiller_on_jax_backend():
    """The Keras 3 callback and the Distiller use keras.ops only: they train on JAX (in a child process)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    unstructured, two_of_four, moved, finite = done.stdout.split()[-4:]
    assert abs(float(unstructured) - 0.75) <= 0.02
    assert (two_of_four, moved, finite) == ("True", "True", "True")
