"""`ZooSpec`: what the zoo knows about an architecture without building it (no Keras import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["tutorial", "mlperf_tiny"]
Task = Literal["classification", "reconstruction", "anomaly"]


@dataclass(frozen=True)
class ZooSpec:
    """Facts about one reference architecture.

    ``input_shape`` and ``num_classes`` are the architecture's defaults (``num_classes`` is None for
    autoencoders). ``dataset`` names the offline dataset (:func:`pytest_tinyml.datasets.load`) it trains on in
    tests; build with that dataset's ``input_shape`` / ``num_classes`` when they differ from the defaults.
    ``budgets`` are full-int8 limits for an ESP32 at the default input shape (``flash_kb``: the flatbuffer;
    ``arena_kb``: the TFLite Micro tensor arena), about 15-30% above what the model measured here (arena
    measured with the host TFLite Micro, 64-bit pointers: an estimate, usually above the 32-bit device's).
    Empty when the model has no int8 form. ``int8_tflm`` says whether the model converts to full int8 and
    runs on TFLite Micro.

    Example:
        >>> from pytest_tinyml import zoo
        >>> zoo.spec("kws_dscnn").input_shape
        (49, 10, 1)
    """

    name: str
    family: Family
    task: Task
    input_shape: tuple[int, ...]
    num_classes: int | None
    dataset: str
    citation: str
    budgets: dict[str, float] = field(default_factory=dict)
    int8_tflm: bool = True
    notes: str = ""
    hyperparams: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A registry row: the spec and the function that builds the model (imports Keras when called)."""

    spec: ZooSpec
    builder: Callable[..., Any]


def make_entry(builder: Callable[..., Any], **spec_fields: Any) -> Entry:
    """Register ``builder``: its keyword-only parameters (with defaults) become the spec's hyperparams.

    Example:
        >>> def b(input_shape, num_classes, *, units=8): ...
        >>> make_entry(b, name="x", family="tutorial", task="classification", input_shape=(4,),
        ...            num_classes=2, dataset="digits", citation="").spec.hyperparams
        {'units': 8}
    """
    import inspect

    params = inspect.signature(builder).parameters.values()
    defaults = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return Entry(spec=ZooSpec(hyperparams=defaults, **spec_fields), builder=builder)
