"""LiteRT (``ai_edge_litert``) on the host, evaluating a whole dataset in batches.

Tutorials evaluate a TFLite model with a Python loop of ``set_tensor``/``invoke``/``get_tensor`` per sample,
paying the interpreter's per-call overhead thousands of times. :class:`LiteRTRunner` resizes the batch
dimension of every input to the number of samples (in chunks of ``batch_size``) and runs one ``invoke()`` per
chunk. It falls back to one sample at a time only when the model pins its batch to 1: a ``shape_signature``
whose first dimension is not -1, a resize or allocation the interpreter refuses, or outputs whose first
dimension does not follow the batch.

Inputs are quantized and outputs dequantized with each tensor's own scale and zero point.

Example:
    >>> runner = LiteRTRunner(artifact)  # doctest: +SKIP
    >>> runner.predict(x_test).shape  # doctest: +SKIP
    (360, 10)
"""

from __future__ import annotations

from pytest_tinyml.errors import ModelLoadError
from pytest_tinyml.runtime import isolation
from pytest_tinyml.runtime._runner import Runner

DEFAULT_BATCH = 1024


def new_interpreter(content: bytes, name: str, *, num_threads: int | None = None, reference_kernels: bool = False):
    """An allocated LiteRT interpreter for ``content`` (bytes; never a path). No isolation: see
    :mod:`pytest_tinyml.runtime.isolation`.

    ``reference_kernels=True`` runs LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``), which TFLite
    Micro's kernels are ports of. The default (XNNPACK, then the optimized builtins) rounds differently: up to
    4 LSB seen on int8 MEAN (a Conv1D model) and 5 LSB on a ResNet-8 with the optimized builtins alone, where
    the reference kernels agree with TFLite Micro bit for bit.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    try:
        interpreter = Interpreter(model_content=bytes(content), num_threads=num_threads,
                                  experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"LiteRT refused model {name!r}: {exc}\nHint: the file is not a valid TFLite model or uses ops "
            "this LiteRT build lacks; re-export it with pytest_tinyml.convert()."
        ) from None
    return interpreter


def vet_invoke(interpreter) -> None:
    """What :class:`LiteRTRunner` will do, done once in a child for unknown models: invoke on zeros at
    batch 1, then (for a free batch dimension) resize to a batch of 3 and invoke on random values.
    """
    import numpy as np

    from pytest_tinyml.runtime.batching import random_like

    details = interpreter.get_input_details()
    for d in details:
        interpreter.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interpreter.invoke()
    if details and all(len(d["shape_signature"]) and d["shape_signature"][0] == -1 for d in details):
        for d in details:
            interpreter.resize_tensor_input(d["index"], [3, *d["shape"][1:]], strict=True)
        interpreter.allocate_tensors()
        for d in interpreter.get_input_details():
            interpreter.set_tensor(d["index"], random_like(d["shape"], d["dtype"]))
        interpreter.invoke()


def batch_free_copy(content: bytes, *, name: str = "<bytes>") -> bytes | None:
    """For host evaluation of a graph traced at batch 1: a copy whose RESHAPE targets say -1 for the batch.

    TFLite Micro recipes are converted at batch 1 with static shapes (a Keras ``Flatten`` is one RESHAPE to
    ``[1, n]``). That graph cannot be resized to a batch of samples as is: its RESHAPE constants pin the batch
    to 1. This copy changes only those constants (first element 1 -> -1), which at batch 1 mean the same; the
    artifact itself is untouched. None when the graph has nothing such a copy could help (no batch-1 input).

    Example:
        >>> batch_free_copy(int8_batch1.content) != int8_batch1.content      # doctest: +SKIP
        True
    """
    import struct

    from pytest_tinyml.tflite import schema

    fb = schema.schema()
    data = bytearray(content)
    model = schema.read_model(bytes(data), name=name)
    op_names = schema.enum_names(fb.BuiltinOperator)
    with schema.guarded(name, "the reshape constants"):
        codes = [op_names.get(max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()))
                 for i in range(model.OperatorCodesLength())]
        graph = model.Subgraphs(0)
        if graph.InputsLength() == 0 or any(
            graph.Tensors(graph.Inputs(i)).ShapeLength() == 0 or graph.Tensors(graph.Inputs(i)).Shape(0) != 1
            for i in range(graph.InputsLength())
        ):
            return None
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            if codes[op.OpcodeIndex()] != "RESHAPE" or op.InputsLength() < 2 or op.Inputs(1) < 0:
                continue
            tensor = graph.Tensors(op.Inputs(1))
            buffer = model.Buffers(tensor.Buffer())
            if tensor.Type() != fb.TensorType.INT32 or buffer.DataLength() < 4:
                continue
            start = buffer._tab.Vector(buffer._tab.Offset(4))  # the buffer's data vector (field 4: data)
            values = struct.unpack_from(f"<{buffer.DataLength() // 4}i", data, start)
            if values[0] == 1 and -1 not in values:
                struct.pack_into("<i", data, start, -1)
    return bytes(data)


class LiteRTRunner(Runner):
    """Batched LiteRT evaluation of one model.

    ``reference_kernels=True`` uses LiteRT's reference kernels, for bit-level comparison with TFLite Micro.

    Example:
        >>> LiteRTRunner(artifact).predict_raw(x[:2]).dtype  # doctest: +SKIP
        dtype('int8')
    """

    engine = "litert"

    def __init__(self, artifact, *, batch_size: int = DEFAULT_BATCH, num_threads: int | None = None,
                 reference_kernels: bool = False) -> None:
        from pytest_tinyml.runtime.loader import load
        from pytest_tinyml.tflite.quant import TensorQuant

        self.artifact = load(artifact)
        isolation.vet(self.artifact, self.engine)
        self.batch_size = max(1, int(batch_size))
        self._options = {"num_threads": num_threads, "reference_kernels": reference_kernels}
        self._interpreter = new_interpreter(self.artifact.content, self.artifact.name, **self._options)
        input_details = self._interpreter.get_input_details()
        output_details = self._interpreter.get_output_details()
        self._input_index = [d["index"] for d in input_details]
        self._output_index = [d["index"] for d in output_details]
        self.inputs = [TensorQuant.from_details(d) for d in input_details]
        self.outputs = [TensorQuant.from_details(d) for d in output_details]
        self._batch = 1
        # Batchable if every input declares a free batch dimension (-1 in the shape signature), or, for a graph
        # traced at batch 1 (TFLite Micro recipes), through a copy whose RESHAPE targets follow the batch.
        self.batchable = all(
            len(d.get("shape_signature", ())) >= 1 and int(d["shape_signature"][0]) == -1 for d in input_details
        )
        self._static_batch = False
        self._checked = True
        if not self.batchable and input_details and all(int(d["shape"][0]) == 1 for d in input_details):
            copy = batch_free_copy(self.artifact.content, name=self.artifact.name)
            if copy is not None:
                self._interpreter = new_interpreter(copy, self.artifact.name, **self._options)
                self.batchable = self._static_batch = True
                self._checked = False  # the first batch is compared with sample-by-sample runs

    def _resize(self, batch: int) -> bool:
        """Resize all inputs to ``batch`` samples; False (and back to batch 1) if the model refuses."""
        if batch == self._batch:
            return True
        try:
            for index, spec in zip(self._input_index, self.inputs, strict=True):
                self._interpreter.resize_tensor_input(index, [batch, *spec.shape[1:]], strict=not self._static_batch)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self._restore()
            return False
        self._batch = batch
        return True

    def _restore(self) -> None:
        """Back to the artifact's own graph at batch 1 (a refused resize, or a batch-1 copy that disagreed)."""
        self._interpreter = new_interpreter(self.artifact.content, self.artifact.name, **self._options)
        self._batch = 1
        self._static_batch = False

    def _agrees(self, chunk: list, outputs: list) -> bool:
        """The batched copy gave, for the first samples, what the artifact gives them one at a time."""
        import numpy as np

        batched = [o.copy() for o in outputs]
        original = new_interpreter(self.artifact.content, self.artifact.name, **self._options)
        count = min(2, chunk[0].shape[0])
        rows: list[list] = []
        for i in range(count):
            for index, array in zip(self._input_index, chunk, strict=True):
                original.set_tensor(index, np.ascontiguousarray(array[i : i + 1]))
            original.invoke()
            rows.append([original.get_tensor(index).copy() for index in self._output_index])
        single = [np.concatenate([row[k] for row in rows], axis=0) for k in range(len(self._output_index))]
        for got, want in zip(batched, single, strict=True):
            got = got[:count]
            if got.shape != want.shape:
                return False
            exact = np.issubdtype(want.dtype, np.integer)
            if not (np.array_equal(got, want) if exact else np.allclose(got, want, rtol=1e-5, atol=1e-6)):
                return False
        return True

    def _invoke(self, arrays: list) -> list:
        import numpy as np

        for index, array in zip(self._input_index, arrays, strict=True):
            self._interpreter.set_tensor(index, np.ascontiguousarray(array))
        try:
            self._interpreter.invoke()
        except RuntimeError as exc:
            raise ModelLoadError(f"LiteRT failed to run model {self.artifact.name!r}: {exc}") from None
        return [self._interpreter.get_tensor(index) for index in self._output_index]

    def _per_sample(self, arrays: list) -> list:
        from pytest_tinyml.runtime.batching import stack_samples

        self._resize(1)
        count = arrays[0].shape[0]
        chunks = [[o.copy() for o in self._invoke([a[i : i + 1] for a in arrays])] for i in range(count)]
        return [stack_samples([c[k] for c in chunks]) for k in range(len(self.outputs))]

    def _run(self, x) -> list:
        import numpy as np

        from pytest_tinyml.runtime.batching import as_input_list, fit_batch

        name = self.artifact.name
        arrays = as_input_list(x, len(self.inputs), name)
        arrays = [spec.quantize(fit_batch(a, spec, name)) for a, spec in zip(arrays, self.inputs, strict=True)]
        count = arrays[0].shape[0]
        if count == 0:
            return [np.zeros((0,) + spec.shape[1:], spec.dtype) for spec in self.outputs]
        if not self.batchable or count == 1:
            return self._per_sample(arrays)
        pieces: list[list] = []
        for start in range(0, count, self.batch_size):
            chunk = [a[start : start + self.batch_size] for a in arrays]
            size = chunk[0].shape[0]
            if not self._resize(size):
                self.batchable = False
                return self._per_sample(arrays)
            outputs = self._invoke(chunk)
            if any(o.ndim == 0 or o.shape[0] != size for o in outputs) or (
                    not self._checked and not self._agrees(chunk, outputs)):
                # The graph hard-codes batch 1 somewhere (e.g. a constant reshape): never batch it again.
                self.batchable = False
                if self._static_batch:
                    self._restore()
                return self._per_sample(arrays)
            self._checked = True
            pieces.append([o.copy() for o in outputs])
        return [np.concatenate([p[k] for p in pieces], axis=0) for k in range(len(self.outputs))]
