"""Bring a pickled legacy Keras ``Tokenizer`` over to ``fastembed.Tokenizer``, safely.

A real pickle of ``keras_preprocessing.text.Tokenizer`` (or of the copies in
``keras.preprocessing``, ``tensorflow.keras.preprocessing``, ``tf_keras``) holds
exactly these globals (see ``pickletools.dis``): the Tokenizer class itself,
``collections.OrderedDict`` (``word_counts``), ``collections.defaultdict`` with
``int`` as its factory (``word_docs``, ``index_docs``; ``__builtin__ long`` in
protocol-2 pickles written by Python 3 with ``fix_imports``), and, for protocols
0 and 1, ``copy_reg._reconstructor`` with ``object``.  The unpickler resolves
those names to harmless stand-ins and refuses every other global with
``ValueError`` before anything is called, so a hostile pickle runs no code.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from collections import OrderedDict, defaultdict
from typing import IO, TYPE_CHECKING, Any, Dict, Union

if TYPE_CHECKING:
    from .text import Tokenizer

__all__ = ["load_keras_tokenizer"]

# Where the Tokenizer class has lived across Keras / TF releases.
_TOKENIZER_MODULES = frozenset({
    "keras_preprocessing.text",
    "keras.preprocessing.text",
    "keras.src.preprocessing.text",
    "keras.legacy.preprocessing.text",
    "keras.src.legacy.preprocessing.text",
    "keras._legacy.preprocessing.text",
    "tensorflow.keras.preprocessing.text",
    "tensorflow.python.keras.preprocessing.text",
    "tf_keras.preprocessing.text",
    "tf_keras.src.preprocessing.text",
})


class _PickledTokenizer:
    """Receives the pickled instance's ``__dict__`` (BUILD without ``__setstate__``)."""


def _reconstructor(cls: Any, base: Any, state: Any) -> _PickledTokenizer:
    # copyreg._reconstructor(cls, object, None) is how protocols 0/1 make an instance;
    # anything else it could be asked to build is refused.
    if cls is not _PickledTokenizer or base is not object or state is not None:
        raise ValueError("refusing copyreg._reconstructor for anything but the Tokenizer")
    return _PickledTokenizer()


_SAFE = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("builtins", "int"): int,
    ("__builtin__", "int"): int,
    ("__builtin__", "long"): int,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name == "Tokenizer" and module in _TOKENIZER_MODULES:
            return _PickledTokenizer
        try:
            return _SAFE[(module, name)]
        except KeyError:
            raise ValueError(f"refusing to load global {module}.{name} from a Tokenizer "
                             "pickle: only the Keras Tokenizer classes and plain containers "
                             "are allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError("refusing a persistent id in a Tokenizer pickle")


def load_keras_tokenizer(path_or_file: Union[str, "os.PathLike[str]", bytes, bytearray,
                                             memoryview, IO[bytes]]) -> "Tokenizer":
    """Read a pickled legacy Keras ``Tokenizer`` into a :class:`fastembed.Tokenizer`.

    Works without Keras/TensorFlow installed, for Tokenizers of
    ``keras_preprocessing.text``, ``keras.preprocessing.text``,
    ``tensorflow.keras.preprocessing.text`` and ``tf_keras.preprocessing.text``.

    Parameters
    ----------
    path_or_file : str, path-like, bytes or binary file object
        A path to the pickle, the pickle's bytes, or an open binary file.

    Returns
    -------
    fastembed.Tokenizer
        Encodes (``texts_to_sequences``, ``texts_to_matrix``...) exactly as the
        pickled Tokenizer did; counts and indices are carried over.

    Raises
    ------
    ValueError
        The pickle holds any global other than the Tokenizer class and the
        containers it uses (nothing in it is executed), is not a Tokenizer, or is
        malformed.
    """
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        f: IO[bytes] = io.BytesIO(bytes(path_or_file))
        where = "<bytes>"
        close = False
    elif isinstance(path_or_file, (str, os.PathLike)):
        where = os.fspath(path_or_file)
        f = open(where, "rb")
        close = True
    elif hasattr(path_or_file, "read"):
        f = path_or_file
        where = getattr(path_or_file, "name", "<file>")
        close = False
    else:
        raise TypeError("load_keras_tokenizer takes a path, bytes or a binary file; got "
                        f"{type(path_or_file).__name__}")
    try:
        try:
            obj = _RestrictedUnpickler(f, encoding="utf-8").load()
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        except RecursionError:
            raise ValueError(f"{where}: pickle nested too deeply") from None
        except Exception as e:  # truncated/corrupt streams raise many types
            raise ValueError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None
    finally:
        if close:
            f.close()
    if not isinstance(obj, _PickledTokenizer):
        raise ValueError(f"{where}: the pickle holds a {type(obj).__name__}, not a Keras "
                         "Tokenizer")
    return _to_fastembed(vars(obj), where)


def _to_fastembed(state: Dict[str, Any], where: str) -> "Tokenizer":
    from .text import tokenizer_from_json

    if state.get("analyzer") is not None:
        raise ValueError(f"{where}: a Tokenizer with a custom analyzer cannot be loaded")
    config: Dict[str, Any] = {}
    for key, default in (("num_words", None), ("filters", None), ("lower", True),
                         ("split", " "), ("char_level", False), ("oov_token", None),
                         ("document_count", 0)):
        if key in state:
            config[key] = state[key]
        elif default is not None or key in ("num_words", "oov_token"):
            config[key] = default
    if config.get("filters") is None:
        config.pop("filters", None)
    try:
        for key in ("word_counts", "word_docs", "index_docs", "index_word", "word_index"):
            value = state.get(key, {})
            if not isinstance(value, dict):
                raise ValueError(f"{key} is a {type(value).__name__}, not a dict")
            config[key] = json.dumps(dict(value))
        # The JSON route re-validates every field (types, index_word == inverse of
        # word_index, the OOV token's place) exactly as for tokenizer_from_json.
        return tokenizer_from_json(json.dumps({"class_name": "Tokenizer", "config": config}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: malformed Tokenizer pickle: {e}") from None
