"""pytest_tinyml.training: one policy for tinyml_cache.fit and every optimize recipe; the loss follows the head."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml import training
from pytest_tinyml.errors import ConfigError


def _head(units, activation=None, inputs=64):
    import keras

    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(units, activation=activation)], name=f"head_{activation}")


@pytest.fixture(scope="module")
def digits():
    return tinyml.datasets.load("digits")


def test_the_loss_follows_the_head(digits):
    import keras

    assert training.policy(_head(10), digits)["from_logits"] is True
    assert training.policy(_head(10, "softmax"), digits)["from_logits"] is False
    separate = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10), keras.layers.Softmax()])
    assert training.policy(separate, digits)["from_logits"] is False
    assert training.policy(_head(10), digits)["loss"] == "sparse_categorical_crossentropy"
    binary = training.policy(_head(1, "sigmoid"), digits)
    assert binary["loss"] == "binary_crossentropy" and binary["from_logits"] is False
    assert training.policy(_head(1), digits)["from_logits"] is True
    ae = tinyml.datasets.from_arrays(digits.x_train, None, task="reconstruction")
    assert training.policy(_head(64, "sigmoid"), ae)["loss"] == "mean_squared_error"


def test_a_sigmoid_over_several_classes_is_refused_with_the_reason(digits):
    with pytest.raises(ConfigError, match="ends in a sigmoid over 10 classes.*softmax head.*from_logits=True"):
        training.policy(_head(10, "sigmoid"), digits)


def test_compile_for_compiles_what_policy_says(digits):
    model = _head(10)
    chosen = training.compile_for(model, digits)
    assert chosen["from_logits"] and model.loss.get_config()["from_logits"] is True


@pytest.mark.slow
def test_a_logits_head_trains_through_the_cache(digits, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)],
                             name="logits_head")
    cache = tinyml.TinyMLCache(tmp_path)
    trained = cache.fit(model, digits, epochs=15)
    accuracy = float(np.mean(trained.predict(digits.x_test, verbose=0).argmax(axis=1) == digits.y_test))
    assert accuracy > 0.85  # 0.14 when a probability loss was put on logits
    meta = json.loads(next(tmp_path.glob("fit/*/*/meta.json")).read_text())
    policy = meta["key_parts"]["training_policy"]
    assert policy["from_logits"] is True and policy["loss"] == "sparse_categorical_crossentropy"


def test_optimize_recipes_check_their_data_with_the_same_rules(digits):
    from types import SimpleNamespace

    x = digits.x_train.copy()
    x[4, 0] = np.nan
    bad = SimpleNamespace(x_train=x, y_train=digits.y_train, task="classification")
    with pytest.raises(ConfigError, match=r"prune: x_train has 1 NaN/Inf values \(first in sample #4\)"):
        tinyml.optimize.prune(_head(10, "softmax"), bad)
    labels = SimpleNamespace(x_train=digits.x_train, y_train=digits.y_train + 10, task="classification")
    with pytest.raises(ConfigError, match=r"qat: y_train has .* labels outside \[0, 10\)"):
        tinyml.optimize.qat(_head(10, "softmax"), labels)
