"""Magnitude pruning for Keras 3 on any backend: a callback that masks weights with ``keras.ops`` only.

tfmot needs tf_keras, hence TensorFlow. :class:`MagnitudePruning` prunes a plain Keras 3 model during ``fit``
on the TensorFlow, JAX or torch backend: every ``frequency`` steps it recomputes, per prunable kernel, a mask
that zeroes the smallest-magnitude weights (the fraction set by the schedule), and after every step it
re-applies the mask so the optimizer cannot revive pruned weights. Tested on TensorFlow and JAX (on JAX it
syncs the trainer's functional state into the Variables first); torch is not installed here, untested. Same schedules as tfmot: polynomial decay
(cubic, from 0 to the target between ``begin_step`` and ``end_step``) and constant sparsity; optional 2:4
structured sparsity (in every group of 4 consecutive input-channel weights, the 2 smallest are zeroed).
"""

from __future__ import annotations

import keras

from pytest_tinyml.errors import ConfigError
from pytest_tinyml.optimize.sparsity import iter_layers, prunable_weights


def polynomial_sparsity(step: int, target: float, begin_step: int, end_step: int, power: int = 3) -> float:
    """Sparsity at ``step`` under tfmot's PolynomialDecay from 0 to ``target``.

    Example:
        >>> polynomial_sparsity(0, 0.8, 0, 100), polynomial_sparsity(100, 0.8, 0, 100)
        (0.0, 0.8)
    """
    if step < begin_step:
        return 0.0
    if end_step <= begin_step or step >= end_step:
        return target
    progress = (step - begin_step) / (end_step - begin_step)
    return target * (1.0 - (1.0 - progress) ** power)


class MagnitudePruning(keras.callbacks.Callback):
    """Keras 3 callback that prunes the model being fitted by weight magnitude, on any backend.

    Args:
        target_sparsity: fraction of each prunable kernel to zero by ``end_step``.
        schedule: ``"polynomial"`` (ramp from 0) or ``"constant"`` (the target from ``begin_step`` on).
        end_step: last step of the polynomial ramp (training steps, counted across epochs).
        begin_step: first step that prunes.
        frequency: recompute masks every this many steps (masks are re-applied after every step).
        structured: ``None`` or ``"2:4"`` (the target is then 0.5, reached as 2 zeros in every 4 weights).

    Example:
        >>> cb = MagnitudePruning(0.5, schedule="constant", end_step=100)
        >>> model.fit(x, y, epochs=2, callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(
        self,
        target_sparsity: float,
        *,
        schedule: str = "polynomial",
        end_step: int,
        begin_step: int = 0,
        frequency: int = 1,
        structured: str | None = None,
    ) -> None:
        super().__init__()
        if schedule not in ("polynomial", "constant"):
            raise ConfigError(f"Pruning schedule {schedule!r} is unknown; use 'polynomial' or 'constant'.")
        if structured not in (None, "2:4"):
            raise ConfigError(f"Structured pruning {structured!r} is unknown; use None or '2:4'.")
        if not 0.0 <= target_sparsity < 1.0:
            raise ConfigError(f"target_sparsity={target_sparsity} must be in [0, 1).")
        self.target_sparsity = 0.5 if structured else float(target_sparsity)
        self.schedule = schedule
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = max(1, int(frequency))
        self.structured = structured
        self.step = 0
        self._masks: dict[int, object] = {}
        self._variables: list = []

    def sparsity_at(self, step: int) -> float:
        """The schedule's sparsity at ``step``."""
        if self.structured or self.schedule == "constant":
            return self.target_sparsity if step >= self.begin_step else 0.0
        return polynomial_sparsity(step, self.target_sparsity, self.begin_step, self.end_step)

    def on_train_begin(self, logs=None):
        self._variables = [w for layer in iter_layers(self.model) for w in prunable_weights(layer)]
        if not self._variables:
            raise ConfigError(
                f"Model {self.model.name!r} has no prunable kernels (Dense, Conv, DepthwiseConv, SeparableConv)."
            )

    def on_train_batch_end(self, batch, logs=None):
        # On JAX, fit keeps the variables in a functional state; pull them into the Variables before editing.
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        step = self.step
        self.step += 1
        due = step >= self.begin_step and (step - self.begin_step) % self.frequency == 0
        in_range = self.structured or self.schedule == "constant" or step <= self.end_step
        for variable in self._variables:
            if due and in_range:
                self._masks[id(variable)] = self._mask(variable, self.sparsity_at(step))
            mask = self._masks.get(id(variable))
            if mask is not None:
                variable.assign(keras.ops.multiply(keras.ops.convert_to_tensor(variable), mask))

    def on_train_end(self, logs=None):
        # The final weights must carry the final masks even if training stopped between two updates.
        for variable in self._variables:
            mask = self._masks.get(id(variable))
            if mask is not None:
                variable.assign(keras.ops.multiply(keras.ops.convert_to_tensor(variable), mask))

    def _mask(self, variable, sparsity: float):
        ops = keras.ops
        value = ops.convert_to_tensor(variable)
        if self.structured:
            return _two_of_four_mask(value, variable.path)
        size = 1
        for dim in value.shape:
            size *= int(dim)
        k = int(round(sparsity * size))
        if k <= 0:
            return ops.ones_like(value)
        magnitudes = ops.abs(ops.reshape(value, (-1,)))
        threshold = ops.sort(magnitudes)[k - 1]
        return ops.cast(ops.greater(ops.abs(value), threshold), value.dtype)


def _two_of_four_mask(value, name: str):
    """Keep the 2 largest of every 4 consecutive weights along the input-channel axis (the kernel's axis -2)."""
    ops = keras.ops
    shape = tuple(int(d) for d in value.shape)
    channels_in = shape[-2] if len(shape) >= 2 else shape[0]
    if channels_in % 4:
        raise ConfigError(
            f"2:4 pruning needs the input channels of {name} ({channels_in}) to be a multiple of 4; "
            "use unstructured pruning for this model or widen the layer."
        )
    # (..., in, out) -> (out, rest..., in/4, 4): groups of 4 along the input channels.
    rank = len(shape)
    moved = ops.moveaxis(value, rank - 2, rank - 1)  # (..., out, in)
    grouped = ops.reshape(moved, (-1, 4))
    magnitudes = ops.abs(grouped)
    # Rank of each element inside its group: the 2 largest survive (ties broken by position).
    order = ops.argsort(ops.argsort(-magnitudes, axis=-1), axis=-1)
    keep = ops.cast(ops.less(order, 2), value.dtype)
    keep = ops.reshape(keep, tuple(moved.shape))
    return ops.moveaxis(keep, rank - 1, rank - 2)
