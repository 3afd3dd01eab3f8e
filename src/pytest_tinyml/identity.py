"""What can be converted, how it reaches the child process, and its content hash.

Sources: a Keras 3 model (any backend; saved as ``.keras``), a tf_keras model (QAT / pruned / clustered
models from tfmot; saved as a tf_keras SavedModel), a ``.keras`` or ``.h5`` file, or a SavedModel directory.
The hash (``source_hash``) is the sha256 of the architecture JSON, with auto-generated layer names made
positional (``dense_7`` depends on how many models the process built before), and of every weight array.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tinyml.errors import ConfigError, ConversionError, UntrustedModelError

# Names that are values, not layer names, in Keras configs (dtype policies carry a "name" too).
_NOT_LAYERS = {"DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy", "Policy"}
QAT_LAYERS = {"QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeAnnotate"}
ACCEPTED = "a Keras 3 model, a tf_keras model, a path to a .keras/.h5 file, or a SavedModel directory"


@dataclass
class Source:
    """A model ready for the child: ``kind`` is ``keras``, ``tf_keras`` or ``saved_model``."""

    kind: str
    path: str
    name: str
    source_hash: str | None  # None: the child computes it after loading
    qat: bool = False
    layer_classes: tuple = ()


def model_family(model: Any) -> str | None:
    """``"keras"`` for a Keras 3 model, ``"tf_keras"`` for a tf_keras model, None for anything else."""
    for klass in type(model).__mro__:
        module = klass.__module__ or ""
        if klass.__name__ in {"Model", "Functional", "Sequential"}:
            if module.startswith("keras") and not module.startswith("keras.api._v2"):
                return "keras"
            if module.startswith("tf_keras") or module.startswith("keras.api._v2"):
                return "tf_keras"
    return None


def _config_dicts(node: Any):
    """Every dict of a nested Keras config, depth first, each before the dicts inside it."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _config_dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _config_dicts(value)


def _canonical_architecture(config: dict) -> dict:
    names: list[str] = []
    for node in _config_dicts(config):
        conf = node.get("config")
        if (
            "class_name" in node
            and node["class_name"] not in _NOT_LAYERS
            and isinstance(conf, dict)
            and isinstance(conf.get("name"), str)
            and conf["name"] not in names
        ):
            names.append(conf["name"])
    mapping = {n: f"layer{i}" for i, n in enumerate(names)}

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        if isinstance(node, str):
            return mapping.get(node, node)
        return node

    return rename(config)


def architecture_json(model: Any) -> str:
    """The model's architecture JSON with positional layer names, keys sorted (stable across processes)."""
    config = json.loads(model.to_json())
    # How the model was compiled is not its architecture (the fit cache keys on it separately).
    config.pop("compile_config", None)
    return json.dumps(_canonical_architecture(config), sort_keys=True, separators=(",", ":"))


def weights_digest(model: Any, digest=None):
    """Feed every weight array (shape, dtype, bytes) of a Keras / tf_keras model into a sha256."""
    import numpy as np

    digest = digest or hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        digest.update(f"{w.shape}{w.dtype.str}".encode())
        digest.update(w.tobytes())
    return digest


def model_hash(model: Any) -> str:
    """sha256 of a Keras / tf_keras model's canonical architecture JSON and its weights.

    Example:
        >>> model_hash(zoo.build("mlp")) == model_hash(zoo.build("mlp"))   # doctest: +SKIP
        False
    """
    digest = hashlib.sha256(architecture_json(model).encode())
    return weights_digest(model, digest).hexdigest()


def path_hash(path: str | os.PathLike) -> str:
    """sha256 of a model file or SavedModel directory's contents (``.keras``: config and weights only).

    A ``.keras`` zip also holds ``metadata.json`` with the save date, which would change the hash of an
    unchanged model, so only its other members count.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            digest.update(file.read_bytes())
    elif path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                if member != "metadata.json":
                    digest.update(member.encode() + b"\0")
                    digest.update(archive.read(member))
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def source_key(model: Any) -> str:
    """The content hash used by the cache: ``model_hash`` for models in memory, ``path_hash`` for paths."""
    if isinstance(model, (str, os.PathLike)):
        return path_hash(model)
    if model_family(model) is None:
        raise ConfigError(f"cannot hash {type(model).__name__!r}: expected {ACCEPTED}{_held_model_hint(model)}")
    return model_hash(model)


def _held_model_hint(obj: Any) -> str:
    """optimize.prune / cluster return a result that holds the model: the refusal names the attribute to pass."""
    return " (this one holds one: pass its .model)" if model_family(getattr(obj, "model", None)) else ""


def is_qat(model: Any) -> bool:
    """True for a tf_keras model quantize-annotated by tfmot (it carries its own quantization ranges)."""
    return any(type(layer).__name__ in QAT_LAYERS for layer in getattr(model, "layers", ()))


def prepare(model: Any, workdir: Path, name: str | None) -> Source:
    """Save or locate ``model`` so the child process can load it; raise ``ConfigError`` for anything else.

    Example:
        >>> prepare(keras_model, Path(tmp), None).kind         # doctest: +SKIP
        'keras'
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ConfigError(f"model path {str(path)!r} does not exist: pass {ACCEPTED}")
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise ConfigError(
                    f"directory {str(path)!r} has no saved_model.pb: it is not a SavedModel; pass {ACCEPTED}"
                )
            return Source("saved_model", str(path.resolve()), name or path.name, None)
        if path.suffix == ".keras":
            return Source("keras", str(path.resolve()), name or path.stem, None)
        if path.suffix in {".h5", ".hdf5"}:
            return Source("tf_keras", str(path.resolve()), name or path.stem, None)
        raise ConfigError(f"cannot convert {str(path)!r}: unknown model file type; pass {ACCEPTED}")

    family = model_family(model)
    if family is None:
        raise ConfigError(f"cannot convert a {type(model).__name__!r}: pass {ACCEPTED}{_held_model_hint(model)}")
    name = name or getattr(model, "name", None) or "model"
    classes = tuple(sorted({type(layer).__name__ for layer in all_layers(model)}))
    digest = model_hash(model)
    try:
        if family == "keras" and _has_custom_layers(model):
            # The child could not import the custom classes to load a .keras file: trace it here instead.
            path = workdir / "exported_savedmodel"
            model.export(str(path), format="tf_saved_model", verbose=False)
            return Source("saved_model", str(path), name, digest, layer_classes=classes)
        if family == "keras":
            path = workdir / "model.keras"
            model.save(str(path))
            return Source("keras", str(path), name, digest, layer_classes=classes)
        # tf_keras (tfmot wrappers included): a tf_keras SavedModel reloads under tfmot's scopes in the child.
        path = workdir / "tf_keras_savedmodel"
        model.save(str(path), save_format="tf", include_optimizer=False)
        return Source("tf_keras", str(path), name, digest, qat=is_qat(model), layer_classes=classes)
    except Exception as exc:  # custom layers without get_config, unsaveable state, ...
        raise ConversionError(
            f"cannot save model {name!r} for the conversion process ({type(exc).__name__}: {exc}). Fix: give "
            "custom layers get_config() and register them (keras.saving.register_keras_serializable), or "
            "export a SavedModel yourself (model.export(dir)) and convert that directory"
        ) from exc


def _has_custom_layers(model: Any) -> bool:
    return any(
        not (type(layer).__module__ or "").startswith(("keras.", "keras_hub.", "keras_nlp.", "keras_cv."))
        for layer in all_layers(model)
    ) or not type(model).__module__.startswith("keras.")


def all_layers(model: Any):
    """Every layer of a model, nested models and tfmot wrappers' inner layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        inner = getattr(layer, "layer", None)  # tfmot wrappers
        if inner is not None:
            yield inner
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


# --- legacy files that carry Python bytecode ----------------------------------------------------------------
LEGACY_SUFFIXES = {".h5", ".hdf5"}
TRUST_FLAG = "--tinyml-trust-legacy"
_trust_legacy_default = False


def set_trust_legacy(value: bool) -> None:
    """The session-wide default of ``trust=`` for legacy files (set by ``--tinyml-trust-legacy``)."""
    global _trust_legacy_default
    _trust_legacy_default = bool(value)


def trust_legacy_default() -> bool:
    """True when ``--tinyml-trust-legacy`` (ini ``tinyml_trust_legacy``) is on for this session."""
    return _trust_legacy_default


def bytecode_layers(path: str | os.PathLike) -> list[str]:
    """``"name (Lambda)"`` for every layer of a legacy ``.h5`` model whose config holds Python bytecode.

    A ``Lambda`` layer saved in HDF5 stores its function as marshalled bytecode, which Keras runs while it
    rebuilds the model: loading the file runs code from it. (``.keras`` files are refused by Keras's own
    ``safe_mode``; a SavedModel directory is converted from its graph and never loaded through Keras.)

    Example:
        >>> bytecode_layers("model_with_lambda.h5")      # doctest: +SKIP
        ['scale (Lambda)']
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)!r} as an HDF5 Keras model ({exc})") from None
    if raw is None:
        return []
    config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    found: list[str] = []
    for node in _config_dicts(config):
        inner = node.get("config") if isinstance(node.get("config"), dict) else {}
        if node.get("class_name") == "Lambda" and inner.get("function_type", "lambda") != "function":
            found.append(f"{inner.get('name', '?')} (Lambda)")
    return found


def check_trust(model: Any, trust: bool | None) -> None:
    """``UntrustedModelError`` for a legacy ``.h5`` file with bytecode layers unless trusted.

    ``trust=None`` means the session default (``--tinyml-trust-legacy``).
    """
    if not isinstance(model, (str, os.PathLike)) or Path(model).suffix.lower() not in LEGACY_SUFFIXES:
        return
    if trust if trust is not None else _trust_legacy_default:
        return
    layers = bytecode_layers(model)
    if layers:
        raise UntrustedModelError(
            f"model file {os.fspath(model)!r} is a legacy HDF5 model whose layer(s) {', '.join(layers)} hold "
            "Python bytecode, which loading the file would run. Convert it only if you trust where it came "
            f"from: convert(path, ..., trust=True), or {TRUST_FLAG} (ini tinyml_trust_legacy = true) for the "
            "session; better, re-save the model as .keras (Keras refuses lambdas there unless safe_mode=False) "
            "or replace the Lambda with a registered custom layer"
        )
