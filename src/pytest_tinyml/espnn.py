"""Which kernel each operator gets on an Espressif chip: ESP-NN's optimized one, its plain C one, or TFLM's
reference kernel; and which shapes hit a known ESP-NN bug.

The rules are read from the sources of the two projects a firmware links (pinned in :data:`SOURCES`):

* esp-tflite-micro replaces seven TFLite Micro kernels with wrappers in
  ``tensorflow/lite/micro/kernels/esp_nn/{add,conv,depthwise_conv,fully_connected,mul,pooling,softmax}.cc``.
  Each wrapper calls ESP-NN only for some types and shapes (int8 with int8 weights, no dilation, no
  broadcast, ...) and the TFLite Micro reference kernel otherwise. Every other operator (MEAN, RESHAPE,
  LOGISTIC, ...) always runs the reference kernel, even where ESP-NN has a function for it (mean, relu6,
  hard_swish): no wrapper calls them.
* ESP-NN picks the implementation per chip in ``include/esp_nn.h``: ``esp_nn_esp32s3.h`` (SIMD assembly),
  ``esp_nn_esp32p4.h`` (PIE), and ``esp_nn_generic_opt.h`` for every other chip (esp32, esp32c3), where only
  conv, depthwise conv and softmax have an optimized C version and the rest are ``*_ansi`` plain C. Inside
  a chip's function, some shapes drop to plain C again (e.g. grouped conv on esp32s3/esp32p4).

Rules are data (:data:`RULES`, one row per operator and chip), pinned by ``tests/test_espnn.py``. A new
ESP-NN release needs a re-read of those files and a new pin; the table says what it was read from.

Example:
    >>> from pytest_tinyml.espnn import KERNELS
    >>> KERNELS["esp32s3"]["FULLY_CONNECTED"]
    'esp_nn_fully_connected_s8_esp32s3'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_tinyml.board.identity import chip_name
from pytest_tinyml.errors import ConfigError

__all__ = ["CHIPS", "KNOWN_BUGS", "SCRATCH_CHIPS", "SOURCES", "EspNNPlan", "OpPath", "assert_esp_nn_fast_path",
           "conv_scratch_bytes", "depthwise_scratch_bytes", "esp_nn_paths", "scratch_chip", "softmax_scratch_bytes"]

# Where the rules come from: repository, the version read, and the commit.
SOURCES = {
    "esp-nn": {"repo": "espressif/esp-nn", "version": "1.2.3 (idf_component.yml; git v1.2.0-46-gd45b843)",
               "commit": "d45b843ca5f873ca9d0706ab0e7f14eafd132e98"},
    "esp-tflite-micro": {"repo": "espressif/esp-tflite-micro", "version": "1.4.0 (idf_component.yml; git v1.3.8-11-g99f49e1)",
                         "commit": "99f49e1498b0984f4db54d9bf3938aceb99ad422"},
}
CHIPS = ("esp32", "esp32s3", "esp32c3", "esp32p4")

OPTIMIZED = "esp-nn optimized"
PLAIN_C = "esp-nn plain C"
REFERENCE = "tflm reference"

# The ESP-NN function each wrapped op calls, per chip, after esp_nn.h's per-chip #defines
# (esp-nn include/esp_nn_esp32s3.h, esp_nn_esp32p4.h, esp_nn_generic_opt.h). A name ending in _ansi is
# ESP-NN's plain C code: no faster than the reference kernel.
_GENERIC = {
    "CONV_2D": "esp_nn_conv_s8_opt",
    "DEPTHWISE_CONV_2D": "esp_nn_depthwise_conv_s8_opt",
    "FULLY_CONNECTED": "esp_nn_fully_connected_s8_ansi",
    "FULLY_CONNECTED/per-channel": "esp_nn_fully_connected_per_ch_s8_ansi",
    "ADD": "esp_nn_add_elementwise_s8_ansi",
    "MUL": "esp_nn_mul_elementwise_s8_ansi",
    "AVERAGE_POOL_2D": "esp_nn_avg_pool_s8_ansi",
    "MAX_POOL_2D": "esp_nn_max_pool_s8_ansi",
    "SOFTMAX": "esp_nn_softmax_s8_opt",
}


def _chip_kernels(suffix: str) -> dict:
    return {
        "CONV_2D": f"esp_nn_conv_s8_{suffix}",
        "DEPTHWISE_CONV_2D": f"esp_nn_depthwise_conv_s8_{suffix}",
        "FULLY_CONNECTED": f"esp_nn_fully_connected_s8_{suffix}",
        "FULLY_CONNECTED/per-channel": f"esp_nn_fully_connected_per_ch_s8_{suffix}",
        "ADD": f"esp_nn_add_elementwise_s8_{suffix}",
        "MUL": f"esp_nn_mul_elementwise_s8_{suffix}",
        "AVERAGE_POOL_2D": f"esp_nn_avg_pool_s8_{suffix}",
        "MAX_POOL_2D": f"esp_nn_max_pool_s8_{suffix}",
        "SOFTMAX": f"esp_nn_softmax_s8_{suffix}",
    }


KERNELS = {"esp32": _GENERIC, "esp32c3": _GENERIC, "esp32s3": _chip_kernels("esp32s3"),
           "esp32p4": _chip_kernels("esp32p4")}

# The wrapper's conditions (esp-tflite-micro kernels/esp_nn/*.cc): when does the op call ESP-NN at all.
RULES = {
    "CONV_2D": "conv.cc: int8 input with int8 weights and dilation 1x1 -> esp_nn_conv_s8; int4 weights, int16 or "
               "float input, or dilation -> reference ConvPerChannel",
    "DEPTHWISE_CONV_2D": "depthwise_conv.cc: int8 input with int8 weights and dilation 1x1 -> esp_nn_depthwise_conv_s8; "
                         "otherwise reference",
    "FULLY_CONNECTED": "fully_connected.cc: int8 input with int8 weights -> esp_nn_fully_connected_s8 (per-tensor) or "
                       "esp_nn_fully_connected_per_ch_s8 (per-channel); int4 weights, int16 or float -> reference",
    "ADD": "add.cc: int8 without broadcast -> esp_nn_add_elementwise_s8; broadcast (BroadcastAdd4DSlow), int16, "
           "int32 or float -> reference",
    "MUL": "mul.cc: int8 without broadcast -> esp_nn_mul_elementwise_s8; broadcast or other types -> reference",
    "AVERAGE_POOL_2D": "pooling.cc: int8 with channels % 4 == 0 -> esp_nn_avg_pool_s8; other channel counts -> "
                       "esp_nn_avg_pool_s8_ansi; other types -> reference",
    "MAX_POOL_2D": "pooling.cc: int8 with channels % 4 == 0 -> esp_nn_max_pool_s8; other channel counts -> "
                   "esp_nn_max_pool_s8_ansi; other types -> reference",
    "SOFTMAX": "softmax.cc: int8 in, int8 out -> esp_nn_softmax_s8; int8 -> int16 and int16 -> reference",
}

# Open bugs in ESP-NN's issue tracker, matched on the shape that triggers them.
KNOWN_BUGS = {
    "esp-nn#34": "per-channel FULLY_CONNECTED on esp32s3 with an output width not a multiple of 8 gives "
                 "memory-layout-dependent wrong results (reported with 2 outputs; "
                 "https://github.com/espressif/esp-nn/issues/34, open when read)",
}


@dataclass(frozen=True)
class OpPath:
    """Where one operator runs on one chip."""

    index: int
    op: str
    chip: str
    path: str  # OPTIMIZED, PLAIN_C or REFERENCE
    kernel: str  # the function that runs
    reason: str  # why (the condition that decided)
    bugs: tuple = ()  # keys of KNOWN_BUGS this op's shape hits

    @property
    def fast(self) -> bool:
        return self.path == OPTIMIZED and not self.bugs


@dataclass(frozen=True)
class EspNNPlan:
    """Every operator's path on one chip. ``summary()`` is a table a user reads."""

    model: str
    chip: str
    ops: list = field(default_factory=list)

    @property
    def slow(self) -> list:
        """Ops wrapped by esp-tflite-micro (or MAC-heavy) that do not get an optimized kernel."""
        return [op for op in self.ops if op.path != OPTIMIZED and op.op in RULES]

    @property
    def bugs(self) -> list:
        return [op for op in self.ops if op.bugs]

    def summary(self) -> str:
        from pytest_tinyml._failure import table

        rows = [[str(o.index), o.op, o.path + (" (BUG " + ", ".join(o.bugs) + ")" if o.bugs else ""), o.kernel,
                 o.reason] for o in self.ops]
        head = (f"ESP-NN paths of {self.model!r} on {self.chip} (rules from esp-nn {SOURCES['esp-nn']['version']}, "
                f"esp-tflite-micro {SOURCES['esp-tflite-micro']['version']})")
        return "\n".join([head, *table(["#", "op", "path", "kernel", "why"], rows)])


# ---------------------------------------------------------------------------------------------- scratch
# The scratch buffer each ESP-NN wrapper asks TFLite Micro's arena for in Prepare (esp-tflite-micro
# kernels/esp_nn/{conv,depthwise_conv,softmax}.cc call esp-nn's esp_nn_get_*_scratch_size once per op and
# request the result when it is above 0). The sizes below restate esp-nn's own size functions: the generic
# C versions (esp32, esp32c3: esp_nn_conv_opt.c, esp_nn_depthwise_conv_opt.c, esp_nn_softmax_opt.c) and the
# esp32s3 ones (esp_nn_conv_esp32s3.c, esp_nn_depthwise_conv_s8_esp32s3.c, esp_nn_softmax_s8_esp32s3.c).
# ADD, MUL, pooling and FULLY_CONNECTED request none. esp32p4's own functions were not read: no rule.
SCRATCH_CHIPS = ("esp32", "esp32s3", "esp32c3")


def _up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def scratch_chip(target) -> str:
    """``target`` as a chip name the scratch-size rules know, or a ConfigError.

    Example:
        >>> scratch_chip("ESP32-S3")
        'esp32s3'
    """
    chip = chip_name(target)
    if chip not in SCRATCH_CHIPS:
        raise ConfigError(f"no ESP-NN scratch-size rules for {target!r}: they were read for {', '.join(SCRATCH_CHIPS)}; "
                          "pass one of those, or target=None for TFLite Micro's reference kernels")
    return chip


def conv_scratch_bytes(chip: str, *, input_hwc, filter_hw, output_hwc, stride_hw, padding_hw) -> int:
    """Bytes of the scratch buffer ESP-NN's int8 CONV_2D asks for on ``chip`` (0: no request).

    Shapes are (height, width[, channels]); ``padding_hw`` is TFLite Micro's computed leading padding
    (``OpDataConv.padding``), not the SAME/VALID flag. The generic C kernel (esp32, esp32c3) needs none;
    esp32s3 stages the filter (channels rounded up for its SIMD loads), the padded input, and per-channel
    sums, by path: 1x1 stride 1 unpadded, narrow filter rows through im2col, or the general tiled path.

    Example:
        >>> conv_scratch_bytes("esp32s3", input_hwc=(49, 10, 1), filter_hw=(10, 4), output_hwc=(25, 5, 64),
        ...                    stride_hw=(2, 2), padding_hw=(4, 1))
        3472
        >>> conv_scratch_bytes("esp32", input_hwc=(49, 10, 1), filter_hw=(10, 4), output_hwc=(25, 5, 64),
        ...                    stride_hw=(2, 2), padding_hw=(4, 1))
        0
    """
    if scratch_chip(chip) != "esp32s3":
        return 0
    (in_h, in_w, in_c), (f_h, f_w), (out_h, out_w, out_c) = input_hwc, filter_hw, output_hwc
    (s_h, s_w), (p_h, p_w) = stride_hw, padding_hw
    margin = 64  # 16 for alignment, 48 the assembly may read before and after its buffers
    if (f_h, f_w) == (1, 1) and (p_h, p_w) == (0, 0) and (s_h, s_w) == (1, 1):
        channels8 = _up(in_c, 8)
        transpose = 0 if in_h * in_w < 8 else 16 * channels8
        repacked_input = in_h * in_w * channels8 if in_c % 8 else 0
        return repacked_input + channels8 * out_c + transpose + margin
    row, window = f_w * in_c, f_w * f_h * in_c
    if row < 16 <= window:  # im2col: per-channel sums, the filter copied 16-aligned, one window
        window16 = _up(window, 16)
        return out_c * 4 + 16 + out_c * window16 + 16 + window16 + margin
    padded_input = (in_w + 2 * p_w) * (in_h + 2 * p_h) * in_c if (p_h, p_w) != (0, 0) else 0
    filt = f_w * f_h * _up(in_c, 16) * out_c
    filter_rows = _up(row, 16) * f_h * out_c
    right = max(0, out_w * s_w + f_w - 1 - in_w)
    bottom = max(0, out_h * s_h + f_h - 1 - in_h)
    border = (in_w + right) * (in_h + bottom) * in_c if right or bottom else 0
    return padded_input + filt + filter_rows + border + margin + out_c * 4


def depthwise_scratch_bytes(chip: str, *, input_hwc, filter_hw, output_hw, multiplier, stride_hw, padding_hw) -> int:
    """Bytes of the scratch buffer ESP-NN's int8 DEPTHWISE_CONV_2D asks for on ``chip`` (0: no request).

    The generic C kernel needs none. esp32s3 picks by channel multiplier, channel count and filter size: the
    3x3 kernels over 16k channels pad the input (tiled above 40 KiB), 8/12-channel variants widen to 16-bit
    copies, other filters keep 16-bit copies of filter and input (tiled above 48 KiB), unaligned channel
    counts pad to 8; anything else takes a fixed 32 bytes.

    Example:
        >>> depthwise_scratch_bytes("esp32s3", input_hwc=(25, 5, 64), filter_hw=(3, 3), output_hw=(25, 5),
        ...                         multiplier=1, stride_hw=(1, 1), padding_hw=(1, 1))
        12688
    """
    if scratch_chip(chip) != "esp32s3":
        return 0
    (in_h, in_w, ch), (f_h, f_w), (out_h, out_w) = input_hwc, filter_hw, output_hw
    (s_h, s_w), (p_h, p_w) = stride_hw, padding_hw
    filt = f_w * f_h * ch * multiplier
    if multiplier == 1 and ch % 8 == 0:
        if (f_h, f_w) == (3, 3) and ch % 16 == 0:
            if p_w or p_h:
                extra_w, extra_h = 2 * p_w, 2 * p_h
            else:
                extra_w, extra_h = out_w * s_w + f_w - 1 - in_w, out_h * s_h + f_h - 1 - in_h
            if not (extra_w or extra_h):
                return filt + 16
            full = (in_w + extra_w) * (in_h + extra_h) * ch
            if full <= 40 * 1024:
                return filt + full + 16
            return filt + (in_w + extra_w) * f_h * ch + 16  # a strip of filter-height rows
        if (f_h, f_w) == (3, 3) and ch >= 12:  # 8k but not 16k channels: padded to 16 and compacted back
            ch16 = _up(ch, 16)
            extra_w = 2 * p_w + max(0, out_w * s_w + 2 - in_w)
            extra_h = 2 * p_h + max(0, out_h * s_h + 2 - in_h)
            return 9 * ch16 + (in_w + extra_w) * (in_h + extra_h) * ch16 + out_w * out_h * ch16 + 64
        if (f_h, f_w) == (3, 3):  # 8 channels: 16-bit copies of filter and input
            return 2 * (filt + in_w * in_h * ch) + 32
        both16 = 2 * (filt + in_w * in_h * ch)
        if both16 <= 48 * 1024:
            return both16 + 32
        return 2 * filt + 2 * in_w * f_h * ch + 32  # tiled: filter-height rows of 16-bit input
    if multiplier == 1 and ch > 3:  # channels padded to 8, each region 16-aligned, then bias/shift/mult
        ch8 = _up(ch, 8)
        input_at = _up(f_w * f_h * ch8 * 2, 16)
        output_at = _up(input_at + in_w * in_h * ch8 * 2, 16)
        bias_at = _up(output_at + out_w * out_h * ch8, 16)
        return bias_at + 3 * 4 * ch8 + 16
    if multiplier % 4 == 0:
        return 2 * (filt + in_w * in_h * ch) + 32
    return 32


def softmax_scratch_bytes(chip: str, *, width: int) -> int:
    """Bytes ESP-NN's int8 SOFTMAX asks for: 4 per element of a row (both the generic and the esp32s3 code).

    esp-tflite-micro passes ``dims[1]`` of the input as the width, so a ``(1, 10)`` input asks for 40 bytes
    and a ``(1, 1, 1, 10)`` one for 4.

    Example:
        >>> softmax_scratch_bytes("esp32c3", width=10)
        40
    """
    scratch_chip(chip)
    return 4 * width


# ---------------------------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class _Op:
    index: int
    op: str
    inputs: list  # [(shape, dtype, scales count) or None]
    outputs: list
    options: dict


def _graph_ops(artifact) -> list:
    """The first subgraph's ops with tensor shapes, dtypes, scale counts and the options the rules need."""
    from pytest_tinyml.tflite import schema

    fb = schema.schema()
    model = schema.read_model(artifact.content, name=artifact.name)
    op_names = schema.enum_names(fb.BuiltinOperator)
    dtype_names = schema.dtype_names()
    ops = []
    with schema.guarded(artifact.name, "the operators"):
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            codes.append(op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
        graph = model.Subgraphs(0)

        def tensor(index: int):
            if index < 0:
                return None
            t = graph.Tensors(index)
            quant = t.Quantization()
            scales = quant.ScaleLength() if quant is not None else 0
            return (tuple(int(t.Shape(k)) for k in range(t.ShapeLength())), dtype_names.get(t.Type(), "?"), scales)

        for k in range(graph.OperatorsLength()):
            graph_op = graph.Operators(k)
            name = codes[graph_op.OpcodeIndex()]
            options = {}
            table = graph_op.BuiltinOptions()
            kind = {"CONV_2D": fb.Conv2DOptions, "DEPTHWISE_CONV_2D": fb.DepthwiseConv2DOptions}.get(name)
            if table is not None and kind is not None:
                parsed = kind()
                parsed.Init(table.Bytes, table.Pos)
                options = {"dilation": (int(parsed.DilationHFactor()), int(parsed.DilationWFactor())),
                           "stride": (int(parsed.StrideH()), int(parsed.StrideW()))}
                if name == "DEPTHWISE_CONV_2D":
                    options["depth_multiplier"] = int(parsed.DepthMultiplier())
            ops.append(_Op(k, name, [tensor(int(graph_op.Inputs(j))) for j in range(graph_op.InputsLength())],
                           [tensor(int(graph_op.Outputs(j))) for j in range(graph_op.OutputsLength())], options))
    return ops


# ---------------------------------------------------------------------------------------------- rules


def _path(op: _Op, chip: str) -> OpPath:
    """Apply the wrapper rule (esp-tflite-micro) then the chip's own dispatch (esp-nn) to one op."""
    name = op.op
    kernels = KERNELS[chip]

    def result(path, kernel, reason, bugs=()):
        return OpPath(op.index, name, chip, path, kernel, reason, tuple(bugs))

    if name not in RULES:
        return result(REFERENCE, f"tflm {name.lower()}", "esp-tflite-micro has no ESP-NN wrapper for this op")
    first = op.inputs[0] if op.inputs else None
    weights = op.inputs[1] if len(op.inputs) > 1 else None
    out = op.outputs[0] if op.outputs else None
    in_type = first[1] if first else "?"
    reference = f"tflm reference {name.lower()}"
    if in_type != "int8":
        return result(REFERENCE, reference, f"{in_type} input: ESP-NN kernels are int8 only")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        if weights is None or weights[1] != "int8":
            return result(REFERENCE, reference, f"{weights[1] if weights else 'no'} weights: ESP-NN needs int8")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if op.options.get("dilation", (1, 1)) != (1, 1):
            return result(REFERENCE, reference, f"dilation {op.options['dilation']}: ESP-NN handles 1x1 only")
        kernel = kernels[name]
        if kernel.endswith("_opt"):
            return result(OPTIMIZED, kernel, "generic optimized C (no SIMD kernel for this chip)")
        if name == "CONV_2D" and weights[0][-1] != first[0][-1]:
            return result(PLAIN_C, "esp_nn_conv_s8_ansi",
                          f"grouped conv ({first[0][-1]} input channels, {weights[0][-1]} per filter): plain C")
        if name == "DEPTHWISE_CONV_2D":
            channels, multiplier = first[0][-1], op.options.get("depth_multiplier", 1)
            fast = ((multiplier == 1 and channels > 3) or multiplier % 4 == 0) if chip == "esp32s3" else \
                (multiplier == 1 and channels >= 8)
            if not fast:
                need = "multiplier 1 with > 3 channels, or a multiplier of 4k" if chip == "esp32s3" else \
                    "multiplier 1 with >= 8 channels"
                return result(OPTIMIZED, "esp_nn_depthwise_conv_s8_opt",
                              f"{channels} channels x multiplier {multiplier}: generic C, the SIMD path needs {need}")
        return result(OPTIMIZED, kernel, "int8, dilation 1")
    if name == "FULLY_CONNECTED":
        per_channel = weights[2] > 1
        key = "FULLY_CONNECTED/per-channel" if per_channel else "FULLY_CONNECTED"
        kernel = kernels[key]
        width = out[0][-1] if out and out[0] else 0
        bugs = ["esp-nn#34"] if chip == "esp32s3" and per_channel and width % 8 else []
        label = "per-channel" if per_channel else "per-tensor"
        if kernel.endswith("_ansi"):
            return result(PLAIN_C, kernel, f"{label} int8: {chip} has no optimized FC (esp_nn_generic_opt.h)", bugs)
        return result(OPTIMIZED, kernel, f"{label} int8, {width} outputs", bugs)
    if name in ("ADD", "MUL"):
        shapes = [t[0] for t in op.inputs[:2] if t]
        if len(shapes) == 2 and shapes[0] != shapes[1]:
            return result(REFERENCE, reference, f"broadcast {shapes[0]} with {shapes[1]}: reference Broadcast kernel")
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        channels = first[0][-1] if first[0] else 0
        if channels % 4:
            return result(PLAIN_C, kernels[name].rsplit("_", 1)[0] + "_ansi",
                          f"{channels} channels, not a multiple of 4: plain C")
    if name == "SOFTMAX" and (out is None or out[1] != "int8"):
        return result(REFERENCE, reference, f"int8 -> {out[1] if out else '?'}: reference softmax")
    kernel = kernels[name]
    if kernel.endswith("_ansi"):
        return result(PLAIN_C, kernel, f"{chip} has no optimized version (esp_nn_generic_opt.h)")
    return result(OPTIMIZED, kernel, "int8" + (", same shapes" if name in ("ADD", "MUL") else ""))


def esp_nn_paths(model, target: str = "esp32s3") -> EspNNPlan:
    """Per operator, the kernel an esp-tflite-micro firmware runs on ``target`` and why.

    ``model`` is anything :func:`pytest_tinyml.runtime.load` takes (artifact, bytes, ``.tflite`` path).

    Example:
        >>> print(esp_nn_paths("mlp_int8.tflite", target="esp32s3").summary())  # doctest: +SKIP
    """
    chip = _chip(target)
    from pytest_tinyml.runtime import load

    artifact = load(model)
    return EspNNPlan(artifact.name, chip, [_path(op, chip) for op in _graph_ops(artifact)])


def _chip(target) -> str:
    chip = chip_name(target)
    if chip not in CHIPS:
        raise ConfigError(f"unknown ESP-NN target {target!r}: choose one of {', '.join(CHIPS)}")
    return chip


def assert_esp_nn_fast_path(model, *, target: str = "esp32s3", allow: tuple = ()) -> EspNNPlan:
    """Fail when an operator esp-tflite-micro could accelerate runs plain C or the reference kernel on
    ``target``, or when an operator's shape hits a known ESP-NN bug (:data:`KNOWN_BUGS`, never allowed).

    ``allow``: op names (e.g. ``("SOFTMAX",)``) that may run slow. Ops without an ESP-NN wrapper (MEAN,
    RESHAPE, ...) are listed in the plan but never fail. A Keras model is not accepted: give the artifact
    the firmware runs.

    Example:
        >>> assert_esp_nn_fast_path(int8_artifact, target="esp32s3")  # doctest: +SKIP
    """
    __tracebackhide__ = True
    from pytest_tinyml import _model_io, report
    from pytest_tinyml._failure import fail

    if isinstance(allow, str):
        allow = (allow,)
    unknown = sorted(set(allow) - set(RULES))
    if unknown:
        raise ConfigError(f"allow= names ops ESP-NN does not wrap: {unknown}; choose from {sorted(RULES)}")
    resolved = _model_io.resolve(model, "model")
    if resolved.kind != "tflite":
        raise ConfigError(f"assert_esp_nn_fast_path checks the TFLite model the firmware runs, got "
                          f"{resolved.describe()}: convert it first (tinyml.convert(model, 'int8', ...))")
    plan = esp_nn_paths(resolved.artifact, target)
    slow = [o for o in plan.slow if o.op not in allow]
    report.record(model=resolved.name, recipe=resolved.recipe, where="host",
                  esp_nn_slow_ops=len(plan.slow), esp_nn_bugs=len(plan.bugs))
    if slow or plan.bugs:
        rows = [[str(o.index), o.op, o.path, o.kernel, o.reason] for o in slow]
        rows += [[str(o.index), o.op, "BUG " + ", ".join(o.bugs), o.kernel, o.reason] for o in plan.bugs]
        hints = []
        if plan.bugs:
            hints += [f"{key}: {KNOWN_BUGS[key]}" for key in sorted({b for o in plan.bugs for b in o.bugs})]
            hints.append("for esp-nn#34: make the Dense layer's width a multiple of 8, or convert with "
                         "per_channel=False (per-tensor FC does not hit it)")
        if slow:
            hints.append("reshape the slow layers to what the rule in the 'why' column asks, or pass "
                         f"allow=({', '.join(repr(o) for o in sorted({o.op for o in slow}))},) if they are cheap")
        fail(f"{len(slow)} op(s) miss ESP-NN's fast path on {plan.chip}" + (f", {len(plan.bugs)} hit a known ESP-NN bug"
                                                                               if plan.bugs else ""),
             [f"  model: {resolved.describe()}",
              f"  rules: esp-nn {SOURCES['esp-nn']['version']}, esp-tflite-micro {SOURCES['esp-tflite-micro']['version']}"],
             ["#", "op", "path", "kernel", "why"], rows, hints)
    return plan
