"""Keras layer configs read as ``Embedding`` constructor arguments."""
from __future__ import annotations

from typing import Any, Dict

__all__ = ["from_keras_config"]

# Base-layer keys of a Keras config that carry nothing for a fastembed layer.
_IGNORED_KEYS = ("batch_input_shape", "input_shape", "batch_size", "build_config",
                 "quantization_config", "sparse")
# Keras initializer class names -> our initializer names.
_INITIALIZERS = {"RandomUniform": "uniform", "RandomNormal": "normal",
                 "GlorotUniform": "glorot_uniform", "Zeros": "zeros"}


def from_keras_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The constructor arguments of a ``get_config()`` dict, ours or Keras'.

    Keras' base-layer keys are dropped, a Keras 3 dtype policy is reduced to its dtype
    name, a serialized initializer to its name (its seed becomes ``seed`` unless the
    config has one). Our own configs pass through unchanged. `config` is not modified.
    """
    cfg = dict(config)
    for key in _IGNORED_KEYS:
        cfg.pop(key, None)
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        cfg["dtype"] = (dtype.get("config") or {}).get("name", "float32")
    init = cfg.get("embeddings_initializer")
    if isinstance(init, dict):  # a serialized Keras initializer
        name = init.get("class_name", "")
        cfg["embeddings_initializer"] = _INITIALIZERS.get(name, name)
        seed = (init.get("config") or {}).get("seed")
        if cfg.get("seed") is None and isinstance(seed, int):
            cfg["seed"] = seed
    return cfg
