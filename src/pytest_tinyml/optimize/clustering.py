"""Weight clustering (weight sharing) with tfmot: each kernel keeps at most ``clusters`` distinct values.

Like pruning, clustering does not shrink a TFLite file by itself; it makes the weights compress well
(see :func:`pytest_tinyml.optimize.gzip_size`).

Example:
    >>> from pytest_tinyml import optimize
    >>> result = optimize.cluster(model, dataset, clusters=16)  # doctest: +SKIP
    >>> max(result.unique_values.values()) <= 16  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError, OptimizationError
from pytest_tinyml.optimize import _cached
from pytest_tinyml.optimize.sparsity import iter_layers, prunable_weights


@dataclass
class ClusterResult:
    """A clustered, stripped Keras 3 model and the distinct values each clustered kernel has.

    ``unique_values`` maps ``"layer/weight"`` to the count of distinct values in that kernel.
    """

    model: object
    clusters: int
    unique_values: dict[str, int]

    def params(self) -> dict:
        """The figures to carry into an artifact's params or a report."""
        return {"clusters": self.clusters, "max_unique_values": max(self.unique_values.values(), default=0)}


def cluster(
    model,
    dataset,
    *,
    clusters: int = 16,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    seed: int = 0,
    cache=None,
) -> ClusterResult:
    """Cluster the kernels of a trained Keras 3 model into ``clusters`` shared values, fine-tune, strip.

    Centroids start with k-means++ (tfmot's ``KMEANS_PLUS_PLUS``); fine-tuning moves the centroids, not the
    assignment. The input model is not modified. ``cache`` (a ``TinyMLCache``) reuses an identical run.

    Example:
        >>> result = cluster(trained_mlp, datasets.load("digits"), clusters=16, epochs=1)  # doctest: +SKIP
        >>> result.unique_values  # doctest: +SKIP
        {'dense_0/kernel': 16, 'dense_1/kernel': 16, 'predictions/kernel': 16}
    """
    if clusters < 2:
        raise ConfigError(f"cluster: clusters={clusters} must be >= 2.")
    if epochs:
        training.arrays(dataset, "cluster", model=model)  # bad data (no x_train, NaN, layout, labels) fails now
    params = {
        "clusters": clusters,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
    }

    def produce() -> ClusterResult:
        return _result(_cluster(model, dataset, **params), clusters)

    def load(directory) -> ClusterResult:
        return _result(_cached.load_keras(directory), clusters)

    def save(result, directory) -> None:
        _cached.save_keras(result.model, directory)

    parts = {"model": _cached.model_key(model), "dataset": _cached.dataset_key(dataset), "params": params}
    return _cached.run(cache, "cluster", parts, produce, save, load)


def _result(model, clusters: int) -> ClusterResult:
    from pytest_tinyml.optimize.pruning import tag_optimization

    result = ClusterResult(model=model, clusters=clusters, unique_values=count_unique_values(model))
    tag_optimization(model, "clustering", result.params())
    return result


def _cluster(model, dataset, *, clusters, epochs, batch_size, learning_rate, seed):
    from pytest_tinyml.optimize._legacy import tf_keras, tfmot
    from pytest_tinyml.optimize.bridge import legacy_copy, to_keras3

    tfk, mot = tf_keras(), tfmot()
    clustering = mot.clustering.keras
    legacy, from_keras3 = legacy_copy(model)
    training.seed_everything(seed)
    try:
        wrapped = clustering.cluster_weights(
            legacy,
            number_of_clusters=clusters,
            cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
        )
    except (ValueError, RuntimeError) as exc:
        raise OptimizationError(f"tfmot cannot cluster model {legacy.name!r}: {exc}") from exc
    if epochs:
        x, y = training.arrays(dataset, "cluster")
        training.compile_for(wrapped, dataset, tfk, reference=legacy, learning_rate=learning_rate)
        wrapped.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    stripped = clustering.strip_clustering(wrapped)
    return to_keras3(stripped) if from_keras3 else stripped


def count_unique_values(model) -> dict[str, int]:
    """Distinct values per prunable kernel (``{"layer/weight": count}``) of a Keras 3 or tf_keras model.

    Example:
        >>> import keras
        >>> count_unique_values(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")]))
        {'dense/kernel': 1}
    """
    import numpy as np

    counts = {}
    for layer in iter_layers(model):
        for weight in prunable_weights(layer):
            short = weight.name.split("/")[-1].split(":")[0]
            counts[f"{layer.name}/{short}"] = int(np.unique(np.asarray(weight.numpy())).size)
    return counts
