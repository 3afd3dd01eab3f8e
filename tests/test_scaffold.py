"""``pytest-tinyml init``: the suite it writes passes as written, and fails when the model gets worse.

Everything heavy (training, conversion, the written suite) runs in subprocesses: the real command, the real
pytest, a real tiny Keras model on scikit-learn's digits.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_tinyml import cli
from pytest_tinyml.errors import ScaffoldError
from pytest_tinyml.scaffold import GITIGNORE_LINES, _Writer, init, load_data

MAKE_MODELS = textwrap.dedent(
    """
    import os, sys
    import numpy as np, keras
    from sklearn.datasets import load_digits
    import pytest_tinyml as tinyml

    out = sys.argv[1]
    digits = load_digits()
    x, y = (digits.data / 16).astype("float32"), digits.target
    np.savez(os.path.join(out, "digits.npz"), x_train=x[:1200], y_train=y[:1200], x_test=x[1200:], y_test=y[1200:])

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dense(10, activation="softmax")], name="digits")

    model = build()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:1200], y[:1200], epochs=8, verbose=0)
    model.save(os.path.join(out, "digits.keras"))
    build().save(os.path.join(out, "untrained.keras"))  # same architecture, no training: a worse model
    tinyml.convert(model, "int8", representative=x[:1200]).save(os.path.join(out, "digits_int8.tflite"))
    # Calibrated on data scaled 20x too small: every real input clips.
    tinyml.convert(model, "int8", representative=x[:1200] * 0.05).save(os.path.join(out, "miscalibrated.tflite"))
    """
)


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    done = _run("-c", MAKE_MODELS, str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _init(*args, cwd) -> subprocess.CompletedProcess:
    return _run("-m", "pytest_tinyml.cli", "init", *args, cwd=cwd)


def _outcome_lines(result, word: str) -> list[str]:
    return [line for line in result.outlines if line.startswith(word)]


@pytest.mark.slow
def test_init_keras_with_data_writes_a_suite_that_passes_and_catches_a_worse_model(pytester, models):
    project = pytester.path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copy(models / "digits.keras", project / "models" / "digits.keras")
    shutil.copy(models / "digits.npz", project / "digits.npz")

    done = _init("models/digits.keras", "--data", "digits.npz", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    for expected in ("float32: flash", "int8: flash", "arena", "accuracy", "wrote", "next:", "  pytest\n",
                     "pytest --tinyml-board=sim"):
        assert expected in printed, printed
    test_file = project / "tests" / "test_digits_quality.py"
    text = test_file.read_text()
    assert 'MODEL = HERE / "../models/digits.keras"' in text and 'DATA = HERE / "../digits.npz"' in text
    assert "import pytest_tinyml as tinyml" in text and "pytest_tinyml." not in text.replace("pytest_tinyml as", "")
    assert "[pytest]" in (project / "pytest.ini").read_text()
    assert [line for line in GITIGNORE_LINES if line in (project / ".gitignore").read_text().splitlines()] == list(
        GITIGNORE_LINES)

    # From another directory: the suite finds its model and data relative to the test file.
    result = pytester.runpytest_subprocess(str(project), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*test_digits_quality.py*needs a board: run with --tinyml-board=*"])
    # The second command init prints: the on-device test it wrote passes on the sim.
    on_sim = pytester.runpytest_subprocess(str(project), "--tinyml-board=sim", "-p", "no:cacheprovider")
    on_sim.assert_outcomes(passed=9)
    on_sim.stdout.fnmatch_lines(["test_on_device*int8*sim*passed"])

    shutil.copy(models / "untrained.keras", project / "models" / "digits.keras")
    worse = pytester.runpytest_subprocess(str(project), "-p", "no:cacheprovider")
    failed = {line.split("::")[-1].split(" ")[0] for line in worse.outlines if line.startswith("FAILED")}
    assert "test_float_accuracy" in failed, worse.outlines[-30:]
    assert not any(name.startswith(("test_budget", "test_tflm")) for name in failed)  # same architecture


@pytest.mark.slow
def test_init_tflite_without_data_passes_and_its_parity_test_catches_a_miscalibrated_model(pytester, models):
    project = pytester.path / "fan"
    project.mkdir()
    shutil.copy(models / "digits_int8.tflite", project / "digits_int8.tflite")

    done = _init("fan/digits_int8.tflite", "--dir", "fan", cwd=pytester.path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no data given" in done.stdout and "[0, 1]" in done.stdout  # the int8 input's range, said so
    assert (project / "tests" / "baselines" / "digits_int8.tflite").read_bytes() == (
        project / "digits_int8.tflite").read_bytes()
    assert f"cd {project} && pytest\n" in done.stdout  # run from elsewhere: the next commands say where

    result = pytester.runpytest_subprocess(str(project), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*needs a board: run with --tinyml-board=*"])

    shutil.copy(models / "miscalibrated.tflite", project / "digits_int8.tflite")
    swapped = pytester.runpytest_subprocess(str(project), "-p", "no:cacheprovider")
    swapped.assert_outcomes(passed=2, failed=1, skipped=1)
    swapped.stdout.fnmatch_lines(["*parity failed: top-1 agreement, max error (output steps) out of budget*",
                                  "FAILED*test_parity_with_baseline*"])


def test_init_refuses_to_overwrite_the_test_file_and_names_it(tmp_path, capsys):
    (tmp_path / "kws.tflite").write_bytes(b"not read: init refuses before loading anything")
    existing = tmp_path / "tests" / "test_kws_quality.py"
    existing.parent.mkdir()
    existing.write_text("# mine\n")
    assert cli.main(["init", str(tmp_path / "kws.tflite"), "--dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(existing) in error and "never overwrites" in error
    assert existing.read_text() == "# mine\n"
    assert not (tmp_path / "pytest.ini").exists() and not (tmp_path / ".gitignore").exists()


def test_init_refuses_an_existing_baseline_too(tmp_path):
    (tmp_path / "kws.tflite").write_bytes(b"x" * 32)
    baseline = tmp_path / "tests" / "baselines" / "kws.tflite"
    baseline.parent.mkdir(parents=True)
    baseline.write_bytes(b"approved")
    with pytest.raises(ScaffoldError, match="baselines/kws.tflite already exists"):
        init(tmp_path / "kws.tflite", directory=tmp_path)


@pytest.mark.parametrize(
    "name, message",
    [
        ("model.pb", "MODEL must be a .keras, a .tflite or"),
    ],
)
def test_init_refuses_models_it_cannot_vouch_for(tmp_path, name, message):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ScaffoldError, match=message):
        init(tmp_path / name, directory=tmp_path)
    assert not (tmp_path / "tests").exists()


def test_init_refuses_a_missing_model_or_data(tmp_path):
    with pytest.raises(ScaffoldError, match="no such model file"):
        init(tmp_path / "nope.keras", directory=tmp_path)
    (tmp_path / "m.tflite").write_bytes(b"x" * 32)
    with pytest.raises(ScaffoldError, match="DATA must be an existing .npz"):
        init(tmp_path / "m.tflite", data=tmp_path / "d.csv", directory=tmp_path)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": [[1.0]]}, r"unknown array\(s\) \['x'\]"),
        ({"y_train": [1]}, "no x_train or x_test"),
        ({"x_test": [[1.0], [2.0]], "y_test": [1]}, "x_test has 2 samples but y_test has 1"),
        ({"x_train": [[1.0]], "y_test": [1]}, "y_test without x_test"),
        ({"x_train": [1.0, 2.0]}, "samples first"),
    ],
)
def test_data_files_are_checked(tmp_path, arrays, message):
    import numpy as np

    path = tmp_path / "d.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(ScaffoldError, match=message):
        load_data(path)


def test_data_files_with_pickles_are_refused(tmp_path):
    import numpy as np

    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ScaffoldError, match="cannot read it as an .npz of arrays"):
        load_data(path)


def test_a_good_data_file_loads(tmp_path):
    import numpy as np

    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(3))
    assert sorted(load_data(path)) == ["x_train", "y_train"]


def test_settings_go_into_a_new_pytest_ini_or_are_printed_when_pytest_is_configured(tmp_path):
    fresh = _Writer(tmp_path / "fresh", "m")
    fresh.directory.mkdir()
    assert fresh.write_settings().startswith("wrote")
    assert "testpaths = tests" in (fresh.directory / "pytest.ini").read_text()

    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-q'\n")
    message = _Writer(configured, "m").write_settings()
    assert "pyproject.toml already configures pytest" in message and "testpaths = tests" in message
    assert not (configured / "pytest.ini").exists()

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pytest.ini").write_text("# no section yet")
    assert "added a [pytest] section" in _Writer(bare, "m").write_settings()
    assert (bare / "pytest.ini").read_text().startswith("# no section yet\n[pytest]\n")


def test_gitignore_gets_only_the_missing_lines(tmp_path):
    (tmp_path / ".gitignore").write_text(".venv/\n.tinyml_cache/")
    writer = _Writer(tmp_path, "m")
    assert "added .tinyml_history/" in writer.write_gitignore()
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines.count(".tinyml_cache/") == 1 and lines[0] == ".venv/"
    assert set(GITIGNORE_LINES) <= set(lines)
    assert "already ignores" in writer.write_gitignore()


@pytest.mark.slow
def test_init_keras_without_data_calibrates_on_generated_inputs_and_says_so(pytester, models):
    project = pytester.path / "nodata"
    project.mkdir()
    shutil.copy(models / "digits.keras", project / "digits.keras")
    done = _init("digits.keras", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no data given" in done.stdout and "assumed" in done.stdout  # a float input has no known range
    assert "CalibrationWarning" not in done.stderr
    text = (project / "tests" / "test_digits_quality.py").read_text()
    assert "def generated_inputs():" in text and "test_float_accuracy" not in text  # no labels, no accuracy
    result = pytester.runpytest_subprocess(str(project), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, skipped=1)


H5_WITH_LAMBDA = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                              keras.layers.Dense(3, activation="softmax", name="head")])
    model.save(sys.argv[1])
    np.savez(sys.argv[2], x_train=np.random.default_rng(0).uniform(0, 1, (128, 8)).astype("float32"))
    """
)


@pytest.fixture(scope="module")
def h5_with_lambda(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h5")
    done = _run("-c", H5_WITH_LAMBDA, str(out / "lambda.h5"), str(out / "x.npz"))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_init_refuses_an_h5_with_bytecode_without_trust_and_names_the_layer(h5_with_lambda, tmp_path):
    with pytest.raises(ScaffoldError, match=r"double \(Lambda\) hold Python bytecode.*--trust"):
        init(h5_with_lambda / "lambda.h5", directory=tmp_path)
    assert not (tmp_path / "tests").exists()


@pytest.mark.slow
def test_init_with_trust_writes_a_suite_that_loads_the_h5_unsafely_and_passes(h5_with_lambda, tmp_path):
    done = _init(str(h5_with_lambda / "lambda.h5"), "--data", str(h5_with_lambda / "x.npz"), "--trust",
                 "--dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    written = (tmp_path / "tests" / "test_lambda_quality.py").read_text()
    assert "safe_mode=False" in written and "init --trust" in written
    suite = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests"), cwd=tmp_path)
    assert suite.returncode == 0, suite.stdout[-3000:]
