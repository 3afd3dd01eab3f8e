"""The Keras 3 <-> tf_keras bridge: rebuild a model layer by layer in the other Keras, weights included.

tensorflow-model-optimization only accepts tf_keras (Keras 2) models, and a Keras 3 JSON config does not load
into tf_keras as-is (serialized objects carry a ``module``, dtypes are policy dicts, new keys such as
``quantization_config``). The bridge therefore walks the functional graph (skip connections and nested models
included), rebuilds every layer from a translated config in the other library, calls it on the translated
tensors, and copies the weights. Layers it cannot carry raise :class:`OptimizationError` naming the layer.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> legacy = to_tf_keras(m)
    >>> back = to_keras3(legacy)
    >>> [type(layer).__name__ for layer in back.layers]
    ['Dense']
"""

from __future__ import annotations

import inspect

from pytest_tinyml.errors import OptimizationError

# Layer classes both libraries define with the same name, config keys and weight order.
# fmt: off
SUPPORTED_LAYERS = frozenset(
    {
        "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
        "BatchNormalization", "LayerNormalization", "ReLU", "LeakyReLU", "Softmax", "Activation",
        "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
        "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
        "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
        "Rescaling", "LSTM", "GRU",
    }
)
# fmt: on

# Keys one library has and the other lacks; dropped when they hold the neutral value listed here.
_NEUTRAL_EXTRA_KEYS = {
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "synchronized": False,
    "groups": 1,
    "optional": False,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "fused": None,
    "virtual_batch_size": None,
    "adjustment": None,
    "rms_scaling": False,
    "zero_output_for_mask": False,
    "seed": None,
    "use_cudnn": "auto",
    "time_major": False,
    "implementation": 2,
    "reset_after": True,
}
_TFMOT_WRAPPERS = {
    "PruneLowMagnitude",
    "ClusterWeights",
    "QuantizeWrapper",
    "QuantizeWrapperV2",
    "QuantizeLayer",
}
_SERIALIZED_KINDS = {
    "initializer": "initializers",
    "regularizer": "regularizers",
    "constraint": "constraints",
}

_HOW_TO_FIX = (
    "Build the model from the supported layers ({supported}), or run this recipe on a tf_keras model you "
    "build yourself (tfmot accepts those directly)."
)


def to_tf_keras(model):
    """Rebuild a Keras 3 model in tf_keras with the same topology, layer names and weights.

    Works for Sequential and functional models, skip connections and nested models included; the result is a
    tf_keras functional model (tfmot's input). Outputs agree with the original within float rounding.

    Example:
        >>> import keras
        >>> legacy = to_tf_keras(keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)]))
        >>> legacy.count_params()
        27
    """
    import keras

    from pytest_tinyml.optimize._legacy import tf_keras

    tfk = tf_keras()
    if not isinstance(model, keras.Model):
        raise OptimizationError(
            f"to_tf_keras expects a Keras 3 model, got {type(model).__name__}. Pass a keras.Model "
            "(tf_keras models need no bridge)."
        )
    graph = _keras3_graph(model)
    inputs = [
        tfk.Input(batch_shape=tuple(t.shape), dtype=str(t.dtype), name=_input_name(t)) for t in graph.inputs
    ]
    pairs: list[tuple[object, object]] = []
    translated: dict[int, object] = {}

    def operation_fn(op):
        if id(op) not in translated:
            if isinstance(op, keras.Model):
                translated[id(op)] = to_tf_keras(op)
            elif not isinstance(op, keras.layers.Layer):
                raise OptimizationError(
                    f"Model {model.name!r} applies keras.ops operation {op.name!r} ({type(op).__name__}) directly "
                    "in its functional graph; the bridge carries layers only. Use the equivalent layer "
                    "(keras.layers.Add, Multiply, Reshape, Activation, ...) instead."
                )
            else:
                layer = _translate_layer(op, tfk, "tf_keras", model.name)
                translated[id(op)] = layer
                pairs.append((op, layer))
        return translated[id(op)]

    outputs = graph._run_through_graph(inputs[0] if len(inputs) == 1 else inputs, operation_fn=operation_fn)
    legacy = tfk.Model(inputs=inputs, outputs=outputs, name=model.name)
    for source, target in pairs:
        _copy_weights(source, target, model.name)
    return legacy


def to_keras3(model):
    """Rebuild a tf_keras model (for example tfmot's stripped output) as a Keras 3 functional model.

    Wrapper layers left by tfmot (pruning, clustering, quantization) must be stripped first; QAT models stay
    in tf_keras and convert from there.

    Example:
        >>> import keras
        >>> m = to_keras3(to_tf_keras(keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])))
        >>> isinstance(m, keras.Model)
        True
    """
    import keras
    import tensorflow as tf

    from pytest_tinyml.optimize._legacy import tf_keras

    tfk = tf_keras()
    if not isinstance(model, tfk.Model):
        raise OptimizationError(
            f"to_keras3 expects a tf_keras model, got {type(model).__name__}; Keras 3 models need no bridge."
        )
    if isinstance(model, tfk.Sequential) and not model.built:
        raise OptimizationError(f"Sequential model {model.name!r} is not built: give it an Input first.")
    if not getattr(model, "_is_graph_network", False):
        raise OptimizationError(
            f"Model {model.name!r} is a subclassed tf_keras model; only Sequential and functional models "
            "can be rebuilt. Rewrite it as a functional model."
        )
    inputs = [
        keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype.name, name=t.name.split(":")[0])
        for t in model.inputs
    ]
    tensors = {id(t): k for t, k in zip(model.inputs, inputs, strict=True)}
    pairs: list[tuple[object, object]] = []
    translated: dict[int, object] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(id(t) not in tensors for t in node.keras_inputs):
                continue
            layer = node.layer
            if id(layer) not in translated:
                if isinstance(layer, tfk.Model):
                    translated[id(layer)] = to_keras3(layer)
                else:
                    target = _translate_layer(layer, keras, "Keras 3", model.name)
                    translated[id(layer)] = target
                    pairs.append((layer, target))

            def swap(x):
                return tensors[id(x)] if id(x) in tensors else x

            args = tf.nest.map_structure(swap, node.call_args)
            kwargs = tf.nest.map_structure(swap, node.call_kwargs)
            out = translated[id(layer)](*args, **kwargs)
            for t, k in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out), strict=True):
                tensors[id(t)] = k
    missing = [t.name for t in model.outputs if id(t) not in tensors]
    if missing:
        raise OptimizationError(f"Outputs {missing} of model {model.name!r} are not connected to its inputs.")
    outputs = [tensors[id(t)] for t in model.outputs]
    rebuilt = keras.Model(
        inputs=inputs, outputs=outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )
    for source, target in pairs:
        _copy_weights(source, target, model.name)
    return rebuilt


def legacy_copy(model):
    """A tf_keras copy of ``model`` for tfmot to wrap and train: ``(copy, came_from_keras3)``.

    tfmot's pruning and clustering wrap the layer objects they are given, so training would change the
    caller's model; a Keras 3 model is rebuilt by :func:`to_tf_keras`, a tf_keras model is cloned with its
    weights. Anything else raises :class:`OptimizationError`.

    Example:
        >>> import keras
        >>> copy, from_keras3 = legacy_copy(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        >>> from_keras3
        True
    """
    import keras

    from pytest_tinyml.optimize._legacy import tf_keras

    tfk = tf_keras()
    if isinstance(model, keras.Model):
        return to_tf_keras(model), True
    if isinstance(model, tfk.Model):
        if not getattr(model, "_is_graph_network", False) and not isinstance(model, tfk.Sequential):
            raise OptimizationError(
                f"Model {model.name!r} is a subclassed tf_keras model; tfmot needs a Sequential or functional one."
            )
        clone = tfk.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone, False
    raise OptimizationError(
        f"Expected a Keras 3 or tf_keras model, got {type(model).__name__}. Pass the keras.Model to optimize."
    )


def _keras3_graph(model):
    """The functional graph behind a Keras 3 model (Sequential keeps one in ``_functional``)."""
    import keras

    graph = model
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise OptimizationError(
                f"Sequential model {model.name!r} is not built: start it with keras.Input(shape) so the bridge "
                "knows the input shape."
            )
    if not hasattr(graph, "_run_through_graph"):
        raise OptimizationError(
            f"Model {model.name!r} is a subclassed keras.Model; the bridge rebuilds Sequential and functional "
            "models only. Rewrite it as a functional model."
        )
    return graph


def _input_name(tensor) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else None


def _translate_layer(layer, target_lib, target_label: str, model_name: str):
    """Build ``layer``'s twin in ``target_lib`` (the keras or tf_keras module) from its translated config."""
    class_name = type(layer).__name__
    target_cls = getattr(target_lib.layers, class_name, None)
    if class_name in _TFMOT_WRAPPERS:
        raise OptimizationError(
            f"Layer {layer.name!r} ({class_name}) of model {model_name!r} is a tfmot wrapper. Strip it first "
            "(tfmot.sparsity.keras.strip_pruning / tfmot.clustering.keras.strip_clustering); a QAT model stays "
            "in tf_keras: convert it from there."
        )
    if class_name not in SUPPORTED_LAYERS or target_cls is None:
        raise OptimizationError(
            f"Layer {layer.name!r} ({class_name}) of model {model_name!r} cannot be carried to "
            f"{target_label}. " + _HOW_TO_FIX.format(supported=", ".join(sorted(SUPPORTED_LAYERS)))
        )
    accepted = _accepted_keys(target_cls)
    config = {}
    for key, value in layer.get_config().items():
        if hasattr(value, "__len__") and type(value).__name__ == "ListWrapper":  # tf_keras tracking list
            value = list(value)
        if key == "dtype":
            value = _dtype_name(value)
        elif key == "axis" and class_name == "BatchNormalization" and isinstance(value, list):
            if len(value) != 1:
                raise OptimizationError(
                    f"Layer {layer.name!r} (BatchNormalization) of model {model_name!r} normalizes over axes "
                    f"{value}; the bridge carries a single axis only."
                )
            value = value[0]
        elif key == "activation":
            value = _activation(value, target_lib, layer, model_name)
        elif isinstance(value, dict) and "class_name" in value:
            value = _object(key, value, target_lib, layer, model_name)
        if key not in accepted:
            # Initializers cannot matter (the weights are copied) and None is "not set" in both libraries.
            if value is None or key.endswith("initializer") or _NEUTRAL_EXTRA_KEYS.get(key, ...) == value:
                continue
            raise OptimizationError(
                f"Layer {layer.name!r} ({class_name}) of model {model_name!r} sets {key}={value!r}, which "
                f"{target_label} does not support. Remove that setting before optimizing."
            )
        config[key] = value
    try:
        return target_cls(**config)
    except (TypeError, ValueError) as exc:
        raise OptimizationError(
            f"Layer {layer.name!r} ({class_name}) of model {model_name!r} cannot be rebuilt in "
            f"{target_label}: {exc}"
        ) from exc


def _accepted_keys(cls) -> set[str]:
    keys = {"name", "trainable", "dtype"}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                keys.add(param.name)
    keys.discard("self")
    return keys


def _dtype_name(value):
    if isinstance(value, dict):  # Keras 3 DTypePolicy
        return value.get("config", {}).get("name", "float32")
    return value


def _activation(value, target_lib, layer, model_name):
    if value is None or isinstance(value, str):
        name = value or "linear"
        try:
            target_lib.activations.get(name)
        except (ValueError, TypeError) as exc:
            raise OptimizationError(
                f"Layer {layer.name!r} of model {model_name!r} uses activation {name!r}, unknown to the target "
                "Keras. Use a standard activation (relu, relu6, sigmoid, softmax, tanh, linear)."
            ) from exc
        return name
    raise OptimizationError(
        f"Layer {layer.name!r} of model {model_name!r} uses a custom activation object {value!r}; the bridge "
        "carries activations by name only. Use a standard activation."
    )


def _object(key: str, value: dict, target_lib, layer, model_name):
    """Rebuild an initializer, regularizer or constraint, keeping only the arguments the target accepts."""
    kind = next((mod for suffix, mod in _SERIALIZED_KINDS.items() if key.endswith(suffix)), None)
    target_cls = getattr(getattr(target_lib, kind), value["class_name"], None) if kind else None
    if target_cls is None or value.get("registered_name") not in (None, value["class_name"]):
        raise OptimizationError(
            f"Layer {layer.name!r} of model {model_name!r} has {key}={value.get('class_name')!r}, which the "
            "bridge cannot carry. Use a built-in initializer, regularizer or constraint."
        )
    accepted = _accepted_keys(target_cls)
    kwargs = {k: v for k, v in (value.get("config") or {}).items() if k in accepted}
    return target_cls(**kwargs)


def _copy_weights(source, target, model_name: str) -> None:
    weights = source.get_weights()
    expected = [tuple(w.shape) for w in target.get_weights()]
    got = [tuple(w.shape) for w in weights]
    if expected != got:
        raise OptimizationError(
            f"Layer {source.name!r} ({type(source).__name__}) of model {model_name!r}: weight shapes {got} do "
            f"not match the rebuilt layer's {expected}. This layer cannot be bridged."
        )
    target.set_weights(weights)
