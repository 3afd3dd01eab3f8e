"""Measure what pruning actually reached, and what it buys after compression.

The policy of "prunable weight" is tfmot's: the kernel of Dense and Conv layers, the depthwise kernel of
DepthwiseConv, the pointwise kernel of SeparableConv, the input and recurrent kernels of LSTM and GRU. Biases,
BatchNorm and the like are never pruned.
"""

from __future__ import annotations

import gzip

_KERNEL_OF = {
    "Dense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "Conv3D": ("kernel",),
    "Conv1DTranspose": ("kernel",),
    "Conv2DTranspose": ("kernel",),
    "DepthwiseConv1D": ("depthwise_kernel", "kernel"),  # tf_keras name, Keras 3 name
    "DepthwiseConv2D": ("depthwise_kernel", "kernel"),
    "SeparableConv1D": ("pointwise_kernel",),
    "SeparableConv2D": ("pointwise_kernel",),
    "LSTM": ("kernel", "recurrent_kernel"),
    "GRU": ("kernel", "recurrent_kernel"),
}


def prunable_weights(layer) -> list:
    """The variables of ``layer`` that magnitude pruning sparsifies (Keras 3 or tf_keras layer).

    Example:
        >>> import keras
        >>> layer = keras.layers.Dense(2)
        >>> layer.build((None, 3))
        >>> [w.name for w in prunable_weights(layer)]
        ['kernel']
    """
    inner = getattr(layer, "layer", layer)  # a tfmot wrapper owns the variables of the layer it wraps
    names = _KERNEL_OF.get(type(inner).__name__, ())
    return [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in names]


def iter_layers(model):
    """Every leaf layer of a model, nested models flattened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from iter_layers(layer)
        else:
            yield layer


def measure_sparsity(model) -> tuple[float, dict[str, float]]:
    """Fraction of exact zeros over all prunable kernels, and per layer (``{layer name: fraction}``).

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, use_bias=False)])
        >>> m.layers[0].set_weights([np.array([[0, 1], [0, 1], [0, 1], [0, 1]], "float32")])
        >>> measure_sparsity(m)
        (0.5, {'dense': 0.5})
    """
    import numpy as np

    zeros = total = 0
    per_layer: dict[str, float] = {}
    for layer in iter_layers(model):
        arrays = [np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in prunable_weights(layer)]
        if not arrays:
            continue
        layer_zeros = sum(int(np.count_nonzero(a == 0)) for a in arrays)
        layer_total = sum(a.size for a in arrays)
        per_layer[layer.name] = layer_zeros / layer_total
        zeros += layer_zeros
        total += layer_total
    return (zeros / total if total else 0.0), per_layer


def gzip_size(artifact_or_bytes) -> int:
    """Size in bytes of the flatbuffer after gzip -9: what pruning saves once the firmware image is compressed.

    TFLite stores pruned weights densely, so a pruned model is as large as the dense one until compressed.
    Accepts a ``TFLiteArtifact`` (its ``.content``), ``bytes``, or a path to a file.

    Example:
        >>> gzip_size(bytes(1000)) < 100
        True
    """
    from pathlib import Path

    data = getattr(artifact_or_bytes, "content", artifact_or_bytes)
    if isinstance(data, (str, Path)):
        data = Path(data).read_bytes()
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))


def tflite_weight_sparsity(artifact_or_bytes, *, min_size: int = 64) -> float:
    """Fraction of exact zeros in the constant weight tensors (>= 2-D, ``min_size`` elements) of a flatbuffer.

    Shows the sparsity that survived conversion and quantization: in symmetric int8 weights a pruned weight
    is the integer 0.

    Example:
        >>> tflite_weight_sparsity(artifact)  # doctest: +SKIP
        0.5
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    data = getattr(artifact_or_bytes, "content", artifact_or_bytes)
    interpreter = Interpreter(model_content=bytes(data))
    zeros = total = 0
    for detail in interpreter.get_tensor_details():
        if len(detail["shape"]) < 2 or int(np.prod(detail["shape"])) < min_size:
            continue
        if np.dtype(detail["dtype"]) not in (np.int8, np.float32, np.float16):
            continue
        try:
            value = interpreter.get_tensor(detail["index"])  # constants only; activations are unallocated
        except ValueError:
            continue
        # int8 weights are quantized symmetrically (zero point 0), so a pruned weight stays exactly 0.
        zeros += int(np.count_nonzero(value == 0))
        total += value.size
    return zeros / total if total else 0.0
