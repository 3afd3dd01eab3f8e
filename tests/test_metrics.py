"""pytest_tinyml.metrics: exact values on small cases, properties with Hypothesis, sklearn as the oracle."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import roc_auc_score
from sklearn.metrics import top_k_accuracy_score as sk_top_k

from pytest_tinyml import metrics
from pytest_tinyml.errors import ConfigError

INT8_SOFTMAX = SimpleNamespace(name="out", shape=(1, 3), dtype="int8", scale=1 / 256, zero_point=-128)

finite = st.floats(-100, 100, allow_nan=False, width=32)
outputs_2d = arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 6)), elements=finite)


def test_accuracy_from_scores_labels_and_one_hot():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert metrics.accuracy([0, 1, 1], scores) == pytest.approx(2 / 3)
    assert metrics.accuracy(np.eye(2)[[0, 1, 1]], scores) == pytest.approx(2 / 3)
    assert metrics.accuracy([0, 1, 1], np.array([0, 1, 1])) == 1.0
    # One sigmoid column: > 0.5 is class 1.
    assert metrics.accuracy([1, 0], [[0.7], [0.2]]) == 1.0


def test_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ConfigError, match="3 labels but 2 predictions"):
        metrics.accuracy([0, 1, 1], [[0.9, 0.1], [0.2, 0.8]])


@given(data=st.data(), n=st.integers(2, 30), classes=st.integers(3, 6))
@settings(max_examples=40, deadline=None)
def test_top_k_accuracy_matches_sklearn(data, n, classes):
    # Distinct scores: sklearn and we break exact ties differently, which is not what this checks.
    scores = data.draw(arrays(np.float64, (n, classes), elements=st.floats(0, 1), unique=True))
    labels = data.draw(arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    k = data.draw(st.integers(1, classes - 1))
    expected = sk_top_k(labels, scores, k=k, labels=list(range(classes)))
    assert metrics.top_k_accuracy(labels, scores, k=k) == pytest.approx(expected)


def test_top_1_accuracy_equals_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]])
    assert metrics.top_k_accuracy([1, 0, 0], scores, k=1) == metrics.accuracy([1, 0, 0], scores)


def test_roc_auc_exact_small_case_with_ties():
    # One tie between a positive and a negative counts one half.
    assert metrics.roc_auc([0, 1, 0, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)


@given(data=st.data(), n=st.integers(2, 60))
@settings(max_examples=60, deadline=None)
def test_roc_auc_matches_sklearn_including_ties(data, n):
    labels = data.draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    if labels.min() == labels.max():
        labels[0] = 1 - labels[0]
    # Few distinct values so ties are common.
    scores = data.draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])
                              | st.floats(-5, 5, allow_nan=False)))
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_of_reconstruction_error_separates_anomalies():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(50, 8))
    anomalies = rng.normal(size=(10, 8)) * 4
    x = np.vstack([normal, anomalies])
    reconstruction = np.vstack([normal * 0.9, anomalies * 0.2])  # the autoencoder only learned "normal"
    errors = metrics.reconstruction_error(x, reconstruction)
    assert errors.shape == (60,)
    assert metrics.roc_auc(np.r_[np.zeros(50), np.ones(10)], errors) > 0.95


def test_roc_auc_needs_both_classes():
    with pytest.raises(ConfigError, match="both classes, got 0 positive and 3 negative"):
        metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3])


@given(outputs_2d)
def test_cosine_of_an_output_with_itself_is_one(x):
    assert metrics.cosine_similarity(x, x) == pytest.approx(1.0)
    assert metrics.snr_db(x, x) == math.inf
    assert metrics.max_error_steps(x, x, 0.5) == 0.0


@given(st.data(), st.tuples(st.integers(1, 12), st.integers(1, 6)))
def test_rmse_mae_are_symmetric_and_ordered(data, shape):
    a = data.draw(arrays(np.float64, shape, elements=finite))
    b = data.draw(arrays(np.float64, shape, elements=finite))
    assert metrics.rmse(a, b) == pytest.approx(metrics.rmse(b, a))
    assert metrics.mae(a, b) == pytest.approx(metrics.mae(b, a))
    # Mean absolute error never exceeds root mean squared error (Jensen).
    assert metrics.mae(a, b) <= metrics.rmse(a, b) + 1e-9
    assert metrics.top1_agreement(a, b) == metrics.top1_agreement(b, a)


@given(outputs_2d, st.floats(0.01, 100))
def test_cosine_is_scale_invariant(x, factor):
    if np.linalg.norm(x) > 0:
        assert metrics.cosine_similarity(x, x * factor) == pytest.approx(1.0)
        assert metrics.cosine_similarity(x, -x) == pytest.approx(-1.0)


def test_exact_values():
    assert metrics.rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    assert metrics.mae([1, 2], [1.5, 1.0]) == 0.75
    assert metrics.relative_l2([3, 4], [3, 3]) == pytest.approx(0.2)
    assert metrics.snr_db([1, 1], [1.1, 0.9]) == pytest.approx(20.0)
    assert metrics.cosine_similarity([1, 0], [0, 1]) == 0.0
    assert metrics.max_error_steps([[0.5, 0.25]], [[0.5, 0.2421875]], 1 / 256) == pytest.approx(2.0)


def test_top1_agreement_counts_samples_not_elements():
    ref = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.5, 0.45]]
    cand = [[0.8, 0.2], [0.7, 0.3], [0.1, 0.9], [0.45, 0.5]]
    assert metrics.top1_agreement(ref, cand) == 0.5


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ConfigError, match=r"\(2, 3\) vs \(2, 4\)"):
        metrics.rmse(np.zeros((2, 3)), np.zeros((2, 4)))


def test_unit_axis_from_a_runtime_is_tolerated():
    assert metrics.rmse(np.ones((4, 3)), np.ones((4, 1, 3))) == 0.0


def test_saturation_rate_of_raw_and_dequantized_outputs():
    raw = np.array([[-128, 0, 127], [-128, -128, 5]], dtype=np.int8)
    assert metrics.saturation_rate(raw) == pytest.approx(4 / 6)
    dequantized = (raw.astype(np.float64) + 128) / 256  # scale 1/256, zero point -128
    assert metrics.saturation_rate(dequantized, quant=INT8_SOFTMAX) == pytest.approx(4 / 6)
    assert metrics.saturation_rate(np.array([0, 255, 3], dtype=np.uint8)) == pytest.approx(2 / 3)


def test_saturation_rate_of_floats_needs_the_quantization():
    with pytest.raises(ConfigError, match="quant="):
        metrics.saturation_rate(np.array([0.1, 0.2]))


def test_constant_output_detection():
    assert metrics.is_constant_output(np.tile([0.1, 0.9], (5, 1)))
    assert not metrics.is_constant_output([[0.1, 0.9], [0.2, 0.8]])
    assert metrics.is_constant_output([[0.1, 0.9], [0.1005, 0.8995]], atol=1e-3)
    assert not metrics.is_constant_output([[0.1, 0.9]])  # one sample says nothing


def test_compare_outputs_with_and_without_quantization():
    ref = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    cand = np.round(ref * 256) / 256
    figures = metrics.compare_outputs(ref, cand)
    assert "max_error_steps" not in figures
    assert figures["top1_agreement"] == 1.0 and figures["samples"] == 2
    assert not figures["candidate_constant"]
    quantized = metrics.compare_outputs(ref, cand, output_quant=INT8_SOFTMAX)
    # Rounding to the grid is off by at most half a step.
    assert quantized["max_error_steps"] <= 0.5 + 1e-9
    assert quantized["output_scale"] == 1 / 256
    assert quantized["saturation"] == 0.0
    assert quantized["cosine"] > 0.999


def test_non_numeric_input_is_a_config_error():
    with pytest.raises(ConfigError, match="array of numbers"):
        metrics.rmse(["a", "b"], ["a", "b"])


def test_metrics_import_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, pytest_tinyml.metrics; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_clipping_counts_only_values_beyond_the_range():
    # A softmax's zeros sit at qmin: saturated, but not clipped.
    probabilities = np.array([[0.0, 0.0, 1.0], [0.0, 0.25, 0.75]])
    assert metrics.saturation_rate(probabilities, quant=INT8_SOFTMAX) == pytest.approx(4 / 6)
    assert metrics.clipping_rate(probabilities, INT8_SOFTMAX) == 0.0
    assert metrics.clipping_rate([[1.5, -0.5, 0.2]], INT8_SOFTMAX) == pytest.approx(2 / 3)
