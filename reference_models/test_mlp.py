"""The tutorial's MLP on scikit-learn's digits (real data), through every optimization recipe."""

import pytest
from _reference import ReferenceModel

import pytest_tinyml as tinyml


class TestMlp(ReferenceModel):
    MODEL = "mlp"

    @pytest.mark.parametrize("recipe", ["float32", "dynamic_range", "float16", "int16x8"])
    def test_other_ptq_recipes_keep_accuracy(self, recipe, float_model, data, tinyml_cache):
        artifact = tinyml_cache.convert(float_model, recipe, representative=data.x_train[:300])
        tinyml.assert_accuracy_drop(float_model, artifact, data.x_test, data.y_test, max_drop=0.01)

    def test_float16_halves_the_flash(self, float_model, tinyml_cache):
        float32 = tinyml_cache.convert(float_model, "float32")
        float16 = tinyml_cache.convert(float_model, "float16")
        assert float16.size < 0.6 * float32.size

    def test_qat_int8_is_not_worse_than_ptq(self, float_model, int8_model, data, tinyml_cache):
        qat_model = tinyml.optimize.qat(float_model, data, epochs=5, cache=tinyml_cache)
        qat = tinyml_cache.convert(qat_model, "int8", representative=data.x_train[:300])
        ptq_accuracy = tinyml.metrics.accuracy(data.y_test, tinyml.runtime.predict(int8_model, data.x_test))
        qat_accuracy = tinyml.metrics.accuracy(data.y_test, tinyml.runtime.predict(qat, data.x_test))
        tinyml.record(model=self.MODEL, recipe="qat int8", accuracy=qat_accuracy, drop=ptq_accuracy - qat_accuracy)
        assert qat_accuracy >= ptq_accuracy - 0.005

    @pytest.mark.parametrize("target_sparsity", [0.5, 0.8])
    def test_pruning_reaches_its_sparsity(self, target_sparsity, float_model, data, tinyml_cache):
        pruned = tinyml.optimize.prune(float_model, data, target_sparsity=target_sparsity, epochs=4,
                                       cache=tinyml_cache)
        assert abs(pruned.sparsity - target_sparsity) <= 0.02
        int8 = tinyml_cache.convert(pruned.model, "int8", representative=data.x_train[:300])
        tinyml.assert_accuracy_drop(float_model, int8, data.x_test, data.y_test, max_drop=0.03)

    def test_pruned_int8_compresses(self, int8_model, float_model, data, tinyml_cache):
        pruned = tinyml.optimize.prune(float_model, data, target_sparsity=0.8, epochs=4, cache=tinyml_cache)
        pruned = tinyml_cache.convert(pruned.model, "int8", representative=data.x_train[:300])
        assert tinyml.optimize.gzip_size(pruned) < 0.7 * tinyml.optimize.gzip_size(int8_model)

    def test_clustering_shares_weights(self, float_model, data, tinyml_cache):
        result = tinyml.optimize.cluster(float_model, data, clusters=16, epochs=1, cache=tinyml_cache)
        assert max(result.unique_values.values()) <= 16
        clustered = tinyml_cache.convert(result.model, "int8", representative=data.x_train[:300])
        tinyml.assert_accuracy_drop(float_model, clustered, data.x_test, data.y_test, max_drop=0.03)

    def test_prune_qat_int8_pipeline(self, float_model, data, budget, tinyml_cache):
        artifact = tinyml.optimize.pipeline(float_model, data, target_sparsity=0.5,
                                            representative=data.x_train[:300], cache=tinyml_cache)
        assert artifact.params["sparsity_tflite"] >= 0.45
        tinyml.assert_accuracy_drop(float_model, artifact, data.x_test, data.y_test, max_drop=0.02)
        tinyml.assert_budget(artifact, flash_kb=budget.flash_kb, arena_kb=budget.arena_kb)
