"""Magnitude pruning: tfmot (through the bridge) or the native Keras 3 callback, then strip for export.

Example:
    >>> from pytest_tinyml import optimize
    >>> result = optimize.prune(model, dataset, target_sparsity=0.5)  # doctest: +SKIP
    >>> round(result.sparsity, 2)  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError, OptimizationError
from pytest_tinyml.optimize import _cached
from pytest_tinyml.optimize.sparsity import gzip_size, measure_sparsity

SCHEDULES = ("polynomial", "constant")
BACKENDS = ("tfmot", "native")


@dataclass
class PruneResult:
    """A pruned, stripped Keras 3 model and the sparsity it really has.

    ``sparsity`` is measured on the returned model's prunable kernels (exact zeros / elements), ``per_layer``
    maps layer name to its fraction. ``gzip_size(artifact)`` measures a converted artifact after gzip -9.
    """

    model: object
    sparsity: float
    per_layer: dict[str, float]
    target_sparsity: float
    schedule: str
    structured: str | None
    backend: str
    history: dict = field(default_factory=dict, repr=False)

    def gzip_size(self, artifact_or_bytes) -> int:
        """gzip -9 size of a converted artifact (see :func:`pytest_tinyml.optimize.gzip_size`)."""
        return gzip_size(artifact_or_bytes)

    def params(self) -> dict:
        """The figures to carry into an artifact's params or a report."""
        return {
            "target_sparsity": self.target_sparsity,
            "sparsity": round(self.sparsity, 6),
            "schedule": self.schedule,
            "structured": self.structured,
            "prune_backend": self.backend,
        }


def prune(
    model,
    dataset,
    *,
    target_sparsity: float = 0.5,
    schedule: str = "polynomial",
    epochs: int = 2,
    batch_size: int = 32,
    structured: str | None = None,
    backend: str = "tfmot",
    learning_rate: float = 1e-3,
    seed: int = 0,
    cache=None,
) -> PruneResult:
    """Prune a trained Keras 3 model by weight magnitude while fine-tuning it, and strip it for export.

    ``schedule="polynomial"`` ramps sparsity from 0 to the target over the first 3/4 of training (cubic, as
    tfmot's PolynomialDecay) and fine-tunes at the target for the rest; ``"constant"`` prunes to the target
    from the first step. ``structured="2:4"`` keeps 2 of every 4 consecutive input-channel weights (50 %).
    ``backend="tfmot"`` runs tensorflow-model-optimization on a tf_keras twin of the model (see
    :mod:`pytest_tinyml.optimize.bridge`); ``backend="native"`` uses :class:`MagnitudePruning`, a Keras 3
    callback written with ``keras.ops`` only (tested on TensorFlow and JAX). The input model is not modified.
    ``cache`` (a ``TinyMLCache``, e.g. the ``tinyml_cache`` fixture) reuses the result of an identical
    earlier run (same model weights, dataset, arguments, backend and library versions).

    Example:
        >>> result = prune(model, datasets.load("digits"), target_sparsity=0.8, epochs=2)  # doctest: +SKIP
        >>> result.sparsity, result.per_layer  # doctest: +SKIP
        (0.8, {'dense': 0.8, 'dense_1': 0.8, 'dense_2': 0.8})
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"prune: schedule={schedule!r} is unknown; use one of {SCHEDULES}.")
    if backend not in BACKENDS:
        raise ConfigError(f"prune: backend={backend!r} is unknown; use one of {BACKENDS}.")
    if structured not in (None, "2:4"):
        raise ConfigError(f"prune: structured={structured!r} is unknown; use None or '2:4'.")
    if not 0.0 < target_sparsity < 1.0:
        raise ConfigError(f"prune: target_sparsity={target_sparsity} must be in (0, 1).")
    if structured:
        target_sparsity = 0.5
    training.arrays(dataset, "prune", model=model)  # bad data (no x_train, NaN, layout, labels) fails now
    params = {
        "target_sparsity": target_sparsity,
        "schedule": schedule,
        "structured": structured,
        "backend": backend,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
    }

    def produce() -> PruneResult:
        end_step, frequency = ramp(dataset, batch_size, epochs)
        training.seed_everything(seed)
        run = _prune_native if backend == "native" else _prune_tfmot
        pruned, history = run(
            model,
            dataset,
            target_sparsity=target_sparsity,
            schedule=schedule,
            structured=structured,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            end_step=end_step,
            frequency=frequency,
        )
        return _result(pruned, params, {k: [float(v) for v in vs] for k, vs in history.items()})

    def save(result: PruneResult, directory) -> None:
        _cached.save_keras(result.model, directory)
        _cached.write_json(directory, "history.json", result.history)

    def load(directory) -> PruneResult:
        return _result(_cached.load_keras(directory), params, _cached.read_json(directory, "history.json"))

    parts = {"model": _cached.model_key(model), "dataset": _cached.dataset_key(dataset), "params": params}
    return _cached.run(cache, "prune", parts, produce, save, load)


def _result(model, params: dict, history: dict) -> PruneResult:
    sparsity, per_layer = measure_sparsity(model)  # always measured on the model returned
    result = PruneResult(
        model=model,
        sparsity=sparsity,
        per_layer=per_layer,
        target_sparsity=params["target_sparsity"],
        schedule=params["schedule"],
        structured=params["structured"],
        backend=params["backend"],
        history=history,
    )
    tag_optimization(model, "pruning", result.params())
    return result


def tag_optimization(model, step: str, figures: dict) -> None:
    """Record on the returned model what was done to it; ``convert`` carries it into the artifact's params
    (``params["pruning"]``, ``params["clustering"]``), so reports name the recipe (``pruned 0.80 int8``)."""
    try:
        model.tinyml_optimization = {**dict(getattr(model, "tinyml_optimization", None) or {}), step: dict(figures)}
    except AttributeError:  # a model class that refuses new attributes: the figures stay on the result
        pass


def ramp(dataset, batch_size: int, epochs: int) -> tuple[int, int]:
    """``(end_step, frequency)`` of the pruning schedule for this many steps of training.

    Masks are recomputed about 20 times; the polynomial ramp ends on a pruning step at 3/4 of training, so
    the target is reached exactly and the last quarter fine-tunes at it.

    Example:
        >>> from types import SimpleNamespace
        >>> ramp(SimpleNamespace(x_train=[0] * 1400), 32, 2)
        (64, 4)
    """
    total_steps = training.steps_per_epoch(dataset, batch_size) * max(1, epochs)
    frequency = max(1, total_steps // 20)
    end_step = max(0, frequency * ((3 * (total_steps - 1) // 4) // frequency))
    return end_step, frequency


def prune_tf_keras(
    legacy,
    dataset,
    *,
    target_sparsity,
    schedule,
    structured,
    epochs,
    batch_size,
    learning_rate,
    end_step,
    frequency,
):
    """Prune and strip a tf_keras model with tfmot; returns ``(stripped tf_keras model, history dict)``."""
    from pytest_tinyml.optimize._legacy import tf_keras, tfmot

    tfk, mot = tf_keras(), tfmot()
    sparsity_api = mot.sparsity.keras
    if schedule == "constant" or structured:
        pruning_schedule = sparsity_api.ConstantSparsity(target_sparsity, begin_step=0, frequency=frequency)
    else:
        pruning_schedule = sparsity_api.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=target_sparsity,
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
    kwargs = {"sparsity_m_by_n": (2, 4)} if structured else {}
    try:
        wrapped = sparsity_api.prune_low_magnitude(legacy, pruning_schedule=pruning_schedule, **kwargs)
    except (ValueError, RuntimeError) as exc:
        raise OptimizationError(
            f"tfmot cannot prune model {legacy.name!r}: {exc}. Try backend='native' (Keras 3 callback)."
        ) from exc
    x, y = training.arrays(dataset, "prune")
    training.compile_for(wrapped, dataset, tfk, reference=legacy, learning_rate=learning_rate)
    history = wrapped.fit(
        x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[sparsity_api.UpdatePruningStep()]
    )
    return sparsity_api.strip_pruning(wrapped), dict(history.history)


def _prune_tfmot(model, dataset, **kwargs):
    from pytest_tinyml.optimize.bridge import legacy_copy, to_keras3

    legacy, from_keras3 = legacy_copy(model)
    stripped, history = prune_tf_keras(legacy, dataset, **kwargs)
    return (to_keras3(stripped) if from_keras3 else stripped), history


def _prune_native(
    model,
    dataset,
    *,
    target_sparsity,
    schedule,
    structured,
    epochs,
    batch_size,
    learning_rate,
    end_step,
    frequency,
):
    import keras

    from pytest_tinyml.optimize.native_prune import MagnitudePruning

    if not isinstance(model, keras.Model):
        raise ConfigError(
            f"prune: backend='native' prunes Keras 3 models; {getattr(model, 'name', 'this model')!r} is a "
            f"{type(model).__module__.split('.')[0]} {type(model).__name__}. Use backend='tfmot' for tf_keras models."
        )
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    x, y = training.arrays(dataset, "prune")
    training.compile_for(clone, dataset, keras, learning_rate=learning_rate)
    callback = MagnitudePruning(
        target_sparsity, schedule=schedule, end_step=end_step, frequency=frequency, structured=structured
    )
    history = clone.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback])
    return clone, dict(history.history)
