"""Quantization-aware training with tfmot, on a tf_keras twin of the model.

The result stays a tf_keras model: its fake-quant wrappers carry the learned ranges, and the converter reads
them (``convert(qat_model, "int8", representative=...)``). It is not carried back to Keras 3.

Example:
    >>> from pytest_tinyml import optimize
    >>> qat_model = optimize.qat(model, dataset, epochs=3)  # doctest: +SKIP
"""

from __future__ import annotations

from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError, OptimizationError
from pytest_tinyml.optimize import _cached
from pytest_tinyml.optimize.bridge import to_tf_keras


def qat(
    model,
    dataset,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    preserve_sparsity: bool = False,
    learning_rate: float = 1e-4,
    seed: int = 0,
    cache=None,
):
    """Fine-tune a trained model with fake quantization (int8 weights and activations); return a tf_keras model.

    ``model`` is a Keras 3 model (rebuilt in tf_keras by the bridge) or a tf_keras model (used as given, not
    modified: tfmot clones it). ``preserve_sparsity=True`` uses tfmot's pruning-preserving scheme
    (``Default8BitPrunePreserveQuantizeScheme``): zeros of a pruned model stay zero through QAT. Convert
    the result with ``pytest_tinyml.convert(qat_model, "int8", representative=...)``. With ``cache``
    (a ``TinyMLCache``), an identical earlier run's QAT weights are loaded into a freshly wrapped model.

    Example:
        >>> qat_model = qat(trained_mlp, datasets.load("digits"), epochs=3)  # doctest: +SKIP
        >>> artifact = convert(qat_model, "int8", representative=digits.x_train[:200])  # doctest: +SKIP
    """
    from pytest_tinyml.optimize._legacy import tf_keras

    if epochs < 0:
        raise ConfigError(f"qat: epochs={epochs} must be >= 0.")
    if epochs:
        training.arrays(dataset, "qat", model=model)  # bad data (no x_train, NaN, layout, labels) fails now
    legacy = model if isinstance(model, tf_keras().Model) else to_tf_keras(model)
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "preserve_sparsity": preserve_sparsity,
        "learning_rate": learning_rate,
        "seed": seed,
    }

    def produce():
        quantized = _wrap(legacy, preserve_sparsity)
        if epochs:
            training.seed_everything(seed)
            x, y = training.arrays(dataset, "qat")
            training.compile_for(
                quantized, dataset, tf_keras(), reference=legacy, learning_rate=learning_rate
            )
            quantized.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        return quantized

    def save(quantized, directory) -> None:
        quantized.save_weights(str(directory / "qat.weights.h5"))

    def load(directory):
        quantized = _wrap(legacy, preserve_sparsity)  # the same wrapping, then the trained weights
        quantized.load_weights(str(directory / "qat.weights.h5"))
        return quantized

    if cache is None or not epochs:
        return produce()
    parts = {"model": _cached.model_key(legacy), "dataset": _cached.dataset_key(dataset), "params": params}
    return _cached.run(cache, "qat", parts, produce, save, load)


def _wrap(legacy, preserve_sparsity: bool):
    """tfmot's QAT wrapping of a tf_keras model (default 8-bit scheme, or the pruning-preserving one)."""
    from pytest_tinyml.optimize._legacy import tfmot

    mot = tfmot()
    quantize = mot.quantization.keras
    try:
        if preserve_sparsity:
            annotated = quantize.quantize_annotate_model(legacy)
            scheme = mot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
            return quantize.quantize_apply(annotated, scheme)
        return quantize.quantize_model(legacy)
    except (RuntimeError, ValueError) as exc:
        raise OptimizationError(
            f"tfmot cannot quantize model {legacy.name!r}: {exc}. Layers tfmot's default 8-bit scheme does not "
            "know need a QuantizeConfig, or use post-training int8 (convert(model, 'int8')) instead."
        ) from exc
