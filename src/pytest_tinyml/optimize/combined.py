"""The combined recipe: prune -> strip -> pruning-preserving QAT -> full int8.

Pruning alone leaves float weights that int8 post-training quantization keeps sparse, but QAT afterwards
would revive the zeros. tfmot's ``Default8BitPrunePreserveQuantizeScheme`` fine-tunes with fake quantization
while holding the pruning masks, so the int8 flatbuffer keeps the sparsity (which gzip then turns into
bytes saved).

Example:
    >>> from pytest_tinyml import optimize
    >>> artifact = optimize.pipeline(model, dataset, target_sparsity=0.5)  # doctest: +SKIP
    >>> artifact.params["sparsity_tflite"]  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import dataclasses

from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError
from pytest_tinyml.optimize import _cached


def pipeline(
    model,
    dataset,
    *,
    target_sparsity: float = 0.5,
    qat_epochs: int = 2,
    prune_epochs: int = 2,
    representative=None,
    schedule: str = "polynomial",
    structured: str | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    qat_learning_rate: float = 1e-4,
    seed: int = 0,
    name: str | None = None,
    cache=None,
):
    """Prune (tfmot) a trained Keras 3 model, strip, pruning-preserving QAT, convert to full int8.

    Returns the ``TFLiteArtifact`` from ``pytest_tinyml.convert(qat_model, "int8", ...)`` with these
    extra ``params``: ``target_sparsity``, ``sparsity_pruned`` (after pruning), ``sparsity_qat`` (after QAT,
    float kernels), ``sparsity_tflite`` (exact zeros in the int8 weight tensors), ``schedule``,
    ``structured``, ``prune_epochs``, ``qat_epochs``. ``representative`` defaults to up to 500 training
    samples. ``cache`` (a ``TinyMLCache``) returns the artifact of an identical earlier run.

    Example:
        >>> art = pipeline(trained_mlp, datasets.load("digits"), target_sparsity=0.5)  # doctest: +SKIP
        >>> art.recipe, art.params["sparsity_tflite"]  # doctest: +SKIP
        ('int8', 0.5)
    """
    from pytest_tinyml.conversion import convert, prepare_representative
    from pytest_tinyml.optimize.bridge import legacy_copy
    from pytest_tinyml.optimize.pruning import SCHEDULES, prune_tf_keras, ramp
    from pytest_tinyml.optimize.quantization import qat
    from pytest_tinyml.optimize.sparsity import gzip_size, measure_sparsity, tflite_weight_sparsity

    if schedule not in SCHEDULES:
        raise ConfigError(f"pipeline: schedule={schedule!r} is unknown; use one of {SCHEDULES}.")
    if not 0.0 < target_sparsity < 1.0:
        raise ConfigError(f"pipeline: target_sparsity={target_sparsity} must be in (0, 1).")
    if structured:
        target_sparsity = 0.5
    training.arrays(dataset, "pipeline", model=model)  # bad data (no x_train, NaN, layout, labels) fails now
    if representative is None:
        representative = training.arrays(dataset, "pipeline")[0]
    # An array (generators and Datasets accepted too), so it can be part of the cache key.
    representative = prepare_representative(representative)
    settings = {
        "target_sparsity": target_sparsity,
        "qat_epochs": qat_epochs,
        "prune_epochs": prune_epochs,
        "schedule": schedule,
        "structured": structured,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "qat_learning_rate": qat_learning_rate,
        "seed": seed,
    }

    def produce():
        training.seed_everything(seed)
        end_step, frequency = ramp(dataset, batch_size, prune_epochs)
        stripped, _ = prune_tf_keras(
            legacy_copy(model)[0],
            dataset,
            target_sparsity=target_sparsity,
            schedule=schedule,
            structured=structured,
            epochs=prune_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            end_step=end_step,
            frequency=frequency,
        )
        sparsity_pruned, _ = measure_sparsity(stripped)
        qat_model = qat(
            stripped,
            dataset,
            epochs=qat_epochs,
            batch_size=batch_size,
            preserve_sparsity=True,
            learning_rate=qat_learning_rate,
            seed=seed,
        )
        sparsity_qat, _ = measure_sparsity(qat_model)  # the float kernels inside tfmot's QuantizeWrappers
        artifact = convert(
            qat_model, "int8", representative=representative, name=name or getattr(model, "name", None)
        )
        params = {
            **artifact.params,
            "target_sparsity": target_sparsity,
            "sparsity_pruned": round(sparsity_pruned, 6),
            "sparsity_qat": round(sparsity_qat, 6),
            "sparsity_tflite": round(tflite_weight_sparsity(artifact), 6),
            "schedule": schedule,
            "structured": structured,
            "prune_epochs": prune_epochs,
            "qat_epochs": qat_epochs,
            "optimization": "prune+strip+pqat+int8",
            # What reports read (report.recipe_label: "pruned 0.50 qat int8"), as for optimize.prune.
            "pruning": {"target_sparsity": target_sparsity, "sparsity": round(tflite_weight_sparsity(artifact), 6)},
            "gzip_size": gzip_size(artifact),
        }
        return dataclasses.replace(artifact, params=params)

    parts = {
        "model": _cached.model_key(model),
        "dataset": _cached.dataset_key(dataset),
        "representative": representative,
        "params": settings,
    }
    artifact = _cached.run(cache, "pipeline", parts, produce, _cached.save_artifact, _cached.load_artifact)
    if name and artifact.name != name:
        artifact = dataclasses.replace(artifact, name=name)
    return artifact
