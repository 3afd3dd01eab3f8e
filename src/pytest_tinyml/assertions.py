"""``assert_*`` helpers for model-quality tests; a failure reads like a short report.

Each assertion takes a Keras model, a ``TFLiteArtifact``, flatbuffer bytes or a path (``assert_parity`` also
takes a board result as the candidate), records its figures with :func:`pytest_tinyml.report.record` (they
reach JUnit XML, the terminal summary and ``--tinyml-report``), and raises
:class:`~pytest_tinyml.errors.TinyMLAssertionError` with a table (metric, reference, candidate, difference,
budget) and what to try next. Bad arguments raise :class:`~pytest_tinyml.errors.ConfigError` instead.

Example:
    >>> import pytest_tinyml as tinyml
    >>> tinyml.assert_budget("model_int8.tflite", flash_kb=64, arena_kb=16)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np

from pytest_tinyml import _model_io, metrics, report, validation
from pytest_tinyml._failure import fail as _fail
from pytest_tinyml._failure import fmt as _fmt
from pytest_tinyml._failure import quantized_hints as _quantized_hints
from pytest_tinyml.errors import ConfigError

__all__ = ["assert_accuracy_drop", "assert_budget", "assert_parity", "assert_tflm_compatible"]

def _check_budget(name: str, value, *, allow_none: bool = True, upper: float | None = None,
                  negative_ok: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if (value < 0 and not negative_ok) or (upper is not None and value > upper):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- accuracy


# name: (label in the report, score(y, outputs, x)); higher is better for each.
_TASK_METRICS = {
    "accuracy": ("accuracy", lambda y, out, x: metrics.accuracy(y, out)),
    "top5": ("top-5 accuracy", lambda y, out, x: metrics.top_k_accuracy(y, out, k=5)),
    "roc_auc": ("ROC AUC", lambda y, out, x: metrics.roc_auc(y, metrics.reconstruction_error(x, out))),
}


def _task_metric(metric, inputs: np.ndarray, outputs: np.ndarray):
    """(name, label, score function) for ``metric``; "auto" is ROC AUC for an autoencoder, else accuracy."""
    if callable(metric):
        name = getattr(metric, "__name__", "metric")
        return name, name, lambda y, out, x: float(metric(y, out))
    if metric == "auto":
        # An output shaped like its input is a reconstruction: score anomalies by reconstruction error.
        metric = "roc_auc" if outputs.shape == inputs.shape else "accuracy"
    if metric not in _TASK_METRICS:
        raise ConfigError(
            f"unknown metric {metric!r}: use 'auto', {', '.join(repr(m) for m in _TASK_METRICS)}, "
            "or a function (y, outputs) -> score where higher is better"
        )
    label, score = _TASK_METRICS[metric]
    return metric, label, score


def _inputs(x, ref, cand, reshape: bool) -> np.ndarray:
    """``x`` validated against both models' input shape (NaN/Inf, layout); see :mod:`pytest_tinyml.validation`."""
    inputs = validation.check_inputs(x, ref, role="x", reshape=reshape)
    if cand.kind != "device":
        inputs = validation.check_inputs(inputs, cand, role=f"x (for the candidate, {cand.describe()})",
                                         reshape=reshape)
    return inputs


def outputs(model, x, *, reshape: bool = False) -> np.ndarray:
    """Float outputs of ``model`` on ``x`` (first axis = sample), with ``x`` checked as the assertions check it.

    The same path the assertions take: a TFLite model runs on LiteRT, quantized outputs come dequantized, and a
    Keras model's prediction is remembered in the cache per (model content hash, input bytes, versions), so a
    warm run reads back the bit-identical array instead of predicting again.

    Example:
        >>> accuracy = tinyml.metrics.accuracy(y_test, tinyml.outputs(float_model, x_test))  # doctest: +SKIP
    """
    resolved = _model_io.resolve(model, "model")
    inputs = validation.check_inputs(x, resolved, role="x", reshape=reshape)
    return _model_io.outputs_of(resolved, inputs, "model")


def _labels(y, name: str, ref, ref_out: np.ndarray, n: int):
    """``y`` checked for the metric: class labels in the model's classes, 0/1 anomaly labels for ROC AUC."""
    if name in ("accuracy", "top5"):
        classes = validation.num_classes_of(ref)
        if classes is None and ref_out.ndim >= 2:
            classes = int(ref_out.reshape(n, -1).shape[1])
            classes = 2 if classes == 1 else classes
        return validation.check_labels(y, n=n, num_classes=classes)
    if name == "roc_auc":
        return validation.check_binary_labels(y, n=n, role="y (anomaly labels: 1 = anomaly)")
    labels = np.asarray(y)
    if len(labels) != n:
        raise ConfigError(f"x has {n} samples but y has {len(labels)} labels: give one label per sample")
    return labels


def _on_board(board, model, x, ref, reshape: bool, batch_size):
    """(the board's predictions of ``x``, the resolved model it ran, the checked inputs)."""
    if model is None:
        raise ConfigError("assert_accuracy_drop with a board needs model=: the int8 TFLite model to run on it "
                          "(e.g. model=tinyml_cache.convert(float_model, 'int8', representative=x_train[:300]))")
    run = _model_io.resolve(model, "model")
    if run.kind != "tflite":
        raise ConfigError(f"model= is {run.describe()}; a board runs a TFLite model: convert it first "
                          "(tinyml_cache.convert(model, 'int8', representative=...))")
    if len(run.artifact.outputs) > 1:  # as a model candidate is refused; the board would score output 0 alone
        raise ConfigError(f"model= ({run.describe()}) has {len(run.artifact.outputs)} outputs; the assertions compare "
                          "single-output models (a board reads back output 0 only)")
    inputs = validation.check_inputs(x, ref, role="x", reshape=reshape)
    inputs = validation.check_inputs(inputs, run, role=f"x (for {run.describe()})", reshape=reshape)
    return board.predict(run.artifact, inputs, batch_size=batch_size), run, inputs


def _check_board_result(cand, run, inputs) -> None:
    """A board result given as the candidate must hold the outputs of ``x`` (and of ``model=``, when given)."""
    result = cand.obj
    outputs_of_model = (getattr(result, "info", None) or {}).get("model_outputs", 1)
    if outputs_of_model > 1:  # as a two-output candidate is refused on the host: output 0 alone is not the model
        raise ConfigError(f"the board result is of a model with {outputs_of_model} outputs and holds output 0 only; "
                          "the assertions compare single-output models")
    sha = getattr(result, "model_sha256", None)
    if run is not None and sha and sha != run.artifact.sha256:
        raise ConfigError(f"the board result is of model sha256 {sha[:8]}, but model= is {run.describe()}: pass the "
                          "result of that model (tinyml_board.predict(model, x)), or the board itself")
    ran_on = getattr(result, "ran_on", None)
    outputs = getattr(result, "outputs", None)
    if callable(ran_on) and outputs is not None and len(outputs) == len(inputs) and ran_on(inputs) is False:
        raise ConfigError(f"the board result holds the outputs of {len(inputs)} other inputs than x (the "
                          "quantized samples differ): pass the x the board ran, or the board itself so it runs x")


def _board_lines(cand, run, inputs, labels, score, cand_out) -> list[str]:
    """Where the candidate's figure was measured, and the same model on this host's TFLite Micro."""
    identity = getattr(cand.obj, "identity", None)
    parts = [f"{k} {v}" for k, v in (("chip", getattr(identity, "chip", None)),
                                     ("firmware", getattr(identity, "firmware_hash", None)),
                                     ("TFLite Micro", getattr(identity, "tflm_version", None)),
                                     ("ESP-NN", getattr(identity, "esp_nn_version", None)),
                                     ("MHz", getattr(identity, "cpu_mhz", None))) if v]
    batches = getattr(cand.obj, "batches", ())
    streamed = f", {len(inputs)} samples in {len(batches)} batches" if batches else ""
    lines = [f"  the candidate's figure was measured on the {cand.where}: {', '.join(parts) or 'board'}{streamed}"]
    if run is None:
        return lines
    from pytest_tinyml import runtime

    try:
        host_raw = np.asarray(runtime.runner(run.artifact, engine="tflm").predict_raw(inputs))
    except Exception as exc:  # the comparison explains the failure; it must never replace it
        return lines + [f"  (the same model on this host could not run: {type(exc).__name__})"]
    board_raw = getattr(cand.obj, "raw_outputs", None)
    host_score = score(labels, run.output_quant.dequantize(host_raw) if run.output_quant is not None else host_raw,
                       inputs)
    same = board_raw is not None and np.array_equal(np.asarray(board_raw).reshape(host_raw.shape), host_raw)
    differ = "" if same or board_raw is None else (
        f"; the board's outputs differ on "
        f"{int((np.asarray(board_raw).reshape(len(inputs), -1) != host_raw.reshape(len(inputs), -1)).any(axis=1).sum())}"
        " samples")
    lines.append(f"  the same int8 model on this host's TFLite Micro scores {host_score:.4f}"
                 + ("; the board's outputs are bit-identical to it" if same else differ))
    return lines


def assert_accuracy_drop(reference, candidate, x, y, *, max_drop: float = 0.01, metric="auto",
                         reshape: bool = False, model=None, batch_size: int | None = None) -> dict:
    """Fail when the candidate's score on ``(x, y)`` is more than ``max_drop`` below the reference's.

    ``candidate`` is a model, a board result (``tinyml_board.predict(model, x)`` or ``.benchmark``), or the
    board itself (``tinyml_board``) with ``model=`` the int8 model to run there: the slice streams through the
    board in batches (at most ``batch_size`` samples each, see ``Board.predict``) and the candidate's score is
    measured on the device (or the sim); the report says where, and which board. A board result must hold the
    outputs of this ``x`` (and of ``model=`` when given), else ``ConfigError``.

    ``metric`` is ``"accuracy"``, ``"top5"``, ``"roc_auc"`` (of the reconstruction error, for
    autoencoders: ``y`` is 1 for anomalies), a function ``(y, outputs) -> score``, or ``"auto"`` (ROC AUC
    when the model reconstructs its input, accuracy otherwise). ``max_drop`` is a fraction (0.01 = one
    point). Returns the figures (both scores and the drop).

    ``x`` and ``y`` are checked first (:mod:`pytest_tinyml.validation`): NaN/Inf, samples shaped unlike the
    model's input (``reshape=True`` reshapes samples with the right element count), class labels outside the
    model's classes or non-integral float labels are a ``ConfigError``.

    Example:
        >>> assert_accuracy_drop(float_model, int8_model, ds.x_test, ds.y_test, max_drop=0.01)  # doctest: +SKIP
        >>> assert_accuracy_drop(float_model, tinyml_board, ds.x_test[:500], ds.y_test[:500],
        ...                      model=int8_model, max_drop=0.01)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    max_drop = _check_budget("max_drop", max_drop, allow_none=False, upper=1.0)
    ref = _model_io.resolve(reference, "reference")
    run = None
    if _model_io.is_board(candidate):
        candidate, run, inputs = _on_board(candidate, model, x, ref, reshape, batch_size)
        cand = _model_io.resolve(candidate, "candidate", device_ok=True)
    else:
        if batch_size is not None:  # it sizes the board's batches; nothing here streams
            raise ConfigError("batch_size= is for a board as the candidate (it sizes the batches the slice streams "
                              "in); here the candidate runs no batches: drop batch_size=")
        cand = _model_io.resolve(candidate, "candidate", device_ok=True)
        if model is not None:
            if cand.kind != "device":
                raise ConfigError("model= is for a board or a board result as the candidate; here the candidate "
                                  f"is {cand.describe()} itself")
            run = _model_io.resolve(model, "model")
        inputs = _inputs(x, ref, cand, reshape)
    labels_shape = np.shape(y)  # a scalar y has no length: 0 labels, not a TypeError
    if (labels_shape[0] if labels_shape else 0) != len(inputs):
        raise ConfigError(f"x has {len(inputs)} samples but y has {labels_shape[0] if labels_shape else 0} labels "
                          f"(shape {labels_shape}): give one label per sample")
    if cand.kind == "device":
        _check_board_result(cand, run, inputs)
    ref_out = _model_io.outputs_of(ref, inputs, "reference")
    name, label, score = _task_metric(metric, inputs, ref_out)
    labels = _labels(y, name, ref, ref_out, len(inputs))
    ref_score = score(labels, ref_out, inputs)
    cand_out = _model_io.outputs_of(cand, inputs, "candidate")
    cand_score = score(labels, cand_out, inputs)
    drop = ref_score - cand_score
    figures = {"metric": name, f"reference_{name}": ref_score, name: cand_score, "drop": drop,
               "samples": len(inputs), "where": cand.where}
    # A board result is not a model: name the model it ran, never the chip.
    info = (getattr(cand.obj, "info", None) or {}) if cand.kind == "device" else {}
    named = (run.name, run.recipe) if run is not None else (info.get("model", cand.name), cand.recipe)
    report.record(model=named[0], recipe=named[1], **{name: cand_score, f"reference_{name}": ref_score},
                  drop=drop, where=cand.where)
    # A hair of tolerance: accuracies are ratios of counts and 0.01 may not be exact in binary.
    if drop > max_drop + 1e-12:
        from pytest_tinyml import diagnosis

        # On a board, the per-layer diagnosis runs the model it ran, on this host.
        explained = run.artifact if run is not None else candidate
        lead, diagnosed, causes = diagnosis.failure_lines(reference, explained, inputs)
        context = [f"  reference: {ref.describe()}", f"  candidate: {cand.describe()}"]
        if cand.kind == "device":
            context += _board_lines(cand, run, inputs, labels, score, cand_out)
        if name == "accuracy":
            context.append(f"  on {len(inputs)} samples: about {int(round(drop * len(inputs)))} more misclassified")
            context += diagnosis.per_class_lines(labels, ref_out, cand_out)
        elif name == "roc_auc":
            context.append(f"  on {len(inputs)} samples; anomaly score = reconstruction error (mean squared)")
        else:
            context.append(f"  on {len(inputs)} samples")
        where = f" ({cand.where})" if cand.kind == "device" else ""
        _fail(
            "\n".join([*lead, f"{label} dropped by {drop * 100:.2f} points, more than the allowed {max_drop * 100:.2f}"]),
            context + diagnosed,
            ["metric", "reference", f"candidate{where}", "difference", "budget"],
            [[label, _fmt(ref_score), _fmt(cand_score), _fmt(-drop, "{:+.4f}"), f"drop <= {max_drop:.4f}"]],
            causes + _quantized_hints(cand),
        )
    return figures


# ---------------------------------------------------------------------------------------------- budget


def assert_budget(model, *, flash_kb: float | None = None, arena_kb: float | None = None,
                  latency_ms: float | None = None, target: str | None = None,
                  cpu_mhz: float | None = None, board=None) -> dict:
    """Fail when the flatbuffer is larger than ``flash_kb``, the TFLite Micro arena than ``arena_kb`` or the
    latency than ``latency_ms``.

    Flash is the flatbuffer size. Without ``target`` or a board the arena is the exact minimum found by the
    TFLite Micro runtime on this host (64-bit pointers: larger than the device's), ``where=host``. With
    ``target="esp32s3"`` (or ``esp32``, ``esp32c3``) the figures are measured on a board of that chip when
    there is one: ``board=tinyml_board`` (or a ``BoardResult`` of this model), or by default the session's
    ``--tinyml-board`` when it reports that chip; ``where=device``, the estimate and the ratio measured /
    estimate beside them (recorded in the history for ``pytest-tinyml estimate calibrate``). Without one
    (no board, a board of another chip, the sim: it is never a ``target``'s measurement) the figures are
    :func:`pytest_tinyml.estimation.estimate`'s (``cpu_mhz`` optional), ``where=estimate``; a board passed
    explicitly that reports another chip is a ``ConfigError``. ``board=False``: always the estimate. With a
    board and no ``target``, the board's own figures (``where`` = ``device`` or ``sim``). ``latency_ms`` needs a
    ``target`` or a board. A Keras model is converted with the float32 recipe first. KB = 1024 bytes. Returns
    the figures. See :mod:`pytest_tinyml.board.budget`.

    Example:
        >>> assert_budget(int8_model, flash_kb=64, arena_kb=16)  # doctest: +SKIP
        >>> assert_budget(int8_model, arena_kb=24, latency_ms=30, target="esp32s3")  # doctest: +SKIP
        >>> assert_budget(int8_model, latency_ms=30, target="esp32s3", board=tinyml_board)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    flash_kb = _check_budget("flash_kb", flash_kb)
    arena_kb = _check_budget("arena_kb", arena_kb)
    latency_ms = _check_budget("latency_ms", latency_ms)
    if flash_kb is None and arena_kb is None and latency_ms is None:
        raise ConfigError("assert_budget needs a budget: give flash_kb=..., arena_kb=..., latency_ms=... (KB, ms)")
    if latency_ms is not None and target is None and not board:
        raise ConfigError("assert_budget(latency_ms=...) needs target= (esp32, esp32s3 or esp32c3): the latency "
                          "is estimated for that chip, or measured on board=tinyml_board")
    if cpu_mhz is not None and target is None:
        raise ConfigError(f"assert_budget(cpu_mhz={cpu_mhz!r}) is the clock of target='s estimate: give target= "
                          "(esp32, esp32s3 or esp32c3); without one the arena is the host's and no clock applies")
    if target is not None:
        from pytest_tinyml.estimation import chip_of

        target = chip_of(target)  # as boards report it: "ESP32-S3" must find the esp32s3 board too
    resolved = _model_io.resolve(model, "model")
    artifact = _model_io.artifact_of(resolved)
    flash = len(artifact.content) / 1024
    figures = {"flash_kb": flash}
    rows = []
    hints = []
    context = []
    estimated = measured = None
    if arena_kb is not None or latency_ms is not None:
        from pytest_tinyml.board import budget as board_budget

        on, not_used = board_budget.choose(board, target)
        measured = board_budget.measure(on, artifact) if on is not None else None
        if not_used:
            context.append(f"  {not_used}")
        if target is not None:
            from pytest_tinyml.estimation import estimate

            # Beside a measurement, the uncalibrated estimate at the board's clock: its ratio calibrates the model.
            mhz = measured.cpu_mhz if measured is not None and measured.cpu_mhz else cpu_mhz
            try:
                estimated = estimate(artifact, target=target, cpu_mhz=mhz,
                                     calibration=None if measured is not None else "auto")
            except ConfigError as exc:  # e.g. a float model: the board measured it, there is nothing to compare
                if measured is None:
                    raise
                context.append(f"  no estimate to compare with: {exc}")
    if measured is not None and arena_kb is not None and measured.arena_bytes is None:
        raise ConfigError(f"{measured.board} reports no arena figure: judge arena_kb= on the estimate (board=False)")
    if flash_kb is not None:
        over = flash > flash_kb
        rows.append(["flash (flatbuffer)", _fmt(flash, "{:.1f} KB"), _fmt(flash_kb, "{:.1f} KB"),
                     _fmt(flash - flash_kb, "{:+.1f} KB"), "OVER" if over else "ok"])
        if over:
            if resolved.output_quant is None and "int8" not in resolved.recipe:
                hints.append("quantize: the int8 recipe stores weights in a quarter of float32's flash")
            hints.append("raise the budget or prune the architecture: fewer or narrower layers (pruned or "
                         "clustered weights save flash only in a compressed image: TFLite stores the zeros)")
    if arena_kb is not None:
        if measured is not None:
            arena, label = measured.arena_kb, f"arena (measured on {measured.label})"
        elif estimated is not None:
            arena, label = estimated.arena_kb, f"arena ({estimated.target} 32-bit estimate)"
        else:
            from pytest_tinyml.runtime import tflm

            arena, label = tflm.arena(artifact).arena_kb, "arena (host 64-bit estimate)"
        figures["arena_kb"] = arena
        over = arena > arena_kb
        rows.append([label, _fmt(arena, "{:.1f} KB"), _fmt(arena_kb, "{:.1f} KB"),
                     _fmt(arena - arena_kb, "{:+.1f} KB"), "OVER" if over else "ok"])
        if over:
            hints.append("the arena holds activations: a smaller input, narrower layers or int8 activations "
                         "shrink it; raise the budget if the board has the RAM")
    if latency_ms is not None:
        if measured is not None:
            value = measured.latency_ms
            label = f"latency (median of {measured.runs} runs on {measured.label})"
        else:
            low, high = estimated.latency_ms_range
            value = estimated.latency_ms
            kind = "calibrated estimate" if estimated.calibration else "estimate"
            label = f"latency ({estimated.target} {estimated.cpu_mhz:g} MHz {kind}, {low:.3g}-{high:.3g})"
            if estimated.calibration:
                context.append(f"  the latency estimate is {estimated.calibration}")
        figures["latency_ms"] = value
        over = value > latency_ms
        # Three significant figures below 10 ms: a 0.03 ms model must not read "0.0 ms".
        spec = "{:.1f}" if min(value, latency_ms) >= 10 else "{:.3g}"
        rows.append([label, _fmt(value, spec + " ms"), _fmt(latency_ms, spec + " ms"),
                     _fmt(value - latency_ms, spec.replace("{:", "{:+") + " ms"), "OVER" if over else "ok"])
        if over and estimated is not None:
            slow = sorted(estimated.per_op, key=lambda o: -o.ms)[:3]
            hints.append("the slowest ops (estimated): " + ", ".join(f"#{o.index} {o.op} {o.ms:.1f} ms ({o.kernel})"
                                                                   for o in slow)
                         + "; fewer MACs, or ops on ESP-NN's optimized path (tinyml.esp_nn_paths), are faster")
    extra = _budget_sources(artifact, resolved.recipe, measured, estimated, context)
    extra["target"] = target
    where = measured.where if measured is not None else "estimate" if estimated is not None else "host"
    report.record(model=resolved.name, recipe=resolved.recipe, where=where,
                  **{"arena_kb": None, "latency_ms": None, **figures}, **extra,
                  **report.optimization_figures(getattr(artifact, "params", None)))
    if hints:
        sim = (": TFLite Micro on this host, so a 64-bit arena and the host's clock" if measured is not None
               and measured.where == "sim" else "")
        note = (f"; measured on {measured.label}{sim}, where={measured.where})" if measured is not None else
                "; the arena and latency are estimates for the device (where=estimate), not measurements)"
                if estimated is not None else
                "; the arena is measured by TFLite Micro on this 64-bit host, an estimate of the 32-bit device "
                "arena)" if arena_kb is not None else ")")
        _fail(
            f"{resolved.describe()} is over its budget",
            ["  (KB = 1024 bytes" + note, *context],
            ["metric", "estimated" if measured is None and estimated is not None else "measured", "budget",
             "difference", "result"],
            rows,
            hints,
        )
    return figures


def _budget_sources(artifact, recipe, measured, estimated, context: list) -> dict:
    """Report figures saying where the budget's figures came from; the estimate (and, beside a board's
    measurement, the ratio measured / estimate) goes to the history's estimates, apart from measurements."""
    # Every source key, None when it does not apply: the test's row then describes this call, never a mix of
    # an earlier call's measurement and this one's estimate.
    extra = dict.fromkeys(("target", "estimate_calibration", "board", "chip", "estimate_latency_ms",
                           "estimate_arena_kb", "latency_ratio", "arena_ratio"))
    if estimated is not None:
        extra["target"] = estimated.target
        extra["estimate_calibration"] = estimated.calibration
    if measured is not None:
        extra.update(board=measured.board, chip=measured.chip)
    if estimated is None:
        return extra
    from pytest_tinyml.estimation import latency
    from pytest_tinyml.history import estimates

    estimate = {"latency_ms": estimated.latency_ms, "arena_bytes": estimated.arena_bytes,
                "cpu_mhz": estimated.cpu_mhz, "calibration": estimated.calibration, "estimator": latency.fingerprint()}
    measured_dict = None
    if measured is not None:
        measured_dict = {"where": measured.where, "board": measured.identity, "latency_ms": measured.latency_ms,
                         "arena_bytes": measured.arena_bytes, "runs": measured.runs, "port": measured.board,
                         "run_id": measured.run_id}
        ratios = estimates.measured_over_estimate(measured_dict, estimate)
        extra.update(estimate_latency_ms=estimated.latency_ms, estimate_arena_kb=estimated.arena_kb,
                     latency_ratio=ratios["latency"], arena_ratio=ratios["arena"])
        context.append(f"  estimate for {estimated.target} at {estimated.cpu_mhz:g} MHz: latency "
                       f"{estimated.latency_ms:.3g} ms, arena {estimated.arena_kb:.1f} KB (measured / estimate: "
                       + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items() if v is not None) + ")")
    estimates.observe(target=estimated.target, model_sha256=artifact.sha256, recipe=recipe, estimate=estimate,
                      measured=measured_dict, model=estimated.model)
    return extra


# ---------------------------------------------------------------------------------------------- parity

_PARITY_BUDGETS = {
    # name: (metrics key, label, "min" or "max", format)
    "min_top1_agreement": ("top1_agreement", "top-1 agreement", "min", "{:.4f}"),
    "max_error_steps": ("max_error_steps", "max error (output steps)", "max", "{:.1f}"),
    "min_cosine": ("cosine", "cosine similarity", "min", "{:.5f}"),
    "max_rmse": ("rmse", "RMSE", "max", "{:.5f}"),
    "min_snr_db": ("snr_db", "SNR (dB)", "min", "{:.1f}"),
    "max_saturation": ("saturation", "outputs at qmin/qmax", "max", "{:.4f}"),
}


def _parity_figures(ref, cand, inputs) -> tuple[dict, np.ndarray, np.ndarray]:
    """Outputs of both sides and every metric; error steps from raw integers when both sides have them."""
    # Against a board, the reference runs the kernels TFLite Micro matches bit for bit.
    exact = cand.kind == "device"
    ref_out = _model_io.outputs_of(ref, inputs, "reference", reference_kernels=exact)
    cand_out = _model_io.outputs_of(cand, inputs, "candidate")
    # The quantized side's output scale is the unit of "steps"; the candidate's when both are quantized.
    quant = cand.output_quant if cand.output_quant is not None else ref.output_quant
    figures = metrics.compare_outputs(ref_out, cand_out, output_quant=quant)
    if quant is not None and cand.output_quant is None:
        # Saturation and clipping are properties of the quantized side: here the reference.
        figures["saturation"] = metrics.saturation_rate(ref_out, quant=quant)
        figures["clipped"] = metrics.clipping_rate(cand_out, quant)
    if ref.output_quant is not None and cand.output_quant is not None:
        ref_raw = _model_io.raw_outputs_of(ref, inputs, reference_kernels=exact)
        cand_raw = _model_io.raw_outputs_of(cand, inputs)
        same_grid = (float(metrics.output_scale(ref.output_quant)) == float(metrics.output_scale(cand.output_quant))
                     and int(np.max(ref.output_quant.zero_point)) == int(np.max(cand.output_quant.zero_point)))
        if ref_raw is not None and cand_raw is not None and same_grid:
            # Same grid on both sides: count LSBs exactly on the integers the kernels produced.
            diff = np.abs(ref_raw.astype(np.int64).reshape(len(inputs), -1)
                          - cand_raw.astype(np.int64).reshape(len(inputs), -1))
            figures["max_error_steps"] = float(diff.max())
            figures["steps_from"] = "raw integer outputs"
    return figures, ref_out, cand_out


def assert_parity(
    reference,
    candidate,
    x,
    *,
    min_top1_agreement: float | None = None,
    max_error_steps: float | None = None,
    min_cosine: float | None = None,
    max_rmse: float | None = None,
    min_snr_db: float | None = None,
    max_saturation: float | None = None,
    reshape: bool = False,
) -> dict:
    """Fail when the candidate's outputs on ``x`` stray from the reference's beyond any given budget.

    ``max_error_steps`` counts output quantization steps (LSBs) of the quantized side; between an int8
    artifact and a board result it compares the raw integers. A board result's outputs must be those of
    ``x``. ``x`` is validated like :func:`assert_accuracy_drop`'s (NaN/Inf, shape; ``reshape=True`` to reshape
    samples with the right element count). Returns every figure of :func:`pytest_tinyml.metrics.compare_outputs`.

    Example:
        >>> assert_parity(float_model, int8_model, ds.x_test, min_top1_agreement=0.98)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    budgets = {
        "min_top1_agreement": _check_budget("min_top1_agreement", min_top1_agreement, upper=1.0),
        "max_error_steps": _check_budget("max_error_steps", max_error_steps),
        "min_cosine": _check_budget("min_cosine", min_cosine, upper=1.0),
        "max_rmse": _check_budget("max_rmse", max_rmse),
        "min_snr_db": _check_budget("min_snr_db", min_snr_db, negative_ok=True),
        "max_saturation": _check_budget("max_saturation", max_saturation, upper=1.0),
    }
    if all(v is None for v in budgets.values()):
        raise ConfigError("assert_parity needs at least one budget: " + ", ".join(f"{k}=" for k in budgets))
    ref = _model_io.resolve(reference, "reference")
    cand = _model_io.resolve(candidate, "candidate", device_ok=True)
    inputs = _inputs(x, ref, cand, reshape)
    if cand.kind == "device":
        _check_board_result(cand, None, inputs)  # the outputs of other inputs than x compare nothing
    for name in ("max_error_steps", "max_saturation"):
        if budgets[name] is not None and cand.output_quant is None and ref.output_quant is None:
            raise ConfigError(
                f"{name}= needs a quantized side (an int8 TFLite model or a board result with output_quant); "
                f"{ref.describe()} and {cand.describe()} both have float outputs: use max_rmse= or min_cosine="
            )
    figures, ref_out, cand_out = _parity_figures(ref, cand, inputs)
    # A board result is not a model: name the model it ran (the int8 reference), never the chip.
    named = cand if cand.kind != "device" else (ref if ref.kind == "tflite" else None)
    identity = {"model": named.name, "recipe": named.recipe} if named is not None else {}
    report.record(**identity, top1_agreement=figures["top1_agreement"],
                  max_error_steps=figures.get("max_error_steps"), cosine=figures["cosine"],
                  rmse=figures["rmse"], snr_db=figures["snr_db"], where=cand.where)

    rows, failed = [], []
    for name, (key, label, direction, spec) in _PARITY_BUDGETS.items():
        budget = budgets[name]
        value = figures.get(key)
        # Unbudgeted figures are context; saturation is noise for a softmax (its zeros sit at qmin).
        if budget is None and (value is None or name == "max_saturation"):
            continue
        # Dequantized floats put an exact 1-LSB error at 1.0000001 steps: a hair of slack, far below a step.
        slack = 1e-4 if name == "max_error_steps" else 1e-12
        bad = budget is not None and (value < budget - slack if direction == "min" else value > budget + slack)
        if bad:
            failed.append(name)
        difference = "-" if budget is None else _fmt(value - budget, "{:+.4f}" if spec != "{:.1f}" else "{:+.1f}")
        bound = "-" if budget is None else (">= " if direction == "min" else "<= ") + _fmt(budget, spec)
        rows.append([label, _fmt(value, spec), bound, difference, "FAIL" if bad else ("ok" if budget is not None else "")])
    if not failed:
        return figures

    ref_top = metrics.predicted_classes(ref_out, "reference")
    cand_top = metrics.predicted_classes(cand_out, "candidate")
    error = np.abs(ref_out - cand_out.reshape(ref_out.shape)).reshape(len(inputs), -1).max(axis=1)
    worst = int(error.argmax())
    steps = f" ({error[worst] / figures['output_scale']:.1f} steps)" if "output_scale" in figures else ""
    disagree = np.flatnonzero(ref_top != cand_top)
    context = [
        f"  reference: {ref.describe()}",
        f"  candidate: {cand.describe()}",
        f"  on {len(inputs)} samples: {len(disagree)} disagree on top-1"
        + (f" (first: sample #{disagree[0]}, class {ref_top[disagree[0]]} vs {cand_top[disagree[0]]})"
           if len(disagree) else ""),
        f"  largest error: sample #{worst}, max |reference - candidate| = {error[worst]:.4g}{steps}",
    ]
    if "steps_from" in figures:
        context.append(f"  error steps counted on the {figures['steps_from']}")
    hints = []
    if figures["candidate_constant"] and not figures["reference_constant"]:
        hints.append("the candidate's output is the same for every input: the model collapsed in "
                     "conversion (calibration data scaled unlike x?) or the input quantization clips")
    if figures.get("clipped", 0.0) > 0.01:
        hints.append(f"{figures['clipped']:.0%} of the float outputs lie outside the quantized output's range: "
                     "the calibrated range is too narrow; use more, and more varied, representative samples")
    board_sha = getattr(cand.obj, "model_sha256", None) if cand.kind == "device" else None
    if board_sha and ref.kind == "tflite" and board_sha != ref.artifact.sha256:
        context.append(f"  the board ran model sha256 {board_sha[:8]}, the reference is {ref.artifact.sha256[:8]}")
        hints.append("the board ran a different model than the reference: benchmark the same artifact you "
                     "compare against")
    from pytest_tinyml import diagnosis

    lead, diagnosed, causes = diagnosis.failure_lines(reference, candidate, inputs)
    context += diagnosed
    hints = causes + hints
    if cand.kind == "device" and ref.kind == "tflite":
        hints.append("the board's kernels differ from TFLite's: 1 LSB is rounding; more means a kernel or "
                     "version mismatch (optimized kernels such as ESP-NN), or a different model on the board")
    else:
        hints.extend(_quantized_hints(cand))
    _fail(
        "\n".join([*lead, "parity failed: " + ", ".join(_PARITY_BUDGETS[name][1] for name in failed) + " out of budget"]),
        context,
        ["metric", "measured", "budget", "difference", "result"],
        rows,
        hints,
    )
    return figures  # unreachable; keeps type checkers calm


# ---------------------------------------------------------------------------------------------- TFLM


def assert_tflm_compatible(model) -> dict:
    """Fail when TFLite Micro cannot run the model: operators its op resolver lacks, or a failed load/invoke.

    The answer comes from the TFLite Micro runtime itself (see :func:`pytest_tinyml.analyze.analyze`).
    A Keras model is converted with the float32 recipe first. Returns ``{"unsupported_ops": [...]}``.

    Example:
        >>> assert_tflm_compatible(int8_model)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    resolved = _model_io.resolve(model, "model")
    artifact = _model_io.artifact_of(resolved)
    from pytest_tinyml.analyze import tflm_compatibility

    compat = tflm_compatibility(artifact)
    missing = [str(op) for op in compat.missing_ops]
    report.record(model=resolved.name, recipe=resolved.recipe, tflm_unsupported=missing, where="host")
    if not compat.compatible:
        rows = [[op, "missing", _TFLM_HINTS.get(op, "replace the layer, or register a custom op in the firmware")]
                for op in missing]
        if compat.load_error and not missing:
            rows.append(["(load + invoke)", "failed", "see TFLite Micro's reason above"])
        _fail(
            f"{resolved.describe()} cannot run on TFLite Micro"
            + (f": its op resolver lacks {len(missing)} operator(s)" if missing else ": loading failed"),
            [f"  {line}" for line in (compat.load_error or "").splitlines() if not missing],
            ["operator", "TFLite Micro", "what to do"],
            rows,
            ["use TFLite builtin ops that TFLite Micro implements (Dense, Conv, DepthwiseConv, pooling, "
             "softmax, ...); pytest_tinyml.analyze.analyze(model).summary() lists every op"],
        )
    return {"unsupported_ops": missing}


_TFLM_HINTS = {
    "FLEX": "a TensorFlow (Flex) op: rewrite the layer with TFLite builtins",
    "TOPK_V2": "top_k has no micro kernel: take the top-k on the host, or argmax (ARG_MAX) on the device",
    "WHILE": "unroll the loop (unroll=True on RNN layers)",
}
