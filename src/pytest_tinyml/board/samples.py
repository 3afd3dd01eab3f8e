"""Float inputs as the bytes a board receives: one sample per string, quantized with the one TensorQuant.

``Board.benchmark`` and ``Board.predict`` send what :func:`as_samples` makes; :func:`inputs_fingerprint` is the
sha256 of those bytes, so a board's outputs can be matched to the ``x`` they came from.
"""

from __future__ import annotations

import hashlib

from pytest_tinyml.errors import ConfigError


def as_samples(inputs, quant, n_bytes: int):
    """``inputs`` -> list of raw byte strings, one per sample, in the input tensor's dtype."""
    import numpy as np

    per_sample = int(np.prod(quant.shape[1:])) if len(quant.shape) > 1 else int(np.prod(quant.shape))
    if inputs is None:
        zeros = quant.quantize(np.zeros(per_sample, dtype=np.float32)) if quant.quantized else None
        return [zeros.tobytes() if zeros is not None else bytes(n_bytes)]
    x = np.asarray(inputs)
    if x.size == 0:
        raise ConfigError(f"inputs of shape {x.shape} hold no sample: give at least one sample of the model's "
                          f"input {tuple(quant.shape)}")
    if x.dtype.kind == "f":  # NaN would quantize to whatever the cast gives, Inf to qmin/qmax: outputs of nothing
        from pytest_tinyml.validation import check_finite

        check_finite(x, role="inputs")
    if x.size == per_sample:
        x = x.reshape(1, per_sample)
    if x.size % per_sample or x.shape[0] * per_sample != x.size:
        raise ConfigError(f"inputs of shape {x.shape} do not match the model's input {tuple(quant.shape)}: give "
                          f"an array whose first axis is the sample and whose other axes hold {per_sample} values")
    x = x.reshape(x.shape[0], per_sample)
    if np.issubdtype(x.dtype, np.floating):
        q = quant.quantize(x) if quant.quantized else x.astype(quant.dtype)
    elif x.dtype == np.dtype(quant.dtype):
        q = x
    else:
        raise ConfigError(f"inputs are {x.dtype}, the model's input tensor is {quant.dtype}: pass float values "
                          f"(they are quantized with scale {quant.scale}, zero point {quant.zero_point}) or "
                          f"{quant.dtype} values")
    out = [np.ascontiguousarray(row).tobytes() for row in q]
    if any(len(b) != n_bytes for b in out):
        raise ConfigError(f"an input sample is {len(out[0])} bytes, the board's input tensor takes {n_bytes}")
    return out


def sample_bytes(quant) -> int:
    """Bytes of one sample of a tensor (its shape without the batch axis, in its dtype)."""
    import numpy as np

    shape = quant.shape[1:] if len(quant.shape) > 1 else quant.shape
    return int(np.prod(shape)) * np.dtype(quant.dtype).itemsize


def inputs_fingerprint(x, quant) -> str:
    """sha256 of ``x`` as the board receives it: each sample quantized with ``quant`` (the one TensorQuant).

    Example:
        >>> inputs_fingerprint(x_test[:300], artifact.inputs[0])[:8]  # doctest: +SKIP
        '5d41402a'
    """
    digest = hashlib.sha256()
    for sample in as_samples(x, quant, sample_bytes(quant)):
        digest.update(sample)
    return digest.hexdigest()
