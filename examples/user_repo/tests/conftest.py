import keras
import pytest
from fan_monitor.data import load_windows
from fan_monitor.model import build_model

import pytest_tinyml as tinyml


@pytest.fixture(scope="session")
def windows():
    x, y = load_windows()
    return tinyml.datasets.from_arrays(x, y, test_fraction=0.25, seed=0, name="fan_windows")


@pytest.fixture(scope="session")
def float_model(windows, tinyml_cache):
    keras.utils.set_random_seed(0)  # same initial weights every session: tinyml_cache finds the trained model
    model = build_model(windows.input_shape, windows.num_classes)
    return tinyml_cache.fit(model, windows, epochs=25)


@pytest.fixture(scope="session")
def int8_model(float_model, windows, tinyml_cache):
    return tinyml_cache.convert(float_model, "int8", representative=windows.x_train[:200])
