"""What the LiteRT and TFLite Micro runners share: the public predict/invoke surface over their ``_run``."""

from __future__ import annotations


class Runner:
    """Base of :class:`~pytest_tinyml.runtime.litert.LiteRTRunner` and :class:`~pytest_tinyml.runtime.tflm.TFLMRunner`.

    Subclasses set ``self.outputs`` (tensor specs with ``dequantize``) and ``self._interpreter``, and implement
    ``_run(x) -> list`` of raw output arrays, first axis = sample.
    """

    def _run(self, x) -> list:
        raise NotImplementedError

    def predict_raw(self, x):
        """Raw outputs (e.g. int8) for float inputs ``x`` (n, ...); a list when the model has several outputs."""
        outputs = self._run(x)
        return outputs[0] if len(outputs) == 1 else outputs

    def predict(self, x):
        """Dequantized float32 outputs for float inputs ``x``, first axis = sample."""
        outputs = [spec.dequantize(raw) for raw, spec in zip(self._run(x), self.outputs, strict=True)]
        return outputs[0] if len(outputs) == 1 else outputs

    def invoke_once(self) -> None:
        """One ``invoke()`` on whatever the inputs hold (for timing loops)."""
        self._interpreter.invoke()
