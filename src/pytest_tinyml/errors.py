"""Typed errors of pytest-tinyml.

Every error names what it concerns (a model, a file, a port) and says how to fix it. They all derive from
:class:`TinyMLError`, so ``except TinyMLError`` catches anything this package raises on purpose.
"""

from __future__ import annotations


class TinyMLError(Exception):
    """Base class of every error pytest-tinyml raises on purpose."""


class ConfigError(TinyMLError, ValueError):
    """A bad option, ini value, marker argument or function argument."""


class UntrustedModelError(ConfigError):
    """A legacy model file (``.h5``) carries Python bytecode (a ``Lambda`` layer) that loading it would run;
    pass ``trust=True`` (or ``--tinyml-trust-legacy``) for files you trust."""


class DatasetError(TinyMLError):
    """A dataset cannot be loaded (unknown name, no network, bad arrays)."""


class ZooError(TinyMLError, KeyError):
    """Unknown reference architecture or bad hyperparameters."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConversionError(TinyMLError):
    """TFLite conversion failed, crashed or hung (it runs in a child process)."""


class ConversionTimeout(ConversionError):
    """TFLite conversion hung past its timeout (killed). Not a verdict on the model: never cached."""


class OptimizationError(TinyMLError):
    """An optimization recipe cannot be applied (unsupported layer, bad schedule, ...)."""


class CacheError(TinyMLError):
    """The artifact cache cannot be used (permissions, disk full, ...)."""


class ModelLoadError(TinyMLError):
    """A model file or buffer is not a valid TFLite flatbuffer, or the runtime refused it."""


class RuntimeCrash(TinyMLError):
    """The inference runtime crashed (signal) or hung while running a model in a child process."""


class RuntimeHang(RuntimeCrash):
    """The inference runtime hung past its timeout in a child process (killed). Never cached."""


class ArenaTooSmall(TinyMLError):
    """The tensor arena is too small for the model."""


class BoardError(TinyMLError):
    """Talking to a board failed. Carries the serial log seen so far in ``.log``."""

    def __init__(self, message: str, *, port: str | None = None, log: str = "") -> None:
        super().__init__(message)
        self.port = port
        self.log = log

    def __str__(self) -> str:
        text = super().__str__()
        if self.log:
            tail = self.log[-2000:]
            text += "\n--- serial log (last 2000 chars) ---\n" + tail
        return text


class BoardTimeout(BoardError):
    """The board did not answer in time."""


class BoardReset(BoardError):
    """The board reset or panicked during a run; the partial result was discarded."""


class BoardDisconnected(BoardError):
    """The serial port closed or vanished under us (board unplugged, sim process gone); ``.log`` holds its tail."""


class ProtocolError(BoardError):
    """The board answered with something the protocol does not allow, or an error line (``e-[...]``)."""


class PortUnavailable(BoardError):
    """The serial port is missing, busy, or cannot be opened."""


class FirmwareError(BoardError):
    """The benchmark firmware cannot be built or flashed, or is stale under --tinyml-skip-flash."""


class HistoryError(TinyMLError):
    """The latency history cannot be read or written."""


class UnknownBaseline(HistoryError, ConfigError):
    """``--tinyml-baseline=NAME`` names a baseline that was never saved (the message lists those that were)."""


class CorruptBaseline(HistoryError):
    """A saved baseline file cannot be read; it is kept in place until ``--tinyml-save-baseline=NAME`` replaces it."""


class EstimateCalibrationError(ConfigError):
    """``pytest-tinyml estimate calibrate`` or a calibration file cannot give a chip's scale: no history, no
    board runs of that chip, too few runs, or an unreadable calibration file (the message names it)."""


class TinyMLAssertionError(TinyMLError, AssertionError):
    """A tinyml assertion failed (accuracy drop, budget, parity, TFLM compatibility); the message is a report."""


class CalibrationWarning(UserWarning):
    """Full-integer calibration got too few representative samples (under 100): quantization ranges may be off."""


class CacheWarning(UserWarning):
    """A cache entry was corrupt (truncated file, bad JSON, sha256 mismatch) and is being rebuilt."""


class ScaffoldError(ConfigError):
    """``pytest-tinyml init`` cannot write the tests: a file is in the way, or the model or data is unusable."""
