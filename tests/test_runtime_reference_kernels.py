"""LiteRT's reference kernels agree with TFLite Micro's bit for bit, or within 1 LSB."""

from __future__ import annotations

import numpy as np
import pytest
import runtime_models as rm

from pytest_tinyml.runtime.litert import LiteRTRunner
from pytest_tinyml.runtime.tflm import TFLMRunner


@pytest.mark.slow
@pytest.mark.parametrize(
    "build", [rm.conv1d_mean_int8_bytes, rm.residual_int8_bytes, rm.cnn_int8_bytes, rm.mlp_int8_bytes]
)
def test_reference_kernels_match_tflm(build):
    artifact = rm.artifact(build(), name=build.__name__)
    shape = tuple(artifact.inputs[0].shape[1:])
    x = rm.inputs(200, shape=shape, seed=3)
    micro = TFLMRunner(artifact).predict_raw(x).astype(np.int32)
    reference = LiteRTRunner(artifact, reference_kernels=True).predict_raw(x).astype(np.int32)
    assert np.abs(reference - micro).max() <= 1
    # The default (XNNPACK) stays usable for evaluation: same top-1 on almost every sample.
    default = LiteRTRunner(artifact).predict_raw(x).astype(np.int32)
    assert (default.argmax(axis=1) == micro.argmax(axis=1)).mean() >= 0.95
