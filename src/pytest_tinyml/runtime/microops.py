"""Which operators TFLite Micro can run, asked of the real runtime, and their op-resolver names.

The ``tflite-micro`` Python interpreter registers every kernel its build has (the Python op resolver adds
them all), but exposes no list of them. :func:`supported` therefore asks the runtime: for each operator it
builds a one-operator probe model and loads it. If the resolver lacks the operator, TFLite Micro says
``Didn't find op for builtin opcode 'X'`` (``Failed to get registration from op code X`` for custom ops)
while it looks registrations up, before any kernel runs. Any other outcome (the kernel's ``Prepare``
rejecting the empty probe, or even crashing on it) means the registration was found. Probes run in a child
process (see :mod:`pytest_tinyml.runtime.isolation`); each answer is kept per operator and tflite-micro
version, for the process and in the cache directory (:mod:`pytest_tinyml.memo`).

:func:`resolver_method` names the ``tflite::MicroMutableOpResolver`` method that registers an operator in
firmware (``FULLY_CONNECTED`` -> ``AddFullyConnected``).

Example:
    >>> resolver_method("DEPTHWISE_CONV_2D")
    'AddDepthwiseConv2D'
    >>> supported(["FULLY_CONNECTED", "TOPK_V2"])  # doctest: +SKIP
    {'FULLY_CONNECTED': True, 'TOPK_V2': False}
"""

from __future__ import annotations

import threading

from pytest_tinyml import memo
from pytest_tinyml.errors import ModelLoadError
from pytest_tinyml.runtime import isolation

PROBE_PROCEDURE = 1  # bump when probe_model()/probe_here() change: kept answers of the old probe no longer count

# Methods of tflite::MicroMutableOpResolver (tensorflow/lite/micro/micro_mutable_op_resolver.h) whose names
# do not follow from the operator name by the CamelCase rule of resolver_method().
_METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}
# Custom operators the resolver can register, by custom code.
_CUSTOM_METHODS = {
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "TFLM_DECODE": "AddDecode",
    "ethos-u": "AddEthosU",
}
# Every builtin Add...() of MicroMutableOpResolver at the tflite-micro version pinned in pyproject.toml; an
# operator whose method is missing here has no resolver method in firmware either.
RESOLVER_BUILTINS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
    BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE
    DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE EMBEDDING_LOOKUP ELU EQUAL EXP EXPAND_DIMS FILL
    FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF
    L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC
    LOG_SOFTMAX MAXIMUM MAX_POOL_2D MIRROR_PAD MEAN MINIMUM MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE
    READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V
    SQUEEZE SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE_CONV TRANSPOSE UNPACK
    UNIDIRECTIONAL_SEQUENCE_LSTM VAR_HANDLE WHILE ZEROS_LIKE""".split()
)
_MISSING_MARKERS = ("Didn't find op for builtin opcode", "Failed to get registration from op code")

_lock = threading.Lock()
_known: dict[str, bool] = {}


def builtin_codes() -> dict[str, int]:
    """``{"ADD": 0, "AVERAGE_POOL_2D": 1, ...}`` from the TFLite schema."""
    from pytest_tinyml.tflite.schema import enum_names, schema

    return {name: code for code, name in enum_names(schema().BuiltinOperator).items()}


def resolver_method(op: str) -> str | None:
    """The ``MicroMutableOpResolver`` method for operator ``op`` (a builtin name or a custom code), or None.

    Example:
        >>> resolver_method("CONV_2D"), resolver_method("TOPK_V2")
        ('AddConv2D', None)
    """
    if op in _CUSTOM_METHODS:
        return _CUSTOM_METHODS[op]
    if op.startswith("Signal") and op[6:].isalnum():  # the audio front-end custom ops: SignalRfft -> AddRfft
        return "Add" + op[6:]
    if op not in RESOLVER_BUILTINS:
        return None
    if op in _METHOD_EXCEPTIONS:
        return _METHOD_EXCEPTIONS[op]
    parts = []
    for token in op.split("_"):
        # "2D" stays upper case (Conv2D, MaxPool2D); words are capitalized (Relu6, SplitV, L2Normalization).
        parts.append(token if token[0].isdigit() else token.capitalize())
    return "Add" + "".join(parts)


def probe_model(op: str) -> bytes:
    """A flatbuffer with one operator ``op`` (builtin name or custom code), no tensors. Only meant for
    checking whether the op resolver knows ``op``; it cannot run.
    """
    import flatbuffers

    from pytest_tinyml.tflite.schema import schema

    fb = schema()
    codes = builtin_codes()
    opcode = fb.OperatorCodeT()
    if op in codes:
        opcode.builtinCode = codes[op]
        opcode.deprecatedBuiltinCode = min(codes[op], 127)  # the old int8 field saturates at 127
    else:
        opcode.builtinCode = opcode.deprecatedBuiltinCode = codes["CUSTOM"]
        opcode.customCode = op
    opcode.version = 1
    operator = fb.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [], []
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = [], [], [], [operator]
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [opcode], [graph], [fb.BufferT()]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def probe_here(ops: list[str], known: dict, log) -> dict[str, bool]:
    """Child side of :func:`supported`: probe each op in this process, journaling progress."""
    from pytest_tinyml.runtime import cstdio
    from pytest_tinyml.runtime.tflm import micro_runtime

    runtime = micro_runtime()
    results = dict(known)
    for op in ops:
        if op in results:
            continue
        log(f"try {op}")
        with cstdio.capture() as captured:
            try:
                runtime.Interpreter.from_bytes(probe_model(op), arena_size=64 * 1024)
            except Exception:  # expected: the empty probe cannot be prepared
                pass
        results[op] = not any(marker in captured.text for marker in _MISSING_MARKERS)
        log(f"{'ok' if results[op] else 'missing'} {op}")
    return results


def supported(ops) -> dict[str, bool]:
    """``{op: True/False}``: whether the TFLite Micro runtime's op resolver has each operator.

    Asks the real runtime (one child process for all unknown ops; memoized).

    Example:
        >>> supported(["FULLY_CONNECTED"])  # doctest: +SKIP
        {'FULLY_CONNECTED': True}
    """
    ops = list(dict.fromkeys(ops))
    with _lock:
        todo = [op for op in ops if op not in _known]
    for op in list(todo):  # answers kept by an earlier run (pytest_tinyml.memo): no child for them
        found, ok = memo.lookup("tflm-op", _fact_parts(op))
        if found:
            with _lock:
                _known[op] = bool(ok)
            todo.remove(op)
    known: dict[str, bool] = {}
    for _attempt in range(len(todo) + 1):
        if not todo:
            break
        journal: list[str] = []
        try:
            known = isolation.run_task(
                "probe_ops", {"codes": todo, "known": known}, model_name="op probe", engine="tflm",
                what="probing operators with",
                journal=journal,
            )
            break
        except ModelLoadError:
            raise
        except Exception:  # the child died on a probe: its kernel was found (lookup comes first)
            pending = None
            for line in journal:
                kind, _, op = line.partition(" ")
                if kind == "try":
                    pending = op
                else:
                    known[op] = kind == "ok"
                    pending = None
            if pending is None:
                raise
            known[pending] = True
    for op in todo:
        if op in known:
            memo.store("tflm-op", _fact_parts(op), bool(known[op]))
    with _lock:
        _known.update(known)
        return {op: _known[op] for op in ops}


def _fact_parts(op: str) -> dict:
    return {"op": op, "procedure": PROBE_PROCEDURE, "versions": memo.versions("tflite-micro")}


def registered_builtins() -> list[str]:
    """Names of every builtin operator the TFLite Micro runtime here can resolve (probes all of them).

    Example:
        >>> "FULLY_CONNECTED" in registered_builtins()  # doctest: +SKIP
        True
    """
    names = [name for name in builtin_codes() if name not in ("CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES")]
    result = supported(names)
    return sorted(name for name, ok in result.items() if ok)
