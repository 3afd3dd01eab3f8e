"""Legacy .h5 models whose Lambda layers hold Python bytecode are converted only when trusted.

Before: ``convert("model.h5")`` ran the Lambda's marshalled bytecode in the worker without asking.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pytest_tinyml as tinyml
from pytest_tinyml import identity
from pytest_tinyml.errors import ConfigError, ConversionError, UntrustedModelError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lambda_h5(tmp_path_factory):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Lambda(lambda x: x * 2.0, name="double"),
                                 tf_keras.layers.Dense(2)])
    path = tmp_path_factory.mktemp("legacy") / "with_lambda.h5"
    plain = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    plain_path = path.with_name("plain.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is legacy": that is the point of these files
        model.save(str(path))
        plain.save(str(plain_path))
    return path, plain_path


def test_a_lambda_h5_is_refused_without_trust_naming_the_layer_and_the_flag(lambda_h5):
    path, plain = lambda_h5
    assert identity.bytecode_layers(path) == ["double (Lambda)"] and identity.bytecode_layers(plain) == []
    with pytest.raises(UntrustedModelError, match=r"layer\(s\) double \(Lambda\) hold Python bytecode") as error:
        tinyml.convert(str(path), "float32")
    assert "trust=True" in str(error.value) and "--tinyml-trust-legacy" in str(error.value)
    assert isinstance(error.value, ConfigError)
    with pytest.raises(UntrustedModelError):
        tinyml.TinyMLCache(path.parent / "cache").convert(str(path), "float32")


def test_trust_true_converts_it_and_a_plain_h5_needs_no_trust(lambda_h5):
    path, plain = lambda_h5
    art = tinyml.convert(str(path), "float32", trust=True)
    x = np.ones((1, 4), np.float32)
    assert tinyml.runtime.predict(art, x).shape == (1, 2)
    assert tinyml.convert(str(plain), "float32").recipe == "float32"


def test_a_keras_file_with_a_lambda_stays_with_keras_safe_mode(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0, name="double")])
    path = tmp_path / "with_lambda.keras"
    model.save(path)
    with pytest.raises(ConversionError, match="safe_mode"):
        tinyml.convert(str(path), "float32")


TRUST_TEST = """
import pathlib

from pytest_tinyml import identity


def test_trust(tmp_path):
    path = pathlib.Path(r"{path}")
    identity.check_trust(str(path), None)  # raises unless the session trusts legacy files
"""


@pytest.mark.parametrize("how", ["flag", "ini", "none"])
def test_the_session_option_trusts_legacy_files(pytester, lambda_h5, how):
    path, _ = lambda_h5
    pytester.makepyfile(TRUST_TEST.format(path=path))
    if how == "ini":
        pytester.makeini("[pytest]\ntinyml_trust_legacy = true\n")
    args = ["-p", "no:cacheprovider"] + (["--tinyml-trust-legacy"] if how == "flag" else [])
    result = pytester.runpytest_subprocess(*args)
    if how == "none":
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*UntrustedModelError*double (Lambda)*--tinyml-trust-legacy*"])
    else:
        result.assert_outcomes(passed=1)


def test_a_keras_model_with_a_lambda_is_reloaded_by_the_worker_only_when_trusted():
    """The worker reloads what it converts; Keras's safe_mode refuses the lambda unless trust=True says so."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                              keras.layers.Dense(2)])
    with pytest.raises(ConversionError, match="trust=True"):
        tinyml.convert(model, "float32")
    art = tinyml.convert(model, "float32", trust=True)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(tinyml.runtime.predict(art, x), model.predict(x, verbose=0), rtol=1e-5)
