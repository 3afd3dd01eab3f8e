"""The checks every reference model goes through, as a base class the per-model modules inherit from.

A module sets ``MODEL`` (a zoo name) and inherits these tests; it adds the checks of the recipes that suit
its model. Budgets come from budgets.toml through the ``budget`` fixture.
"""

from __future__ import annotations

import numpy as np
import pytest

import pytest_tinyml as tinyml


class ReferenceModel:
    """Float training, int8 conversion, accuracy drop, budgets, parity, TFLM, host and device latency."""

    MODEL: str = ""
    CALIBRATION_SAMPLES = 300

    @pytest.fixture(scope="class")
    @classmethod
    def budget(cls, reference_budgets):
        return reference_budgets[cls.MODEL]

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, budget):
        return tinyml.datasets.load(budget.dataset)

    @pytest.fixture(scope="class")
    @classmethod
    def float_model(cls, data, budget, tinyml_cache):
        classes = data.num_classes if tinyml.zoo.spec(cls.MODEL).num_classes is not None else None
        model = tinyml.zoo.build(cls.MODEL, input_shape=data.input_shape, num_classes=classes, seed=0,
                                 **budget.get("build", {}))
        return tinyml_cache.fit(model, data, epochs=budget.epochs)

    @pytest.fixture(scope="class")
    @classmethod
    def int8_model(cls, float_model, data, tinyml_cache):
        return tinyml_cache.convert(float_model, "int8", representative=data.x_train[: cls.CALIBRATION_SAMPLES])

    # Classification checks; anomaly detectors override the first two (see AnomalyModel).
    def test_float_accuracy(self, float_model, data, budget):
        accuracy = tinyml.metrics.accuracy(data.y_test, tinyml.outputs(float_model, data.x_test))
        tinyml.record(model=self.MODEL, recipe="float32", accuracy=accuracy)
        assert accuracy >= budget.min_accuracy, (
            f"{self.MODEL}: float accuracy {accuracy:.4f} < {budget.min_accuracy} (budgets.toml)"
        )

    def test_int8_accuracy_drop(self, float_model, int8_model, data, budget):
        tinyml.assert_accuracy_drop(float_model, int8_model, data.x_test, data.y_test, max_drop=budget.max_drop)

    def test_int8_parity(self, float_model, int8_model, data, budget):
        tinyml.assert_parity(
            float_model, int8_model, data.x_test,
            min_top1_agreement=budget.get("min_top1_agreement"), min_cosine=budget.get("min_cosine"),
        )

    def test_budget(self, int8_model, budget):
        tinyml.assert_budget(int8_model, flash_kb=budget.flash_kb, arena_kb=budget.arena_kb)

    def test_tflm_compatible(self, int8_model):
        tinyml.assert_tflm_compatible(int8_model)

    def test_litert_matches_tflm_kernels(self, int8_model, data):
        """The same int8 model on LiteRT's reference kernels and on TFLite Micro's: within 1 LSB."""
        x = data.x_test[:32]
        litert = tinyml.runtime.litert.LiteRTRunner(int8_model, reference_kernels=True).predict_raw(x).astype(np.int32)
        micro = tinyml.runtime.tflm.TFLMRunner(int8_model).predict_raw(x).astype(np.int32)
        assert np.abs(litert - micro).max() <= 1

    # Host timings on a developer machine are noisy (other processes): gate only large slowdowns here.
    @pytest.mark.tinyml_latency(min_effect=0.25)
    def test_host_latency(self, benchmark, int8_model):
        """TFLite Micro invoke time on this host, into the latency history (gated against the baseline)."""
        tinyml.history.benchmark_invoke(benchmark, tinyml.runtime.tflm.TFLMRunner(int8_model), rounds=30)

    @pytest.mark.tinyml_board
    def test_on_device(self, tinyml_board, int8_model, data, budget):
        kind = tinyml_board.info.get("chip", "unknown")
        limits = budget.board(kind)
        if limits is None:
            pytest.skip(f"budgets.toml has no [{self.MODEL}.board.{kind}] table: add one to check this board kind")
        result = tinyml_board.benchmark(int8_model, inputs=data.x_test[:4], runs=20)
        tinyml.assert_parity(int8_model, result, data.x_test[:4], max_error_steps=1)
        # The board's own figures (its arena, the median of these runs), labelled where the board says it is.
        tinyml.assert_budget(int8_model, arena_kb=limits["arena_kb"], latency_ms=limits["latency_ms"], board=result)


class AnomalyModel(ReferenceModel):
    """Autoencoders: quality is the ROC AUC of the reconstruction error on normal vs anomalous signals."""

    def test_float_accuracy(self, float_model, data, budget):
        x_hat = tinyml.outputs(float_model, data.x_test)
        auc = tinyml.metrics.roc_auc(data.y_test, tinyml.metrics.reconstruction_error(data.x_test, x_hat))
        tinyml.record(model=self.MODEL, recipe="float32", roc_auc=auc)
        assert auc >= budget.min_auc, f"{self.MODEL}: float ROC AUC {auc:.4f} < {budget.min_auc} (budgets.toml)"

    def test_int8_accuracy_drop(self, float_model, int8_model, data, budget):
        tinyml.assert_accuracy_drop(float_model, int8_model, data.x_test, data.y_test,
                                    max_drop=budget.max_auc_drop, metric="roc_auc")

    def test_int8_parity(self, float_model, int8_model, data, budget):
        tinyml.assert_parity(float_model, int8_model, data.x_test, min_cosine=budget.min_cosine)
