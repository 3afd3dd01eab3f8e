"""The conversion worker: ``python -m pytest_tinyml.conversion._child JOB_DIR`` or ``... --serve``.

It runs in its own process because TF's converter can crash natively (full-int8 calibration of a Keras 3
LSTM segfaults): the parent turns a signal, a hang or an exception into ``ConversionError``.

``JOB_DIR/job.json`` says what to convert; the worker writes ``model_info.json`` as soon as the model is
loaded (so a crash report can name its layers), then ``model.tflite`` and ``result.json``, or
``error.json`` and exit code 3.

With ``--serve`` the worker stays up and takes job directories one per line on stdin, answering each with
its exit code on the control channel (the original stdout; TF's own prints go to the job's files), so the
~4 s TensorFlow import is paid once per session instead of once per conversion. A crash still ends only
this process; the parent starts a new one for the next job.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import traceback
from pathlib import Path

EXIT_EXCEPTION = 3


def _representative(path: str, model=None):
    import numpy as np

    samples = np.load(path).astype(np.float32)
    if model is not None:
        from pytest_tinyml.validation import check_inputs

        # The parent checked the samples against the model when it had the model; a path is checked here.
        check_inputs(samples, model, role="representative data")

    def generate():
        for i in range(samples.shape[0]):
            # The converter calibrates one sample at a time, with a batch dimension of 1.
            yield [samples[i : i + 1]]

    return generate, int(samples.shape[0])


def _load(job: dict):
    """(converter, loaded Keras model or None, versions) for the job's source."""
    import tensorflow as tf

    kind, path = job["kind"], job["path"]
    versions = {"tensorflow": tf.__version__}
    if kind == "keras":
        import keras

        versions["keras"] = keras.__version__
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=not job.get("trust", False))
        except ValueError as exc:
            if "safe_mode" not in str(exc):
                raise
            raise ValueError(f"{exc} -- the model holds a Python lambda, which the conversion worker must run to "
                             "reload it: pass trust=True to convert() (or --tinyml-trust-legacy) if you trust "
                             "where the model came from, or replace the Lambda with a registered layer") from None
    elif kind == "tf_keras":
        import tensorflow_model_optimization as tfmot
        import tf_keras

        versions["tf_keras"] = tf_keras.__version__
        with tfmot.quantization.keras.quantize_scope(), tfmot.sparsity.keras.prune_scope(), \
                tfmot.clustering.keras.cluster_scope():
            model = tf_keras.models.load_model(path, compile=False)
    else:
        return tf.lite.TFLiteConverter.from_saved_model(path), None, versions, None
    reason = _fixed_batch_reason(model, job)
    if reason:
        try:
            return _fixed_batch_converter(model), model, versions, reason
        except Exception:  # noqa: BLE001 - a model clone_model cannot copy (subclassed): keep its own batch axis
            if reason == "recurrent":
                raise
    return tf.lite.TFLiteConverter.from_keras_model(model), model, versions, None


# Recipes TFLite Micro runs: converted at batch 1 with static shapes, as the device runs them, so a Keras
# Flatten is one RESHAPE instead of SHAPE + STRIDED_SLICE + PACK + RESHAPE computing the batch at run time.
MCU_RECIPES = {"int8", "int16x8", "float32"}


def _fixed_batch_reason(model, job: dict) -> str | None:
    """Why this model is traced at batch 1: ``"recurrent"``, ``"mcu"``, or None (keep its batch axis).

    A recurrent model's TensorList loop only lowers to builtins at batch 1; a TFLite Micro recipe of a Keras 3
    model gets the static shapes the device has. tf_keras models (tfmot's QAT, pruning and clustering wrappers)
    keep their batch axis: cloning them outside tfmot's scopes is not safe.
    """
    dynamic = any(inp.shape[0] is None for inp in model.inputs)
    if not dynamic:
        return None
    if set(_layer_classes(model)) & {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional"}:
        return "recurrent"
    family = type(model).__module__.split(".")[0]
    if job.get("target") == "tflm" and job.get("recipe") in MCU_RECIPES and family == "keras":
        return "mcu"
    return None


def _fixed_batch_converter(model):
    """A converter for a copy of the model whose inputs have batch size 1 (what TFLite Micro runs anyway)."""
    import tensorflow as tf

    family = type(model).__module__.split(".")[0]
    library = __import__("tf_keras" if family == "tf_keras" else "keras")
    inputs = [library.Input(batch_shape=(1, *inp.shape[1:]), dtype=inp.dtype) for inp in model.inputs]
    clone = library.models.clone_model(model, input_tensors=inputs if len(inputs) > 1 else inputs[0])
    clone.set_weights(model.get_weights())
    return tf.lite.TFLiteConverter.from_keras_model(clone)


def _layer_classes(model) -> list[str]:
    seen = set()

    def walk(m):
        for layer in getattr(m, "layers", ()):
            seen.add(type(layer).__name__)
            inner = getattr(layer, "layer", None)
            if inner is not None:
                seen.add(type(inner).__name__)
            walk(layer)

    walk(model)
    return sorted(seen)


def _configure(converter, job: dict, qat: bool, model=None) -> int:
    """Apply the recipe to the converter; returns the number of calibration samples used."""
    import tensorflow as tf

    recipe, target, io_dtype = job["recipe"], job["target"], job["io_dtype"]
    params = job["params"]
    ops = tf.lite.OpsSet
    n_samples = 0
    extra_ops = []
    if params.get("select_tf_ops"):
        extra_ops = [ops.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False
    if not params.get("per_channel", True):
        converter._experimental_disable_per_channel = True

    if recipe == "float32":
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS, *extra_ops]
    elif recipe == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS, *extra_ops]
    elif recipe == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS, *extra_ops]
    elif recipe in {"int8", "int16x8"}:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if job.get("representative"):
            converter.representative_dataset, n_samples = _representative(job["representative"], model)
        elif not qat:
            raise ValueError(
                f"full-integer recipe {recipe!r} needs a representative dataset and the model is not "
                "quantization-aware trained"
            )
        if recipe == "int8":
            strict = [ops.TFLITE_BUILTINS_INT8]
        else:
            strict = [ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        if qat:
            # A QAT graph carries its own ranges; TF refuses an int8-only op set before it has seen the
            # graph, so leave the op set open (every op of a QAT model comes out integer anyway).
            converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS, *extra_ops]
        elif target == "litert":
            converter.target_spec.supported_ops = [*strict, ops.TFLITE_BUILTINS, *extra_ops]
        else:
            converter.target_spec.supported_ops = strict
        io_type = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io_dtype]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    else:
        raise ValueError(f"unknown recipe {recipe!r}")
    return n_samples


# --- what each recipe promises, checked on the converted graph -------------------------------------------------
QUANT_OPS = {"QUANTIZE", "DEQUANTIZE"}
FLOAT_TYPES = {"float32", "float16", "float64"}
INTEGER_ACTIVATIONS = {"int8": {"int8", "int32", "int64", "bool"}, "int16x8": {"int16", "int32", "int64", "bool"}}


def _graph(content: bytes):
    """(ops, dtype of each tensor, constant tensors, graph inputs, graph outputs) of the main subgraph."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    ops = [op for op in interpreter._get_ops_details() if op.get("op_name") not in (None, "DELEGATE")]
    dtypes = {int(t["index"]): np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    produced = {int(i) for op in ops for i in op["outputs"]}
    constants = {i for i in dtypes if i not in produced and i not in inputs}
    return ops, dtypes, constants, inputs, outputs


def _op_label(op) -> str:
    return f"{op['op_name']} #{op['index']}"


def _listing(labels: list, limit: int = 6) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def recipe_findings(content: bytes, recipe: str, io_dtype: str) -> list[str]:
    """What in the converted graph contradicts ``recipe`` (empty when the graph is what the recipe says).

    ``int8`` / ``int16x8``: every op computes on integers (int8 / int16 activations, integer weights); the only
    QUANTIZE / DEQUANTIZE are the input / output conversions that ``io_dtype="float32"`` asks for.
    ``float16``: float16 weights, dequantized at load. ``dynamic_range``: int8 weights, float activations.
    ``float32``: float tensors only, no QUANTIZE / DEQUANTIZE.
    """
    ops, dtypes, constants, graph_inputs, graph_outputs = _graph(content)
    findings: list[str] = []

    def activations(op):
        return [int(i) for i in (*op["inputs"], *op["outputs"]) if int(i) >= 0 and int(i) not in constants]

    def weights(op):
        return [int(i) for i in op["inputs"] if int(i) >= 0 and int(i) in constants]

    if recipe in INTEGER_ACTIVATIONS:
        allowed = INTEGER_ACTIVATIONS[recipe]
        float_ops, inner_quant, float_weights, wrong_width = [], [], [], []
        for op in ops:
            name = op["op_name"]
            # float32 / uint8 I/O: the QUANTIZE behind each input and the (DE)QUANTIZE before each output are
            # the conversions io_dtype asks for.
            boundary = io_dtype in ("float32", "uint8") and name in QUANT_OPS and (
                {int(i) for i in op["inputs"]} <= graph_inputs or {int(o) for o in op["outputs"]} <= graph_outputs
            )
            if boundary:
                continue
            act_types = {dtypes[i] for i in activations(op)}
            if name == "DEQUANTIZE" or (name == "QUANTIZE" and act_types & FLOAT_TYPES):
                inner_quant.append(_op_label(op))
            elif act_types & FLOAT_TYPES:
                float_ops.append(_op_label(op))
            elif act_types - allowed:
                wrong_width.append(f"{_op_label(op)} ({'/'.join(sorted(act_types - allowed))})")
            if name not in QUANT_OPS and {dtypes[i] for i in weights(op)} & FLOAT_TYPES:
                float_weights.append(_op_label(op))
        if float_ops:
            findings.append(f"{len(float_ops)} op(s) compute in float: {_listing(float_ops)}")
        if inner_quant:
            findings.append(f"{len(inner_quant)} QUANTIZE/DEQUANTIZE inside the graph (not the float I/O "
                            f"conversions): {_listing(inner_quant)}")
        if float_weights:
            findings.append(f"{len(float_weights)} op(s) have float weights: {_listing(float_weights)}")
        if wrong_width:
            findings.append(f"{len(wrong_width)} op(s) have activations other than {recipe}'s: {_listing(wrong_width)}")
        return findings
    weight_types = {dtypes[i] for op in ops if op["op_name"] not in QUANT_OPS for i in weights(op)}
    quant_ops = [_op_label(op) for op in ops if op["op_name"] in QUANT_OPS]
    integer_acts = [_op_label(op) for op in ops if op["op_name"] not in QUANT_OPS
                    and {dtypes[i] for i in activations(op)} & {"int8", "uint8", "int16"}]
    if integer_acts:
        findings.append(f"{len(integer_acts)} op(s) have integer activations: {_listing(integer_acts)}")
    if recipe == "float32":
        if quant_ops:
            findings.append(f"QUANTIZE/DEQUANTIZE ops: {_listing(quant_ops)}")
        odd = sorted({dtypes[i] for i in dtypes} & {"int8", "uint8", "int16", "float16"})
        if odd:
            findings.append(f"tensors of type {', '.join(odd)}")
    elif recipe == "float16":
        half = [i for i in constants if dtypes[i] == "float16"]
        dequant = [op for op in ops if op["op_name"] == "DEQUANTIZE"]
        if weight_types & {"float32"} - {"float16"} and not half:
            findings.append("no float16 weights (every weight is still float32)")
        elif half and not dequant:
            findings.append("float16 weights without the DEQUANTIZE ops that expand them at load")
        if {"int8", "uint8"} & {dtypes[i] for i in constants}:
            findings.append("int8 weights (a float16 model keeps its weights in float16)")
    elif recipe == "dynamic_range":
        int8_weights = [_op_label(op) for op in ops if op["op_name"] not in QUANT_OPS
                        and "int8" in {dtypes[i] for i in weights(op)}]
        if not int8_weights:
            findings.append("no int8 weights: the converter quantizes only weight tensors of 1024 elements or "
                            "more, and this model has none (use the float32 recipe for it)")
    return findings


def verify_recipe(content: bytes, recipe: str, io_dtype: str, *, name: str = "model") -> None:
    """Raise ``ConversionError`` when the converted graph is not what ``recipe`` promises."""
    findings = recipe_findings(content, recipe, io_dtype)
    if not findings:
        return
    from pytest_tinyml.errors import ConversionError

    why = {
        "int8": "the converter keeps an op in float when calibration gave it no range (representative data that "
                "did not reach it, or samples shaped unlike the model's input) or when it has no int8 kernel "
                "(target='litert' falls back to float; target='tflm' refuses)",
        "int16x8": "the converter keeps an op in float when it has no 16x8 kernel (target='litert' falls back) "
                   "or when calibration gave it no range",
        "float16": "the converter did not store the weights in float16",
        "dynamic_range": "nothing was quantized",
        "float32": "the float32 recipe must not quantize",
    }[recipe]
    raise ConversionError(
        f"model {name!r}, recipe {recipe!r}: the converted graph is not a {recipe} model: "
        + "; ".join(findings) + f". Why: {why}. Fix the model or the data, or pick the recipe the graph can be "
        "(float32 / dynamic_range for LiteRT); pytest_tinyml.analyze.analyze(artifact).summary() lists every op"
    )


def main(job_dir: str) -> int:
    faulthandler.enable()  # a native crash prints the Python stack to stderr: the parent shows its tail
    job_dir_path = Path(job_dir)
    job = json.loads((job_dir_path / "job.json").read_text())
    try:
        converter, model, versions, fixed_batch = _load(job)
        qat = bool(job.get("qat"))
        info = {"layer_classes": job.get("layer_classes") or []}
        if model is not None:
            info["layer_classes"] = _layer_classes(model)
            qat = qat or bool(set(info["layer_classes"]) & {"QuantizeLayer", "QuantizeWrapperV2", "QuantizeWrapper"})
        info["qat"] = qat
        (job_dir_path / "model_info.json").write_text(json.dumps(info))
        source_hash = job.get("source_hash")
        if not source_hash and model is not None:
            from pytest_tinyml.identity import model_hash

            source_hash = model_hash(model)
        elif not source_hash:
            from pytest_tinyml.identity import path_hash

            source_hash = path_hash(job["path"])
        n_samples = _configure(converter, job, qat, model)
        content = converter.convert()
        # Sanity: LiteRT must be able to load what we produced (this process is the crash boundary), and the
        # graph must be what the recipe promises (an "int8" model with float kernels is refused here).
        verify_recipe(content, job["recipe"], job["io_dtype"], name=job.get("name") or "model")
        (job_dir_path / "model.tflite").write_bytes(content)
        result = {
            "fixed_batch": fixed_batch,
            "source_hash": source_hash,
            "versions": versions,
            "calibration_samples": n_samples,
            "qat": qat,
        }
        (job_dir_path / "result.json").write_text(json.dumps(result))
        return 0
    except BaseException as exc:  # noqa: BLE001 - everything becomes an error report for the parent
        traceback.print_exc(file=sys.stderr)
        message = str(exc)
        from pytest_tinyml.errors import TinyMLError

        (job_dir_path / "error.json").write_text(
            json.dumps({"type": type(exc).__name__, "message": message[-4000:],
                        "tinyml": isinstance(exc, TinyMLError)})
        )
        return EXIT_EXCEPTION
    finally:
        sys.stderr.flush()
        sys.stdout.flush()


def _redirect(stdout_path: str, stderr_path: str) -> None:
    """Point fds 1 and 2 (what TF's C++ code and faulthandler write to) at this job's files."""
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)


def serve() -> int:
    control = os.fdopen(os.dup(1), "w", buffering=1)  # the parent reads exit codes here, nothing else
    _redirect(os.devnull, os.devnull)
    faulthandler.enable()
    for line in sys.stdin:
        job_dir = line.strip()
        if not job_dir:
            continue
        _redirect(os.path.join(job_dir, "stdout.txt"), os.path.join(job_dir, "stderr.txt"))
        code = main(job_dir)
        _release_memory()
        _redirect(os.devnull, os.devnull)
        control.write(f"{code}\n")
    return 0


def _release_memory() -> None:
    import gc

    for module in ("keras", "tf_keras"):
        if module in sys.modules:
            try:
                sys.modules[module].backend.clear_session()
            except Exception:  # noqa: BLE001 - best effort between jobs
                pass
    gc.collect()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.argv[1:] == ["--serve"]:
        sys.exit(serve())
    if len(sys.argv) != 2:
        print("usage: python -m pytest_tinyml.conversion._child JOB_DIR | --serve", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
