"""The text ``pytest-tinyml init`` writes: the test module (budgets from what was measured) and its summary.

Budgets sit on the measured figures plus headroom, rounded away from them: flash and arena
``measured * (1 + headroom)`` rounded up to 0.1 KB; an accuracy floor 2 points (or 2 samples) under the
measured accuracy; an accuracy drop 1 point above the measured one (at least 1 point); top-1 agreement 2 points
under the measured one. The written code uses only public names (``pytest_tinyml`` top-level, its fixtures).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

GENERATED_SAMPLES = 128  # at least the 100 calibration samples int8 asks for


@dataclass
class Inputs:
    """The samples the tests run on: from the data file, or generated (``low``/``high`` say in what range)."""

    x_eval: object
    x_calibration: object
    y_eval: object | None
    eval_key: str | None  # "x_test", "x_train", or None when generated
    calibration_key: str | None
    generated: tuple | None = None  # (low, high, shape, why) when no data was given


@dataclass
class Measured:
    """What init measured, per artifact (``float32``, ``int8``, or ``model`` for a given ``.tflite``)."""

    flash_kb: dict = field(default_factory=dict)
    arena_kb: dict = field(default_factory=dict)
    tflm_missing: dict = field(default_factory=dict)  # artifact -> ops TFLM lacks ([] when compatible)
    accuracy: dict = field(default_factory=dict)  # "float" / artifact -> accuracy on the eval samples
    drop: dict = field(default_factory=dict)  # artifact -> accuracy drop from the reference
    parity: dict = field(default_factory=dict)  # figures of assert_parity (reference vs candidate)
    quantized_output: bool = False
    classifier: bool = False  # labels given and the outputs are class scores
    class_scores: bool = False  # outputs are (samples, classes > 1): top-1 agreement means something


def floor_to(value: float, step: float) -> float:
    """Round down to a multiple of ``step`` (budgets never sit above what was measured)."""
    return math.floor(value / step + 1e-9) * step


def ceil_to(value: float, step: float) -> float:
    """Round up to a multiple of ``step`` (limits never sit below what was measured)."""
    return math.ceil(value / step - 1e-9) * step



def _kb(value: float, headroom: float) -> float:
    return round(ceil_to(value * (1 + headroom), 0.1), 1)


def _floor_accuracy(value: float, samples: int) -> float:
    return max(0.0, round(floor_to(value - max(0.02, 2 / max(samples, 1)), 0.01), 2))


def _max_drop(value: float) -> float:
    return max(0.01, round(ceil_to(value + 0.01, 0.005), 3))


def _dict(values: dict) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in values.items()) + "}"


def _header(name: str, kind: str, measured: Measured, notes: list[str], headroom: float) -> str:
    import pytest_tinyml

    lines = [f'"""Model-quality tests of {name}, written by `pytest-tinyml init` '
             f"(pytest-tinyml {pytest_tinyml.__version__}, {datetime.date.today().isoformat()}).", "",
             f"Budgets are what init measured plus headroom ({headroom:.0%} on flash and arena, a point or two on",
             "accuracy and agreement): tighten them as the model improves, raise one on purpose when a change is",
             "worth it. `pytest` runs the host checks; `pytest --tinyml-board=sim` (or a port) the on-device one.",
             "", "Measured by init:"]
    lines += [f"  {line}" for line in summary(kind, measured, [])]
    lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines) + '\n"""\n'


def _inputs_code(inputs: Inputs) -> str:
    if inputs.generated is None:
        return ""
    low, high, shape, why = inputs.generated
    return f'''

def generated_inputs():
    """init got no data: {GENERATED_SAMPLES} inputs drawn uniformly in [{low:.6g}, {high:.6g}]
    ({why}). Replace them with real samples (np.load) as soon as you have some: made-up inputs only show that
    the model runs and agrees with itself, not that it is right."""
    return np.random.default_rng(0).uniform({low!r}, {high!r}, size=({GENERATED_SAMPLES}, *{shape!r})).astype(np.float32)
'''


def _data_fixture(data_rel: str | None, inputs: Inputs) -> str:
    if data_rel is None:
        return '''

@pytest.fixture(scope="module")
def data():
    x = generated_inputs()
    return {"x_eval": x, "x_calibration": x}
'''
    y = f'\n            "y_eval": arrays["y_{inputs.eval_key[2:]}"],' if inputs.y_eval is not None else ""
    return f'''

@pytest.fixture(scope="module")
def data():
    with np.load(DATA, allow_pickle=False) as arrays:
        return {{
            "x_eval": arrays["{inputs.eval_key}"],
            "x_calibration": arrays["{inputs.calibration_key}"],{y}
        }}
'''


def _board_parity(model_expr: str, quantized: bool) -> str:
    budget = "max_error_steps=1" if quantized else "min_cosine=0.999"
    return f'''

@pytest.mark.tinyml_board
def test_on_device(tinyml_board, {model_expr.split("[")[0]}, data):
    x = data["x_eval"][:4]
    result = tinyml_board.benchmark({model_expr}, inputs=x, runs=10)
    tinyml.assert_parity({model_expr}, result, x, {budget})
'''


def _tflm_tests(measured: Measured, keys: list[str], expr) -> str:
    text = ""
    for key in keys:
        missing = measured.tflm_missing.get(key)
        mark = (f'@pytest.mark.xfail(strict=True, reason="init found that TFLite Micro cannot run it: '
                f'{", ".join(missing)}")\n' if missing else "")
        text += (f"\n\n{mark}def test_tflm_compatible_{key}({expr(key).split('[')[0]}):\n"
                 f"    tinyml.assert_tflm_compatible({expr(key)})\n")
    return text


def _budget_tests(measured: Measured, keys: list[str], expr, headroom: float) -> str:
    text = ""
    for key in keys:
        budgets = [f"flash_kb={_kb(measured.flash_kb[key], headroom)!r}"]
        if key in measured.arena_kb:
            budgets.append(f"arena_kb={_kb(measured.arena_kb[key], headroom)!r}")
        text += f'''

def test_budget_{key}({expr(key).split("[")[0]}):
    tinyml.assert_budget({expr(key)}, {", ".join(budgets)})
'''
    return text


def render(*, kind: str, name: str, model_rel: str, data_rel: str | None, inputs: Inputs, measured: Measured,
           headroom: float, notes: list[str], unsafe_load: bool = False) -> str:
    """The test module's text."""
    n = len(inputs.x_eval)
    text = _header(name, kind, measured, notes, headroom)
    text += "\nfrom pathlib import Path\n\nimport numpy as np\nimport pytest\n\nimport pytest_tinyml as tinyml\n\n"
    text += "HERE = Path(__file__).resolve().parent\n"
    if kind == "keras":
        text += f'MODEL = HERE / "{model_rel}"\n'
    else:
        text += f'MODEL = HERE / "{model_rel}"\nBASELINE = HERE / "baselines" / "{name}.tflite"  # approved by init\n'
    if data_rel is not None:
        text += f'DATA = HERE / "{data_rel}"\n'
    text += _inputs_code(inputs) + _data_fixture(data_rel, inputs)
    return text + (_keras_tests(name, inputs, measured, headroom, n, unsafe_load) if kind == "keras"
                   else _tflite_tests(inputs, measured, headroom, n))


def _keras_tests(name: str, inputs: Inputs, measured: Measured, headroom: float, n: int,
                 unsafe_load: bool = False) -> str:
    keys = ["float32", "int8"]
    load = ("# init --trust: this legacy .h5 holds Python bytecode (Lambda layers), which loading it runs\n"
            "    return keras.saving.load_model(MODEL, compile=False, safe_mode=False)" if unsafe_load
            else "return keras.saving.load_model(MODEL, compile=False)")
    # The conversion worker reloads the model: it may run a trusted .h5's lambdas only with trust=True.
    source, trust = "float_model", (", trust=True" if unsafe_load else "")
    text = f'''

@pytest.fixture(scope="module")
def float_model():
    import keras

    {load}


@pytest.fixture(scope="module")
def artifacts(float_model, data, tinyml_cache):
    return {{
        "float32": tinyml_cache.convert({source}, "float32", name="{name}_float32"{trust}),
        "int8": tinyml_cache.convert({source}, "int8", representative=data["x_calibration"], name="{name}_int8"{trust}),
    }}
'''
    if measured.classifier:
        floor = _floor_accuracy(measured.accuracy["float"], n)
        drops = {key: _max_drop(measured.drop[key]) for key in keys}
        text += f'''

MIN_FLOAT_ACCURACY = {floor!r}  # measured {measured.accuracy["float"]:.4f} on {n} samples
MAX_ACCURACY_DROP = {_dict(drops)}  # measured {_dict({k: round(measured.drop[k], 4) for k in keys})}


def test_float_accuracy(float_model, data):
    outputs = float_model.predict(data["x_eval"], verbose=0)
    accuracy = tinyml.metrics.accuracy(data["y_eval"], outputs)
    tinyml.record(model="{name}", recipe="float", accuracy=accuracy)
    assert accuracy >= MIN_FLOAT_ACCURACY, (
        f"float model accuracy {{accuracy:.4f}} is below {{MIN_FLOAT_ACCURACY}} (init measured "
        f"{measured.accuracy["float"]:.4f}): was MODEL replaced by a worse one?"
    )


@pytest.mark.parametrize("recipe", {keys!r})
def test_accuracy_drop(float_model, artifacts, data, recipe):
    tinyml.assert_accuracy_drop(float_model, artifacts[recipe], data["x_eval"], data["y_eval"],
                                max_drop=MAX_ACCURACY_DROP[recipe], metric="accuracy")
'''
    text += _budget_tests(measured, keys, lambda key: f'artifacts["{key}"]', headroom)
    text += _parity_test_keras(measured)
    text += _tflm_tests(measured, keys, lambda key: f'artifacts["{key}"]')
    if not measured.tflm_missing.get("int8"):
        text += _board_parity('artifacts["int8"]', measured.quantized_output)
    return text


def _parity_test_keras(measured: Measured) -> str:
    figures = measured.parity
    if measured.class_scores:
        budget = f"min_top1_agreement={max(0.0, round(floor_to(figures['top1_agreement'] - 0.02, 0.01), 2))!r}"
        comment = f"measured top-1 agreement {figures['top1_agreement']:.4f}"
    else:
        budget = f"min_cosine={max(0.0, round(floor_to(figures['cosine'] - 0.01, 0.001), 3))!r}"
        comment = f"measured cosine {figures['cosine']:.5f}"
    return f'''

def test_int8_parity(float_model, artifacts, data):
    # {comment}
    tinyml.assert_parity(float_model, artifacts["int8"], data["x_eval"], {budget})
'''


def _tflite_tests(inputs: Inputs, measured: Measured, headroom: float, n: int) -> str:
    text = ""
    if measured.classifier:
        floor = _floor_accuracy(measured.accuracy["model"], n)
        text += f'''

MIN_ACCURACY = {floor!r}  # measured {measured.accuracy["model"]:.4f} on {n} samples


def test_accuracy(data):
    accuracy = tinyml.metrics.accuracy(data["y_eval"], tinyml.runtime.predict(MODEL, data["x_eval"]))
    tinyml.record(model=MODEL.stem, accuracy=accuracy)
    assert accuracy >= MIN_ACCURACY, f"accuracy {{accuracy:.4f}} is below {{MIN_ACCURACY}}: a worse MODEL?"


def test_accuracy_drop_from_baseline(data):
    tinyml.assert_accuracy_drop(BASELINE, MODEL, data["x_eval"], data["y_eval"], max_drop=0.01,
                                metric="accuracy")
'''
    budgets = [f"flash_kb={_kb(measured.flash_kb['model'], headroom)!r}"]
    if "model" in measured.arena_kb:
        budgets.append(f"arena_kb={_kb(measured.arena_kb['model'], headroom)!r}")
    if measured.quantized_output:
        parity = "max_error_steps=1" + (", min_top1_agreement=0.98" if measured.class_scores else "")
    else:
        parity = "min_cosine=0.999"
    text += f'''

def test_budget():
    tinyml.assert_budget(MODEL, {", ".join(budgets)})


def test_parity_with_baseline(data):
    # The model as approved at init (tests/baselines/): a re-export may move an output by 1 step, no more.
    tinyml.assert_parity(BASELINE, MODEL, data["x_eval"], {parity})
'''
    missing = measured.tflm_missing.get("model")
    if missing:
        text += f'''

@pytest.mark.xfail(strict=True, reason="init found that TFLite Micro cannot run it: {", ".join(missing)}")
def test_tflm_compatible():
    tinyml.assert_tflm_compatible(MODEL)
'''
    else:
        text += '''

def test_tflm_compatible():
    tinyml.assert_tflm_compatible(MODEL)
'''
        budget = "max_error_steps=1" if measured.quantized_output else "min_cosine=0.999"
        text += f'''

@pytest.mark.tinyml_board
def test_on_device(tinyml_board, data):
    x = data["x_eval"][:4]
    result = tinyml_board.benchmark(MODEL, inputs=x, runs=10)
    tinyml.assert_parity(MODEL, result, x, {budget})
'''
    return text


def summary(kind: str, measured: Measured, notes: list[str]) -> list[str]:
    """What init measured, one line per artifact, then its notes."""
    lines = []
    keys = ["float32", "int8"] if kind == "keras" else ["model"]
    if kind == "keras" and "float" in measured.accuracy:
        lines.append(f"Keras model: accuracy {measured.accuracy['float']:.4f}")
    for key in keys:
        parts = [f"flash {measured.flash_kb[key]:.1f} KB"]
        if key in measured.arena_kb:
            parts.append(f"arena {measured.arena_kb[key]:.1f} KB (host TFLite Micro)")
        if measured.tflm_missing.get(key):
            parts.append("TFLite Micro cannot run it: " + ", ".join(measured.tflm_missing[key]))
        if key in measured.accuracy:
            parts.append(f"accuracy {measured.accuracy[key]:.4f}"
                         + (f" (drop {measured.drop[key]:+.4f})" if key in measured.drop else ""))
        if key == "int8" and measured.parity:
            parts.append(f"top-1 agreement with Keras {measured.parity['top1_agreement']:.4f}")
        lines.append(f"{'TFLite' if key == 'model' else key}: " + ", ".join(parts))
    return lines + [f"note: {note}" for note in notes]
