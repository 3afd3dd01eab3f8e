"""``pytest-tinyml init``: the first model-quality tests, written from the user's own model and data.

:func:`init` checks what it was given and what it would write (it never overwrites a file), converts a Keras
model to float32 and int8 (calibrated on ``x_train``), measures every artifact with the very assertions the
tests will call (flash, arena, accuracy, parity, TFLite Micro support), then writes the test module
(:mod:`pytest_tinyml._scaffold_text`), the ``[pytest]`` settings and the ``.gitignore`` lines. Conversions
go through the project's ``.tinyml_cache``, so the first ``pytest`` run after ``init`` starts warm.

Example:
    >>> init("models/kws.keras", data="data/kws.npz", directory=".")   # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pytest_tinyml._files import write_atomic
from pytest_tinyml._scaffold_text import GENERATED_SAMPLES, Inputs, Measured
from pytest_tinyml.errors import ScaffoldError, TinyMLError

DATA_KEYS = ("x_train", "y_train", "x_test", "y_test")
GITIGNORE_LINES = (".tinyml_cache/", ".tinyml_history/", "tinyml-report*.json", "tinyml-report-latency-trend.png")
PYTEST_SETTINGS = ("testpaths = tests", "tinyml_report = tinyml-report.json")
DEFAULT_HEADROOM = 0.10
# Files that configure pytest, and how each one marks its pytest section (pytest's own order of precedence).
_PYTEST_CONFIGS = (("pytest.ini", "[pytest]"), ("pyproject.toml", "[tool.pytest.ini_options]"),
                   ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]"))


def _model_kind(path: Path, trust: bool) -> str:
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix == ".tflite":
        return "tflite"
    if suffix in (".h5", ".hdf5"):
        from pytest_tinyml.identity import bytecode_layers

        layers = bytecode_layers(path)
        if layers and not trust:
            raise ScaffoldError(
                f"{path}: a legacy .h5 model whose layer(s) {', '.join(layers)} hold Python bytecode, which "
                "loading it runs. Pass --trust if you trust where it came from (the written tests then load it "
                "with safe_mode=False too), or better, re-save it as .keras from Python you trust "
                "(keras.saving.load_model('model.h5').save('model.keras')) and run init on that."
            )
        return "keras"
    raise ScaffoldError(f"{path}: MODEL must be a .keras, a .tflite or (with --trust when it holds Python code) "
                        f"a legacy .h5 file (got {suffix or 'no suffix'!r})")


def _identifier(stem: str) -> str:
    name = re.sub(r"\W+", "_", stem).strip("_").lower() or "model"
    return "m_" + name if name[0].isdigit() else name


def load_data(path: Path) -> dict:
    """The arrays of a data ``.npz`` (no pickles), checked: known names, samples first, x with y.

    Example:
        >>> load_data(Path("data/kws.npz")).keys()     # doctest: +SKIP
        dict_keys(['x_train', 'y_train', 'x_test', 'y_test'])
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise ScaffoldError(f"{path}: cannot read it as an .npz of arrays ({exc}); save it with "
                            "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    unknown = sorted(set(arrays) - set(DATA_KEYS))
    if unknown:
        raise ScaffoldError(f"{path}: unknown array(s) {unknown}; init reads {', '.join(DATA_KEYS)} (any subset)")
    if not any(key in arrays for key in ("x_train", "x_test")):
        raise ScaffoldError(f"{path}: no x_train or x_test in it (found {sorted(arrays) or 'nothing'})")
    for split in ("train", "test"):
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if y is not None and x is None:
            raise ScaffoldError(f"{path}: y_{split} without x_{split}: labels need their inputs")
        if x is not None and (x.dtype.kind not in "biuf" or x.ndim < 2 or len(x) == 0):
            raise ScaffoldError(f"{path}: x_{split} must be numeric with samples first, got {x.dtype} {x.shape}")
        if y is not None and len(y) != len(x):
            raise ScaffoldError(f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)} labels")
    return arrays


def input_range(artifact) -> tuple[float, float, str]:
    """``(low, high, why)`` of the first input: what a quantized input represents, else the assumed 0..1."""
    quant = artifact.inputs[0]
    if getattr(quant, "quantized", False):
        import numpy as np

        info = np.iinfo(quant.dtype)
        low = (info.min - quant.zero_point) * quant.scale
        high = (info.max - quant.zero_point) * quant.scale
        return float(low), float(high), f"the range the model's {quant.dtype} input represents"
    return 0.0, 1.0, "0..1: a float input does not say its range; assumed"


def generated_inputs(low: float, high: float, shape: tuple, n: int = GENERATED_SAMPLES):
    """The inputs the written tests generate when init got no data (the same expression is in the tests)."""
    import numpy as np

    return np.random.default_rng(0).uniform(low, high, size=(n, *shape)).astype(np.float32)


def _is_classifier(outputs, y) -> bool:
    import numpy as np

    if y is None or outputs.ndim != 2:
        return False
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == outputs.shape[1] > 1:
        return True  # one-hot
    return labels.reshape(len(labels), -1).shape[1] == 1 and np.all(np.mod(labels, 1) == 0)


class _Writer:
    """Files init will create or extend, all checked before anything is measured or written."""

    def __init__(self, directory: Path, test_name: str) -> None:
        self.directory = directory
        self.tests = directory / "tests"
        self.test_file = self.tests / f"test_{test_name}_quality.py"
        self.baseline = self.tests / "baselines" / f"{test_name}.tflite"
        self.pytest_ini = directory / "pytest.ini"
        self.gitignore = directory / ".gitignore"

    def refuse_existing(self, *paths: Path) -> None:
        for path in paths:
            if path.exists():
                raise ScaffoldError(f"{path} already exists: init never overwrites a file. Move it away, or "
                                    "give another --dir")

    def pytest_config(self) -> tuple[Path | None, bool]:
        """The file that configures pytest here and whether init may add to it (only when it has no section)."""
        for name, section in _PYTEST_CONFIGS:
            path = self.directory / name
            if path.is_file():
                text = path.read_text(errors="replace")
                if section in text:
                    return path, False
                if name == "pytest.ini":
                    return path, True
        return None, True

    def write_settings(self) -> str:
        path, may_write = self.pytest_config()
        settings = "\n".join(PYTEST_SETTINGS)
        if not may_write:
            return f"{path.name} already configures pytest: add these lines to its pytest section if missing:\n{settings}"
        block = f"[pytest]\n# Written by pytest-tinyml init.\n{settings}\n"
        if path is None:
            write_atomic(self.pytest_ini, block)
            return f"wrote {self.pytest_ini}"
        text = path.read_text()
        write_atomic(path, text + ("" if text.endswith("\n") or not text else "\n") + block)
        return f"added a [pytest] section to {path}"

    def write_gitignore(self) -> str:
        text = self.gitignore.read_text() if self.gitignore.exists() else ""
        present = {line.strip() for line in text.splitlines()}
        missing = [line for line in GITIGNORE_LINES if line not in present]
        if not missing:
            return f"{self.gitignore} already ignores pytest-tinyml's outputs"
        addition = "# pytest-tinyml outputs\n" + "\n".join(missing) + "\n"
        write_atomic(self.gitignore, text + ("" if text.endswith("\n") or not text else "\n") + addition)
        return f"added {', '.join(missing)} to {self.gitignore}"


def _choose_inputs(data: dict | None, artifact) -> tuple[Inputs, list[str]]:
    notes = []
    if data is None:
        low, high, why = input_range(artifact)
        shape = tuple(int(d) for d in artifact.inputs[0].shape[1:])
        x = generated_inputs(low, high, shape)
        notes.append(f"no data given: the tests run on {GENERATED_SAMPLES} inputs drawn uniformly in "
                     f"[{low:.4g}, {high:.4g}] ({why}); give --data DATA.npz for real samples and accuracy tests")
        return Inputs(x, x, None, None, None, generated=(low, high, shape, why)), notes
    eval_key = "x_test" if "x_test" in data else "x_train"
    calibration_key = "x_train" if "x_train" in data else "x_test"
    if calibration_key != "x_train":
        notes.append("no x_train: int8 is calibrated on x_test, the samples it is then judged on")
    if eval_key != "x_test":
        notes.append("no x_test: the tests judge the model on x_train, the samples it learnt from")
    y = data.get("y_" + eval_key[2:])
    if y is None:
        notes.append(f"no y_{eval_key[2:]}: no accuracy tests, parity only")
    return Inputs(data[eval_key], data[calibration_key], y, eval_key, calibration_key), notes


def _measure_artifact(measured: Measured, key: str, artifact) -> None:
    import pytest_tinyml as tinyml

    measured.flash_kb[key] = artifact.size / 1024
    try:
        tinyml.assert_tflm_compatible(artifact)
        measured.tflm_missing[key] = []
    except tinyml.errors.TinyMLAssertionError:
        measured.tflm_missing[key] = list(tinyml.analyze.tflm_compatibility(artifact).missing_ops) or ["(load)"]
        return
    # The figure the written test_budget compares, from the same function.
    measured.arena_kb[key] = tinyml.assert_budget(artifact, arena_kb=1e12)["arena_kb"]


def measure_keras(model, artifacts: dict, inputs: Inputs) -> Measured:
    """Flash, arena and TFLM support of each artifact; accuracy (and drop) when labels classify; parity."""
    import numpy as np

    import pytest_tinyml as tinyml

    measured = Measured()
    for key, artifact in artifacts.items():
        _measure_artifact(measured, key, artifact)
    outputs = np.asarray(model.predict(inputs.x_eval, verbose=0))
    measured.classifier = _is_classifier(outputs, inputs.y_eval)
    measured.class_scores = outputs.ndim == 2 and outputs.shape[1] > 1
    if measured.classifier:
        measured.accuracy["float"] = tinyml.metrics.accuracy(inputs.y_eval, outputs)
        for key, artifact in artifacts.items():
            figures = tinyml.assert_accuracy_drop(model, artifact, inputs.x_eval, inputs.y_eval, max_drop=1.0,
                                                  metric="accuracy")
            measured.accuracy[key], measured.drop[key] = figures["accuracy"], figures["drop"]
    measured.parity = tinyml.assert_parity(model, artifacts["int8"], inputs.x_eval, max_rmse=1e300)  # figures only
    measured.quantized_output = artifacts["int8"].outputs[0].quantized
    return measured


def measure_tflite(artifact, inputs: Inputs) -> Measured:
    """The same for a given ``.tflite``: its parity reference is itself (the baseline copy)."""
    import numpy as np

    import pytest_tinyml as tinyml

    measured = Measured()
    _measure_artifact(measured, "model", artifact)
    outputs = np.asarray(tinyml.runtime.predict(artifact, inputs.x_eval))
    measured.classifier = _is_classifier(outputs, inputs.y_eval)
    measured.class_scores = outputs.ndim == 2 and outputs.shape[1] > 1
    if measured.classifier:
        measured.accuracy["model"] = tinyml.metrics.accuracy(inputs.y_eval, outputs)
    measured.quantized_output = artifact.outputs[0].quantized
    return measured


def init(model, *, data=None, directory=".", headroom: float = DEFAULT_HEADROOM, trust: bool = False,
         out=print) -> Path:
    """Write ``tests/test_<model>_quality.py``, the ``[pytest]`` settings and ``.gitignore`` lines into
    ``directory`` from measurements of ``model`` (``.keras`` or ``.tflite``) on ``data`` (an ``.npz``).
    Returns the test file's path. ``ScaffoldError`` names a file that is in the way, or what is wrong with
    the model or the data, before anything is written.

    Example:
        >>> init("kws.keras", data="kws.npz", directory="project")     # doctest: +SKIP
        PosixPath('project/tests/test_kws_quality.py')
    """
    from pytest_tinyml import _scaffold_text

    model_path, directory = Path(model).resolve(), Path(directory).resolve()
    if not model_path.is_file():
        raise ScaffoldError(f"{model}: no such model file")
    kind = _model_kind(model_path, trust)
    unsafe = kind == "keras" and trust and model_path.suffix.lower() in (".h5", ".hdf5")
    data_path = Path(data).resolve() if data is not None else None
    if data_path is not None and (not data_path.is_file() or data_path.suffix.lower() != ".npz"):
        raise ScaffoldError(f"{data}: DATA must be an existing .npz file (np.savez(path, x_train=..., ...))")
    if not 0.0 <= headroom <= 10.0:
        raise ScaffoldError(f"--headroom {headroom}: give a fraction such as 0.1 (10% above what was measured)")
    name = _identifier(model_path.stem)
    writer = _Writer(directory, name)
    writer.refuse_existing(writer.test_file, *([writer.baseline] if kind == "tflite" else []))
    arrays = load_data(data_path) if data_path is not None else None

    import pytest_tinyml as tinyml

    cache = tinyml.TinyMLCache(directory / ".tinyml_cache")
    if kind == "keras":
        import keras

        out(f"loading {model_path} ...")
        keras_model = keras.saving.load_model(str(model_path), compile=False, safe_mode=not unsafe)
        # The conversion worker reloads the model: it may run a trusted .h5's lambdas only with trust=True.
        source, trust_kw = keras_model, ({"trust": True} if unsafe else {})
        float32 = cache.convert(source, "float32", name=f"{name}_float32", **trust_kw)
        inputs, notes = _choose_inputs(arrays, float32)
        out("converting to float32 and int8 (calibrated on "
            f"{inputs.calibration_key or 'the generated inputs'}) ...")
        artifacts = {"float32": float32,
                     "int8": cache.convert(source, "int8", representative=inputs.x_calibration, **trust_kw,
                                           name=f"{name}_int8")}
        measured = measure_keras(keras_model, artifacts, inputs)
    else:
        artifact = tinyml.runtime.load(str(model_path), name=name)
        inputs, notes = _choose_inputs(arrays, artifact)
        measured = measure_tflite(artifact, inputs)
    tests_dir = writer.tests
    text = _scaffold_text.render(kind=kind, name=name, model_rel=_relative(model_path, tests_dir),
                                 data_rel=_relative(data_path, tests_dir) if data_path else None,
                                 inputs=inputs, measured=measured, headroom=headroom, notes=notes,
                                 unsafe_load=unsafe)

    tests_dir.mkdir(parents=True, exist_ok=True)
    if kind == "tflite":
        writer.baseline.parent.mkdir(exist_ok=True)
        shutil.copyfile(model_path, writer.baseline)
    write_atomic(writer.test_file, text)
    actions = [f"wrote {writer.test_file}"]
    if kind == "tflite":
        actions.append(f"copied {model_path.name} to {writer.baseline} (the approved model the parity test "
                       "compares with; replace it to approve another)")
    actions += [writer.write_settings(), writer.write_gitignore()]
    for line in _scaffold_text.summary(kind, measured, notes) + actions:
        out(line)
    where = "" if directory == Path.cwd() else f"cd {directory} && "
    out("next:")
    out(f"  {where}pytest")
    out(f"  {where}pytest --tinyml-board=sim      # or a port: --tinyml-board=/dev/ttyUSB0")
    return writer.test_file


def _relative(path: Path, start: Path) -> str:
    import os

    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive (Windows): an absolute path is all there is
        return path.as_posix()


def main(args) -> int:
    """``pytest-tinyml init`` (arguments parsed by :mod:`pytest_tinyml.cli`)."""
    try:
        init(args.model, data=args.data, directory=args.dir, headroom=args.headroom, trust=args.trust)
    except TinyMLError as exc:
        import sys

        print(f"pytest-tinyml init: {exc}", file=sys.stderr)
        return 2
    return 0
