"""Content-addressed, file-locked, atomic cache of training and conversion results.

Layout: ``<root>/<kind>/<key[:2]>/<key>/`` holding the entry's files and a ``meta.json`` with the sha256
of each file. An entry is written in a temp directory and renamed into place (``os.replace``), under a
``filelock.FileLock`` per key, so pytest-xdist workers that want the same entry build it once. A corrupt
entry (missing or truncated file, bad JSON, sha256 mismatch, a loader that fails) is rebuilt with a
``CacheWarning``, never used.

Example:
    >>> cache = TinyMLCache(".tinyml_cache")
    >>> model = cache.fit(zoo.build("mlp", input_shape=(64,)), datasets.load("digits"), epochs=5)  # doctest: +SKIP
    >>> art = cache.convert(model, "int8", representative=ds.x_train)                             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_tinyml import errors
from pytest_tinyml.errors import CacheError, CacheWarning, ConfigError

FORMAT_VERSION = 1
META = "meta.json"
FIX = "fix its permissions, or point --tinyml-cache-dir (ini tinyml_cache_dir) at a writable directory"


def model_hash(model) -> str:
    """sha256 of a Keras / tf_keras model's architecture (layer names made positional) and weights.

    The building block for ``memoize`` keys of model transformations (pruning, QAT, clustering, ...).

    Example:
        >>> key_parts = {"model": model_hash(model), "sparsity": 0.5}     # doctest: +SKIP
    """
    from pytest_tinyml.identity import model_hash as _model_hash

    return _model_hash(model)


def is_conversion_verdict(error: BaseException) -> bool:
    """A conversion error worth keeping: the converter crashed on or refused these inputs (not a timeout)."""
    return isinstance(error, errors.ConversionError) and not isinstance(error, errors.ConversionTimeout)


class _Corrupt(Exception):
    """An entry exists but cannot be used; the message says why."""


def canonical(value: Any, where: str = "key") -> Any:
    """A JSON-able, process-independent form of a key part (arrays hashed, Keras objects by config).

    Example:
        >>> canonical({"epochs": 3, "x": np.zeros(2)})["epochs"]       # doctest: +SKIP
        3
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): canonical(v, f"{where}.{k}") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (bytes, bytearray)):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "tobytes"):
        import numpy as np

        array = np.ascontiguousarray(value)
        digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode() + array.tobytes()).hexdigest()
        return {"array_sha256": digest}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return canonical(value.item(), where)
    if hasattr(value, "get_config"):
        return {"class": type(value).__qualname__, "config": canonical(value.get_config(), where)}
    raise ConfigError(
        f"cannot key the cache on {where}={value!r} (a {type(value).__name__}): pass plain values, arrays, or "
        "objects with get_config(); or train without the cache"
    )


BACKEND_DISTRIBUTIONS = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def library_versions(backend: str = "tensorflow", family: str = "keras") -> dict:
    """Versions that change training results: keras, the active backend's library, numpy, python,
    pytest_tinyml (and tf-keras / tfmot for tf_keras models). Libraries the run does not use stay out, so
    installing one does not invalidate the cache."""
    from importlib import metadata

    import pytest_tinyml

    versions = {"python": ".".join(map(str, sys.version_info[:3])), "pytest_tinyml": pytest_tinyml.__version__}
    dists = ["keras", "numpy", *BACKEND_DISTRIBUTIONS.get(backend, (backend,))]
    if family == "tf_keras":
        dists = ["tf-keras", "tensorflow", "tensorflow-model-optimization", "numpy"]
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TinyMLCache:
    """Disk cache of trained models and converted artifacts, keyed by content.

    ``hits``, ``misses`` and ``rebuilds`` count what this instance did (rebuilds: corrupt entries).
    A conversion that failed (the converter crashed or refused these exact inputs) is kept as a failure and
    fails fast with its original message the next time; ``retry_failures=True`` (pytest:
    ``--tinyml-cache-retry``) tries such conversions again. The first cache created also becomes where the
    facts of :mod:`pytest_tinyml.memo` (vet verdicts, arena figures, op probes) are kept, unless a root is
    set already (the plugin sets ``--tinyml-cache-dir``).

    Example:
        >>> cache = TinyMLCache(tmp_path)
        >>> cache.memoize("demo", {"n": 3}, lambda: 9, save=..., load=...)     # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, *, retry_failures: bool = False) -> None:
        from pytest_tinyml import memo

        self.root = Path(root)
        self.retry_failures = retry_failures
        self.hits = 0
        self.misses = 0
        self.rebuilds = 0
        self.failures_kept = 0  # failures raised again from the cache instead of being recomputed
        memo.adopt(self.root)

    def __repr__(self) -> str:
        return f"TinyMLCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    # --- the general mechanism ------------------------------------------------------------------------------
    def key(self, kind: str, key_parts: dict) -> str:
        """The sha256 key of ``key_parts`` (canonical JSON) for entries of ``kind``."""
        payload = {"format": FORMAT_VERSION, "kind": kind, "parts": canonical(key_parts)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def entry_dir(self, kind: str, key: str) -> Path:
        """Where the entry of ``key`` lives: ``<root>/<kind>/<key[:2]>/<key>``."""
        return self.root / kind / key[:2] / key

    def memoize(
        self,
        kind: str,
        key_parts: dict,
        produce: Callable[[], Any],
        *,
        save: Callable[[Any, Path], None],
        load: Callable[[Path], Any],
        keep_failure: Callable[[BaseException], bool] | None = None,
    ) -> Any:
        """The cached value for ``key_parts``, or ``produce()`` saved for next time.

        ``save(value, directory)`` writes the value's files into an empty directory; ``load(directory)``
        reads them back. ``kind`` names the family of entries (``fit``, ``convert``, ``qat``, ...).
        ``keep_failure(error)``: True for errors of ``produce()`` that are a deterministic verdict on these
        inputs; such an error is kept (:meth:`failure_path`) and raised again without calling ``produce()``,
        unless the cache was made with ``retry_failures=True``.

        Example:
            >>> cache.memoize("prune", {"model": model_hash(m), "sparsity": 0.5},
            ...               lambda: prune(m, 0.5), save=lambda v, d: v.save(d / "m.keras"),
            ...               load=lambda d: keras.saving.load_model(d / "m.keras"))     # doctest: +SKIP
        """
        key = self.key(kind, key_parts)
        entry = self.entry_dir(kind, key)
        try:  # fast path without the lock: complete entries only ever appear by rename
            value = self._load(entry, load)
            self.hits += 1
            return value
        except FileNotFoundError:
            pass
        except _Corrupt:
            pass  # re-checked and reported under the lock, where it is rebuilt
        if keep_failure is not None:
            self._raise_kept_failure(kind, key)
        from filelock import FileLock

        self._ensure_writable(entry.parent)
        with FileLock(str(entry.parent / f"{key}.lock")):
            try:
                value = self._load(entry, load)  # another process may have built it while we waited
                self.hits += 1
                return value
            except FileNotFoundError:
                corrupt = None
            except _Corrupt as exc:
                corrupt = str(exc)
                self.rebuilds += 1
            self.misses += 1
            started = time.monotonic()
            try:
                value = produce()
            except Exception as error:
                if keep_failure is not None and keep_failure(error):
                    self._keep_failure(kind, key, key_parts, error)
                raise
            self._write(entry, kind, key, key_parts, value, save, time.monotonic() - started)
        if corrupt is not None:
            # Warn only once the entry is whole again: under filterwarnings = error the warning raises, and a
            # warning raised before the rebuild would leave the corrupt entry to break every later run.
            warnings.warn(f"tinyml cache entry {entry} was corrupt ({corrupt}); rebuilt it", CacheWarning,
                          stacklevel=2)
        return value

    # --- kept failures --------------------------------------------------------------------------------------
    def failure_path(self, kind: str, key: str) -> Path:
        """Where the kept failure of ``key`` lives: ``<root>/<kind>-failed/<key[:2]>/<key>.json``."""
        return self.root / f"{kind}-failed" / key[:2] / f"{key}.json"

    def _raise_kept_failure(self, kind: str, key: str) -> None:
        path = self.failure_path(kind, key)
        if self.retry_failures:
            path.unlink(missing_ok=True)
            return
        try:
            kept = json.loads(path.read_text())
            error_type = getattr(errors, kept["type"], None)
            message, created = str(kept["message"]), str(kept["created"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):  # a damaged record: compute again
            path.unlink(missing_ok=True)
            return
        if not (isinstance(error_type, type) and issubclass(error_type, errors.TinyMLError)):
            error_type = errors.TinyMLError
        self.failures_kept += 1
        raise error_type(
            f"{message}\n(cached: these exact inputs failed the same way on {created}; delete {path} or run with "
            "--tinyml-cache-retry (TinyMLCache(..., retry_failures=True)) to retry)"
        )

    def _keep_failure(self, kind: str, key: str, key_parts: dict, error: BaseException) -> None:
        path = self.failure_path(kind, key)
        record = {"type": type(error).__name__, "message": str(error), "key_parts": canonical(key_parts),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
            with os.fdopen(handle, "w") as out:
                json.dump(record, out, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError:  # an unwritable cache costs the fast failure next time, not this error
            pass

    def _load(self, entry: Path, load: Callable[[Path], Any]) -> Any:
        meta_path = entry / META
        if not entry.is_dir():
            raise FileNotFoundError(entry)
        try:
            meta = json.loads(meta_path.read_text())
            files = meta["files"]
        except FileNotFoundError:
            raise _Corrupt(f"{META} is missing") from None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise _Corrupt(f"{META} is unreadable: {exc}") from None
        for name, digest in files.items():
            path = entry / name
            if not path.is_file():
                raise _Corrupt(f"{name} is missing")
            if _sha256_file(path) != digest:
                raise _Corrupt(f"{name} does not match its sha256 (truncated or changed)")
        try:
            return load(entry)
        except Exception as exc:  # a loader that fails on checked files: treat as corrupt, never half-use
            raise _Corrupt(f"loading failed: {type(exc).__name__}: {exc}") from None

    def _ensure_writable(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CacheError(
                f"tinyml cache directory {str(self.root)!r} is not writable ({exc.strerror or exc} at "
                f"{str(directory)!r}): {FIX}"
            ) from exc

    def _write(self, entry: Path, kind, key, key_parts, value, save, seconds: float) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=entry.parent))
        try:
            save(value, tmp)
            files = {
                str(p.relative_to(tmp)): _sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            meta = {
                "format": FORMAT_VERSION,
                "kind": kind,
                "key": key,
                "key_parts": canonical(key_parts),
                "files": files,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "produce_seconds": round(seconds, 3),
            }
            (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            if entry.exists():  # a corrupt entry: move it aside first (rename is atomic, rmtree is not)
                trash = entry.parent / f".trash-{key[:12]}-{uuid.uuid4().hex[:8]}"
                os.replace(entry, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, entry)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheError(f"cannot write tinyml cache entry {str(entry)!r} ({exc}): {FIX}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # --- training -------------------------------------------------------------------------------------------
    def fit(self, model, dataset, *, epochs: int = 10, batch_size: int = 32, seed: int = 0,
            validation_split: float = 0.0, **fit_kwargs):
        """Train ``model`` on ``dataset`` (or load the weights of an identical earlier run); returns the model.

        An uncompiled model is compiled for the dataset's task: classification -> adam, sparse categorical
        cross-entropy, accuracy; ``reconstruction`` / ``anomaly`` -> adam, mse on x -> x. The key covers the
        architecture, the initial weights (seed before building the model for hits across sessions), the
        dataset fingerprint, the compile and fit arguments, the Keras backend and library versions.

        Example:
            >>> keras.utils.set_random_seed(0); model = zoo.build("mlp", input_shape=(64,))   # doctest: +SKIP
            >>> model = tinyml_cache.fit(model, datasets.load("digits"), epochs=5)           # doctest: +SKIP
        """
        from pytest_tinyml.identity import architecture_json, model_family, weights_digest

        family = model_family(model)
        if family is None:
            raise ConfigError(f"tinyml_cache.fit needs a Keras model, got a {type(model).__name__!r}")
        if not model.weights:
            raise ConfigError(
                f"model {model.name!r} is not built (no weights): give it an Input (keras.Input(shape)) so its "
                "initial weights can be part of the cache key"
            )
        from pytest_tinyml import training

        _require_train_split(dataset)
        task = training.task_of(dataset)
        x, y = training.arrays(dataset, "tinyml_cache.fit", model=model)
        keras = _keras_module(family)
        compile_config = _compile_config(model)
        # The loss an uncompiled model gets follows its head (logits -> from_logits=True): part of the key.
        chosen = training.policy(model, dataset) if compile_config is None else None
        parts = {
            "architecture": architecture_json(model),
            "initial_weights": weights_digest(model).hexdigest(),
            "dataset": _dataset_fingerprint(dataset, x, y),
            "task": task,
            "compile": compile_config,
            "training_policy": chosen,
            "fit": {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                    "validation_split": validation_split, **fit_kwargs},
            "backend": keras.backend.backend(),
            "family": family,
            "versions": library_versions(keras.backend.backend(), family),
        }
        weights_file = "model.keras" if family == "keras" else "weights.h5"

        def ensure_compiled() -> None:
            if compile_config is None:
                training.compile_for(model, dataset, keras)

        def produce():
            ensure_compiled()
            keras.utils.set_random_seed(seed)
            history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                                verbose=0, **fit_kwargs)
            return {k: [float(v) for v in values] for k, values in history.history.items()}

        def save(history, directory: Path) -> None:
            if family == "keras":
                model.save(str(directory / weights_file))
            else:
                model.save_weights(str(directory / weights_file))
            (directory / "history.json").write_text(json.dumps(history))

        def load(directory: Path):
            with warnings.catch_warnings():
                # The saved optimizer state is not restored on purpose: only the weights are the result.
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(str(directory / weights_file))
            ensure_compiled()
            return json.loads((directory / "history.json").read_text())

        with warnings.catch_warnings():
            # Keras's TensorFlow backend trips numpy 2's __array__(copy=) deprecation in fit and save: noise
            # from inside this fixture that would fail a user's suite under filterwarnings = error.
            warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
            history = self.memoize("fit", parts, produce, save=save, load=load)
        model.tinyml_history = history  # loss/metric curves of the (original) training run
        return model

    # --- conversion -----------------------------------------------------------------------------------------
    def convert(self, model, recipe: str = "float32", representative=None, **params):
        """``pytest_tinyml.convert(...)`` through the cache; returns a ``TFLiteArtifact``.

        The key covers the source model's content hash, the recipe, every parameter (target, io_dtype,
        converter params), the representative samples actually used, and library versions. ``name=`` and
        ``timeout=`` are not part of the key.

        Example:
            >>> art = tinyml_cache.convert(model, "int8", representative=ds.x_train)     # doctest: +SKIP
        """
        import dataclasses

        from pytest_tinyml.conversion import (
            CONVERSION_POLICY,
            check_params,
            convert,
            optimization_steps,
            prepare_representative,
            representative_hash,
        )
        from pytest_tinyml.identity import source_key
        from pytest_tinyml.tflite.artifact import TFLiteArtifact, current_versions

        name = params.pop("name", None)
        timeout = params.pop("timeout", 300.0)
        target = params.pop("target", "tflm")
        io_dtype = params.pop("io_dtype", None)
        trust = params.pop("trust", None)  # not part of the key: it permits a load, it does not change the result
        converter_params = check_params(params, f"model {name or getattr(model, 'name', 'model')!r}")
        samples = None
        if recipe in {"int8", "int16x8"} and representative is not None:
            from pytest_tinyml.validation import sample_shape_of

            samples = prepare_representative(
                representative, max_samples=int(converter_params["max_calibration_samples"]),
                sample_shape=None if isinstance(model, (str, os.PathLike)) else sample_shape_of(model),
            )
        parts = {
            "source": source_key(model),
            "recipe": recipe,
            "target": target,
            "io_dtype": io_dtype,
            "params": converter_params,
            "representative": representative_hash(samples),
            "policy": CONVERSION_POLICY,
            "versions": current_versions(),
        }
        steps = optimization_steps(model)
        if steps:  # what optimize.prune / .cluster tagged: part of the artifact's params, so of the key
            parts["optimization"] = steps

        def produce():
            return convert(model, recipe, representative=samples, target=target, io_dtype=io_dtype,
                           name=name, timeout=timeout, trust=trust, **params)

        def save(artifact, directory: Path) -> None:
            (directory / "model.tflite").write_bytes(artifact.content)
            (directory / "artifact.json").write_text(json.dumps(artifact.metadata(), indent=1))

        def load(directory: Path):
            meta = json.loads((directory / "artifact.json").read_text())
            return TFLiteArtifact.from_metadata((directory / "model.tflite").read_bytes(), meta)

        # A converter crash or refusal on these exact inputs (model, recipe, parameters, representative
        # samples, versions) happens again: kept, raised fast. A timeout is not a verdict (ConversionTimeout).
        artifact = self.memoize("convert", parts, produce, save=save, load=load,
                                keep_failure=is_conversion_verdict)
        if name and artifact.name != name:
            artifact = dataclasses.replace(artifact, name=name)
        return artifact


# --- training helpers ---------------------------------------------------------------------------------------


def _keras_module(family: str):
    if family == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _require_train_split(dataset) -> None:
    if not (hasattr(dataset, "x_train") and hasattr(dataset, "y_train")):
        raise ConfigError(
            f"tinyml_cache.fit needs a dataset with x_train / y_train (pytest_tinyml.datasets.load(...) or "
            f"datasets.from_arrays(x, y)), got a {type(dataset).__name__!r}"
        )


def _dataset_fingerprint(dataset, x, y) -> str:
    fingerprint = getattr(dataset, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    return json.dumps(canonical({"x": x, "y": y}), sort_keys=True)


def _compile_config(model):
    """The model's compile arguments when it is compiled (part of the key), else None."""
    compiled = getattr(model, "compiled", None)
    if compiled is None:  # tf_keras
        compiled = getattr(model, "_is_compiled", False)
    if not compiled:
        return None
    if hasattr(model, "get_compile_config"):
        config = model.get_compile_config()
        if config:
            return canonical(config, "compile")
    return canonical({"optimizer": model.optimizer, "loss": repr(getattr(model, "loss", None))}, "compile")
