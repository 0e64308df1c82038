"""Keras 3's ``TextVectorization`` and ``StringLookup``, without TensorFlow.

Same arguments, same vocabulary, same numbers as ``keras.layers.TextVectorization``
and ``keras.layers.StringLookup`` of Keras 3 (which run TensorFlow underneath), with
numpy arrays in and out.  The per-token work (standardize, split, n-grams, counting,
lookup) runs in the Cython module ``fastembed._textvec``; this module holds the
rules about special tokens, shapes and output modes.  Every rule that had to be
found by running Keras 3.15.1 + TensorFlow 2.21 is listed in ``docs/keras3_text.md``.
"""
from __future__ import annotations

import json
import os
from typing import (Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple,
                    TypeVar, Union)

import numpy as np
import numpy.typing as npt

from . import _textvec
from ._interrupts import deferred

__all__ = ["TextVectorization", "StringLookup"]

#: What the layers take: a str (or bytes), a list/tuple of them, a numpy string
#: array (or a tensor with ``.numpy()``).
TextInput = Union[str, bytes, Sequence[Any], npt.NDArray[Any]]


class SparseRows(Protocol):
    """What ``sparse=True`` returns (a ``scipy.sparse.csr_matrix``), as far as the
    annotations go: scipy ships no type information."""

    @property
    def shape(self) -> Tuple[int, ...]: ...

    def toarray(self) -> npt.NDArray[Any]: ...


#: The outputs of the layers: ``int64`` ids, counts or flags, ``float32`` tf-idf
#: rows, one ``int64`` array per document (``ragged=True``, or ``"one_hot"`` of split
#: text), or a sparse matrix (``sparse=True``).
LayerOutput = Union[npt.NDArray[np.int64], npt.NDArray[np.float32],
                    List[npt.NDArray[np.int64]], SparseRows]
_L = TypeVar("_L", bound="_Lookup")

_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")
_NAME_COUNTS: dict[str, int] = {}


def _auto_name(base: str) -> str:
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _norm_mode(output_mode: Any) -> Any:
    if output_mode == "binary":
        return "multi_hot"
    if output_mode == "tf-idf":
        return "tf_idf"
    return output_mode


def _check_choice(value: Any, allowed: Sequence[str], caller: str, arg: str,
                  allow_none: bool = False, allow_callables: bool = False) -> None:
    if value is None and allow_none:
        return
    if allow_callables and callable(value):
        return
    if isinstance(value, str) and value in allowed:
        return
    extra = (" or None" if allow_none else "") + (" or a callable" if allow_callables else "")
    raise ValueError(f"{caller}: `{arg}` must be one of {list(allowed)}{extra}. "
                     f"Received: {arg}={value!r}")


def _as_strings(data: Any, encoding: str, what: str) -> np.ndarray:
    """``data`` as a numpy array of Python ``str`` (object dtype) of the same shape.

    Bytes are decoded with ``encoding``; anything else is a ``TypeError`` naming
    what was given."""
    if isinstance(data, (str, bytes)):
        arr = np.empty((), dtype=object)
        arr[()] = data
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, (list, tuple)):
        arr = np.asarray(data, dtype=object) if len(data) else np.empty((0,), dtype=object)
        if arr.dtype != object:  # nested lists numpy could not keep as objects
            arr = arr.astype(object)
    elif hasattr(data, "numpy") and callable(data.numpy):  # a tf / torch-like tensor
        arr = np.asarray(data.numpy())
    else:
        raise TypeError(f"{what} must be a str, a list/tuple of str or a numpy array of "
                        f"strings; got {type(data).__name__}")
    kind = arr.dtype.kind
    if kind == "U":
        out = np.empty(arr.shape, dtype=object)
        if arr.size:
            out.ravel()[:] = arr.ravel().tolist()
        return out
    if kind == "S":
        out = np.empty(arr.shape, dtype=object)
        if arr.size:
            out.ravel()[:] = [b.decode(encoding) for b in arr.ravel().tolist()]
        return out
    if kind == "O":
        flat = arr.ravel().tolist()
        if any(type(x) is not str for x in flat):
            fixed = []
            for i, x in enumerate(flat):
                if isinstance(x, str):
                    fixed.append(str(x))
                elif isinstance(x, (bytes, np.bytes_)):
                    fixed.append(bytes(x).decode(encoding))
                else:
                    raise TypeError(f"{what} must hold strings; item {i} is "
                                    f"{type(x).__name__}: {x!r:.60}")
            flat = fixed
        out = np.empty(arr.shape, dtype=object)
        if arr.size:
            out.ravel()[:] = flat
        return out
    if arr.size == 0 and kind == "f":  # np.asarray([]) is float64: an empty batch
        return np.empty(arr.shape, dtype=object)
    raise TypeError(f"{what} must hold strings; got a numpy array of dtype {arr.dtype}")


def _is_batch_stream(data: Any) -> bool:
    """Keras' test for 'an iterable of batches' in ``adapt``."""
    return hasattr(data, "__iter__") and not isinstance(data, (list, tuple, np.ndarray, str, bytes))


def _progress(it: Iterable[Any], verbose: bool, total: Optional[int], desc: str
              ) -> Iterable[Any]:
    if not verbose:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc, unit="batch")


def _scipy_sparse() -> Any:
    try:
        import scipy.sparse as sp
    except ImportError as e:
        raise ImportError("sparse=True needs scipy (pip install scipy) for its "
                          "scipy.sparse.csr_matrix output") from e
    return sp


def _misplaced_special(what: str, token: str, vocab: List[Any], specials: List[Any]
                       ) -> ValueError:
    """Keras' error for a special token (``what``: "mask" or "OOV") found after the
    place reserved for it in a vocabulary."""
    where = max(i for i, t in enumerate(vocab) if t == token)
    return ValueError(
        f"Found reserved {what} token at unexpected location in `vocabulary`. Note that "
        "passed `vocabulary` does not need to include the OOV and mask tokens. Either "
        "remove all mask and OOV tokens, or include them only at the start of the "
        f"vocabulary in precisely this order: {specials}. Received: "
        f"{what.lower()}_token={token} at vocabulary index [{where}]")


class _Lookup:
    """The state and rules shared by both layers: Keras' ``IndexLookup`` for strings."""

    _caller = "StringLookup"

    _default_name: str

    def _init_lookup(self, *, max_tokens: Optional[int], num_oov_indices: int,
                     mask_token: Optional[str], oov_token: Optional[str], vocabulary: Any,
                     idf_weights: Any, invert: bool, output_mode: str,
                     pad_to_max_tokens: bool, sparse: bool, encoding: str,
                     name: Optional[str], salt: Optional[int] = None,
                     vocabulary_size: Optional[int] = None,
                     has_input_vocabulary: Optional[bool] = None,
                     oov_method: str = "floormod") -> None:
        caller = self._caller
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"If set, `max_tokens` must be greater than 1. "
                             f"Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError("If pad_to_max_tokens is True, must set `max_tokens`. "
                             f"Received: max_tokens={max_tokens}")
        if not isinstance(num_oov_indices, (int, np.integer)) or num_oov_indices < 0:
            raise ValueError("`num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices}")
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{caller}: `oov_method` must be 'floormod' or 'farmhash'. "
                             f"Received: oov_method={oov_method!r}")
        if salt is not None:
            # Keras then hashes with tf.strings.to_hash_bucket_strong (keyed SipHash).
            raise NotImplementedError("StringLookup(salt=...) is not supported by fastembed")
        output_mode = _norm_mode(output_mode)
        _check_choice(output_mode, _MODES, caller, "output_mode")
        if invert and output_mode != "int":
            raise ValueError("`output_mode` must be `'int'` when `invert` is true. "
                             f"Received: output_mode={output_mode}")
        if sparse and output_mode == "int":
            raise ValueError("`sparse` may only be true if `output_mode` is `'one_hot'`, "
                             "`'multi_hot'`, `'count'` or `'tf_idf'`. "
                             f"Received: sparse={sparse} and output_mode={output_mode}")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError("`idf_weights` should only be set if `output_mode` is "
                             f"`'tf_idf'`. Received: idf_weights={idf_weights} and "
                             f"output_mode={output_mode}")
        for tok, arg in ((mask_token, "mask_token"), (oov_token, "oov_token")):
            if tok is not None and not isinstance(tok, str):
                raise TypeError(f"{caller}: `{arg}` must be a str or None; got "
                                f"{type(tok).__name__}")
        self.name = name if name is not None else _auto_name(self._default_name)
        self.max_tokens = max_tokens
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.invert = bool(invert)
        self.output_mode = output_mode
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.sparse = bool(sparse)
        self.encoding = encoding
        self.oov_method = oov_method
        self.salt = salt
        self.input_vocabulary = vocabulary if not isinstance(vocabulary, str) else None
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = (vocabulary is not None if has_input_vocabulary is None
                                      else bool(has_input_vocabulary))
        self._frozen_vocab_size = vocabulary_size
        self._tokens: Optional[List[str]] = None  # learned/set tokens, specials excluded
        self._table: Optional[_textvec.Table] = None   # over _tokens
        self._idf: Optional[np.ndarray] = None   # float32, one weight per output column
        if output_mode == "tf_idf":
            if self._has_input_vocabulary and idf_weights is None:
                raise ValueError("When specifying the `vocabulary` argument, in TF-IDF "
                                 "output mode, the `idf_weights` argument must also be "
                                 "provided.")
            if idf_weights is not None:
                self._idf = np.asarray(idf_weights, dtype=np.float32)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # ---- indices -------------------------------------------------------------
    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def _depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size

    # ---- vocabulary ----------------------------------------------------------
    def vocabulary_size(self) -> int:
        """Size of the vocabulary, special tokens included (Keras' definition)."""
        return self._token_start_index() + (len(self._tokens) if self._tokens is not None else 0)

    def get_vocabulary(self, include_special_tokens: bool = True) -> List[Optional[str]]:
        """The vocabulary as a list of str, by index.

        Parameters
        ----------
        include_special_tokens : bool
            With the mask token (``"int"`` mode only) and the OOV token(s) first.
        """
        tokens = list(self._tokens) if self._tokens is not None else []
        if not include_special_tokens:
            return tokens
        specials = [self.oov_token] * self._token_start_index()
        if self.mask_token is not None and self.output_mode == "int" and specials:
            specials[0] = self.mask_token
        return specials + tokens

    def _check_vocab_size_unchanged(self, new_size: int) -> None:
        if self.output_mode == "int" or self.pad_to_max_tokens:
            return
        if self._frozen_vocab_size is not None and new_size != self._frozen_vocab_size:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, "
                "the vocabulary size cannot be changed after the layer is called. Old vocab "
                f"size is {self._frozen_vocab_size}, new vocab size is {new_size}")

    def _build_table(self, tokens: List[str]) -> _textvec.Table:
        table = _textvec.Table()
        start = self._token_start_index()
        for t in tokens:
            table.add_str(t)
        if len(table) != len(tokens):  # callers have checked; a guard, not a rule
            raise ValueError("the vocabulary has repeated tokens")
        for e in range(len(tokens)):
            table.set_value(e, start + e)
        if self.mask_token is not None and not self.invert:
            e = table.add_str(self.mask_token)
            # Keras: the mask maps to 0 in "int" mode, and to int64 max (dropped by the
            # bincount, a zero row for one_hot) in the other modes.
            table.set_value(e, 0 if self.output_mode == "int" else -2)
        return table

    def set_vocabulary(self, vocabulary: Union[Sequence[str], np.ndarray, str],
                       idf_weights: Optional[Union[Sequence[float], np.ndarray]] = None) -> None:
        """Replace the vocabulary (and the idf weights in ``"tf_idf"`` mode).

        Parameters
        ----------
        vocabulary : sequence of str, or a path
            Tokens, optionally preceded by exactly the special tokens (mask, then
            OOV) in Keras' order.  A str is a vocabulary file, one token per line.
        idf_weights : sequence of float, optional
            Required in ``"tf_idf"`` mode, refused otherwise; one per entry of
            ``vocabulary``.

        Raises
        ------
        ValueError
            Empty vocabulary, repeated tokens, a special token at the wrong place,
            more than ``max_tokens`` entries, idf weights of the wrong length.  The
            layer is unchanged after any error.
        """
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError("`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                             f"Received: output_mode={self.output_mode} and "
                             f"idf_weights={idf_weights}")
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a "
                                 "vocabulary from file.")
            path = os.fspath(vocabulary)
            if not os.path.exists(path):
                raise ValueError(f"Vocabulary file {path} does not exist.")
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            vocab = lines
        else:
            vocab = _as_strings(vocabulary, self.encoding, "vocabulary")
            if vocab.ndim != 1:
                raise ValueError(f"`vocabulary` must be 1-D; got shape {vocab.shape}")
            vocab = vocab.tolist()
        if len(vocab) == 0:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocab}")
        oov_start = self._oov_start_index()
        token_start = self._token_start_index()
        specials = [self.mask_token] * oov_start + [self.oov_token] * self.num_oov_indices
        found_specials = vocab[:token_start] == specials
        tokens = vocab[token_start:] if found_specials else vocab
        seen: Dict[str, int] = {}
        for t in tokens:
            seen[t] = seen.get(t, 0) + 1
        repeated = [t for t, c in seen.items() if c > 1]
        if repeated:
            raise ValueError("The passed vocabulary has at least one repeated term. Please "
                             f"uniquify your dataset. The repeated terms are: {repeated}")
        if self.mask_token is not None and self.mask_token in seen:
            raise _misplaced_special("mask", self.mask_token, vocab, specials)
        if self.oov_token is not None and self.invert and self.oov_token in seen:
            raise _misplaced_special("OOV", self.oov_token, vocab, specials)
        new_size = token_start + len(tokens)
        if self.max_tokens is not None and new_size > self.max_tokens:
            raise ValueError("Attempted to set a vocabulary larger than the maximum vocab "
                             f"size. Received vocabulary size is {new_size}; `max_tokens` "
                             f"is {self.max_tokens}.")
        idf = self._idf
        if self.output_mode == "tf_idf":
            w = np.asarray(idf_weights, dtype=np.float64)
            if len(vocab) != len(w):
                raise ValueError("`idf_weights` must be the same length as vocabulary. "
                                 f"len(idf_weights) is {len(w)}; len(vocabulary) is "
                                 f"{len(vocab)}")
            if w.ndim != 1:
                raise ValueError("TF-IDF data must be a 1-index array. "
                                 f"Received: type(idf_weights)={type(idf_weights)}")
            front = 0 if found_specials else token_start
            front_value = 0.0 if found_specials else float(np.average(w))
            back = (self.max_tokens - front - len(w)
                    if self.pad_to_max_tokens and self.max_tokens is not None else 0)
            idf = np.concatenate([np.full(front, front_value), w, np.zeros(max(back, 0))])
            idf = idf.astype(np.float32)
        self._check_vocab_size_unchanged(new_size)
        table = self._build_table(tokens)
        with deferred():
            self._tokens = tokens
            self._table = table
            self._idf = idf
            if self._frozen_vocab_size is None or self.output_mode == "int" or self.pad_to_max_tokens:
                self._frozen_vocab_size = new_size

    # ---- adapt ---------------------------------------------------------------
    def _finalize(self, counter: _textvec.Table) -> None:
        """Keras' ``finalize_state``: rank by count, ties by token descending."""
        if self._has_input_vocabulary or len(counter) == 0:
            return  # Keras keeps the previous vocabulary when nothing was counted
        counts, dfs = counter.counts()
        drop = [counter.get(t) for t in (self.mask_token, self.oov_token) if t is not None]
        keep = np.ones(len(counts), dtype=bool)
        for e in drop:
            if e >= 0:
                keep[e] = False
        entries = np.flatnonzero(keep)
        token_start = self._token_start_index()
        limit = None
        if self.max_tokens:
            limit = max(self.max_tokens - token_start, 0)
        c = counts[entries]
        if limit is not None and limit < len(entries):
            # Only candidates at or above the limit-th count can make the cut; ties
            # at that count are decided by the token, so they all stay in the sort.
            kth = np.partition(c, len(c) - limit)[len(c) - limit] if limit > 0 else c.max() + 1
            cand = c >= kth
            entries, c = entries[cand], c[cand]
        toks = counter.tokens(entries.tolist())
        # Count descending, ties by token descending (Keras: lexsort of (tokens, counts),
        # reversed).  Code-point order of str is the byte order of their UTF-8, which
        # TF compares.  Equal counts are grouped by a stable numpy sort, then each group
        # is sorted by str comparison (no fixed-width string array).
        by_count = np.argsort(-c, kind="stable")
        cs = c[by_count]
        bounds = np.flatnonzero(np.diff(cs)) + 1
        order_list: List[int] = []
        for grp in np.split(by_count, bounds) if len(cs) else []:
            if len(grp) == 1:
                order_list.append(int(grp[0]))
            else:
                order_list.extend(sorted(grp.tolist(), key=toks.__getitem__, reverse=True))
            if limit is not None and len(order_list) >= limit:
                break
        order = np.array(order_list[:limit] if limit is not None else order_list, dtype=np.int64)
        tokens = [toks[i] for i in order_list[:len(order)]]
        new_size = token_start + len(tokens)
        self._check_vocab_size_unchanged(new_size)
        idf = self._idf
        if self.output_mode == "tf_idf":
            df = dfs[entries[order]]
            n = counter.ndocs
            w = np.log(1.0 + n / (1.0 + df.astype(np.float64))).astype(np.float32)
            # tf.reduce_mean over float32 weights.
            mean = np.mean(w, dtype=np.float32) if len(w) else np.float32("nan")
            parts = [np.full(token_start, mean, dtype=np.float32), w]
            if self.pad_to_max_tokens and self.max_tokens is not None:
                parts.append(np.zeros(self.max_tokens - token_start - len(w), np.float32))
            idf = np.concatenate(parts).astype(np.float32)
        table = self._build_table(tokens)
        with deferred():
            self._tokens = tokens
            self._table = table
            self._idf = idf
            self._frozen_vocab_size = new_size

    # ---- encoding ------------------------------------------------------------
    def _require_vocab(self) -> None:
        if self.output_mode != "int" and not self.pad_to_max_tokens and \
                self._frozen_vocab_size is None:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, "
                "you must set the layer's vocabulary before calling it. Either pass a "
                "`vocabulary` argument to the layer, or call `adapt` with some sample data.")
        if self._table is None:
            raise RuntimeError(f"{self._caller} '{self.name}' has no vocabulary: call adapt() "
                               "or set_vocabulary() first (Keras: 'Table not initialized').")
        if self.output_mode == "tf_idf" and self._idf is None:
            raise ValueError("When `output_mode` is `'tf_idf'`, `idf_weights` must be provided.")

    def _lookup(self, scanner: _textvec.Scanner, docs: List[Any], pretok: bool
                ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        found = _textvec.lookup_docs(scanner, self._table, docs, pretok,
                                     self._oov_start_index(), self.num_oov_indices)
        if found[0] is None:
            _, tok = found[1]
            raise ValueError("When `num_oov_indices=0` all inputs should be in vocabulary, "
                             f"found OOV values [{tok!r}], consider setting "
                             "`num_oov_indices=1`.")
        return found[0], found[1]

    def _bag(self, ids: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64], binary: bool
             ) -> Any:
        """(batch, depth) counts (or flags), dense or CSR; tf_idf weighted."""
        depth = self._depth()
        nrows = len(offsets) - 1
        tfidf = self.output_mode == "tf_idf"
        if self.sparse:
            sp = _scipy_sparse()
            rows = np.repeat(np.arange(nrows, dtype=np.int64), np.diff(offsets))
            ok = (ids >= 0) & (ids < depth)
            m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.int64), (rows[ok], ids[ok])),
                              shape=(nrows, depth))
            m.sum_duplicates()
            m.sort_indices()
            if binary:
                m.data[:] = 1
            if tfidf:
                data = m.data.astype(np.float32) * self._idf[m.indices]
                m = sp.csr_matrix((data, m.indices, m.indptr), shape=(nrows, depth))
            return m
        if tfidf:
            out = np.zeros((nrows, depth), dtype=np.float32)
            _textvec.fill_tfidf(ids, offsets, np.ascontiguousarray(self._idf, np.float32), out)
            return out
        out = np.zeros((nrows, depth), dtype=np.int64)
        _textvec.fill_counts(ids, offsets, out, binary)
        return out

    def _one_hot(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        depth = self._depth()
        flat = ids.ravel()
        out = np.zeros((flat.size, depth), dtype=np.int64)
        ok = (flat >= 0) & (flat < depth)
        out[np.flatnonzero(ok), flat[ok]] = 1
        return out.reshape(ids.shape + (depth,))

    # ---- config / saving -----------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {"vocabulary": self.get_vocabulary(include_special_tokens=True)
                if self._tokens is not None else None,
                "idf_weights": self._idf.tolist() if self._idf is not None else None}

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the layer (config, vocabulary, idf weights) to a JSON file.

        ``type(layer).load(path)`` restores it.  Callables given as
        ``standardize``/``split`` cannot be saved (``ValueError``).
        """
        cfg = self.get_config()
        for k in ("standardize", "split"):
            if callable(cfg.get(k)):
                raise ValueError(f"cannot save a layer whose `{k}` is a callable")
        doc = {"class_name": type(self).__name__, "config": cfg, "state": self._state()}
        tmp = os.fspath(path) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls: "type[_L]", path: Union[str, "os.PathLike[str]"]) -> _L:
        """Read a layer written by :meth:`save`."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            cfg, state = doc["config"], doc["state"]
            if doc.get("class_name") != cls.__name__:
                raise ValueError(f"holds a {doc.get('class_name')!r}, not a {cls.__name__}")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read a saved {cls.__name__}: {e}") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a saved {cls.__name__} ({e})") from e
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        layer = cls.from_config(cfg)
        if state.get("vocabulary") is not None and layer._tokens is None:
            layer._restore(state["vocabulary"], state.get("idf_weights"))
        return layer

    def save_own_variables(self, store: Dict[str, Any]) -> None:
        """Keras' variable hook: ``store["idf_weights"]`` in ``"tf_idf"`` mode."""
        if self.output_mode == "tf_idf" and self._idf is not None:
            store["idf_weights"] = self._idf.copy()

    def load_own_variables(self, store: Dict[str, Any]) -> None:
        """Read what :meth:`save_own_variables` (or Keras) stored; call before
        :meth:`load_assets`, as Keras does."""
        if self.output_mode == "tf_idf":
            idf = np.asarray(store["idf_weights"], dtype=np.float32)
            if idf.ndim != 1:
                raise ValueError(f"idf_weights must be 1-D; got shape {idf.shape}")
            with deferred():
                self._idf = idf

    def save_assets(self, dir_path: Union[str, "os.PathLike[str]"]) -> None:
        """Keras' asset file: ``dir_path/vocabulary.txt``, one token per line
        (special tokens included); nothing when the vocabulary was given to the
        constructor (it is in the config)."""
        if self.input_vocabulary is not None or self._tokens is None:
            return
        with open(os.path.join(os.fspath(dir_path), "vocabulary.txt"), "w",
                  encoding="utf-8") as f:
            f.write("\n".join(self.get_vocabulary()))

    def load_assets(self, dir_path: Union[str, "os.PathLike[str]"]) -> None:
        """Read ``vocabulary.txt`` written by :meth:`save_assets` (or by Keras), keeping
        the idf weights the layer has."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(os.fspath(dir_path), "vocabulary.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        idf = self._idf.tolist() if self.output_mode == "tf_idf" and self._idf is not None \
            else None
        self._restore(lines, idf)

    def _restore(self, vocabulary: Any, idf_weights: Any) -> None:
        had = self._has_input_vocabulary
        frozen = self._frozen_vocab_size
        self._frozen_vocab_size = None
        try:
            self.set_vocabulary(vocabulary, idf_weights)
        except Exception:
            self._frozen_vocab_size = frozen
            raise
        self._has_input_vocabulary = had

    def __getstate__(self) -> Dict[str, Any]:
        d = self.__dict__.copy()
        d.pop("_table", None)
        d.pop("_scanner", None)
        return d

    def __setstate__(self, d: Dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._table = self._build_table(self._tokens) if self._tokens is not None else None
        if hasattr(self, "_make_scanner"):
            self._scanner = self._make_scanner()


class StringLookup(_Lookup):
    """Maps strings to integer indices (or back): Keras 3's ``StringLookup``.

    Parameters are Keras' (see ``keras.layers.StringLookup``): ``max_tokens``,
    ``num_oov_indices``, ``mask_token``, ``oov_token``, ``vocabulary``,
    ``idf_weights``, ``invert``, ``output_mode`` (``"int"``, ``"one_hot"``,
    ``"multi_hot"``, ``"count"``, ``"tf_idf"``), ``pad_to_max_tokens``, ``sparse``,
    ``encoding``, ``name``.  ``salt`` (keyed SipHash buckets) is not supported.

    Outputs are numpy arrays: ``int64`` for ``"int"``, ``"one_hot"``,
    ``"multi_hot"`` and ``"count"``, ``float32`` for ``"tf_idf"``, a numpy array of
    ``str`` for ``invert=True``; ``sparse=True`` gives a ``scipy.sparse.csr_matrix``.
    """

    _caller = "StringLookup"
    _default_name = "string_lookup"

    def __init__(self, max_tokens: Optional[int] = None, num_oov_indices: int = 1,
                 mask_token: Optional[str] = None, oov_token: str = "[UNK]",
                 vocabulary: Optional[Union[Sequence[str], np.ndarray, str]] = None,
                 idf_weights: Optional[Sequence[float]] = None, invert: bool = False,
                 output_mode: str = "int", pad_to_max_tokens: bool = False,
                 sparse: bool = False, encoding: str = "utf-8", name: Optional[str] = None,
                 salt: Optional[int] = None, **kwargs: Any) -> None:
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        kwargs.pop("vocabulary_dtype", None)
        extra = {k: kwargs.pop(k) for k in ("vocabulary_size", "has_input_vocabulary",
                                             "oov_method") if k in kwargs}
        if kwargs:
            raise ValueError(f"Unrecognized keyword argument(s): {kwargs}")
        self._scanner = self._make_scanner()
        self._init_lookup(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                          mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                          idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                          pad_to_max_tokens=pad_to_max_tokens, sparse=sparse,
                          encoding=encoding, name=name, salt=salt, **extra)

    def _make_scanner(self) -> _textvec.Scanner:
        # Each string is one token, taken as it is.
        return _textvec.Scanner(False, False, 0, None)

    def get_config(self) -> Dict[str, Any]:
        """Keras' config keys; ``StringLookup.from_config`` reads Keras' configs too."""
        return {"name": self.name, "trainable": True, "dtype": "string",
                "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token,
                "mask_token": self.mask_token, "output_mode": self.output_mode,
                "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "idf_weights": _listify(self.input_idf_weights),
                "vocabulary": _listify(self.input_vocabulary),
                "vocabulary_size": self._frozen_vocab_size, "oov_method": self.oov_method,
                "salt": self.salt, "encoding": self.encoding}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "StringLookup":
        return cls(**config)

    def _docs_for_adapt(self, data: Any, batch: bool) -> Tuple[List[Any], bool]:
        arr = _as_strings(data, self.encoding, "StringLookup.adapt data")
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        if arr.ndim == 1:
            # adapt(array) makes every string a document; a streamed 1-D batch is
            # one document (Keras' update_state expands it on the other axis).
            if batch:
                return [arr.tolist()], True
            return arr.tolist(), False
        if arr.ndim == 2:
            return arr.tolist(), True
        return [row for row in arr.reshape(arr.shape[0], -1).tolist()], True

    def adapt(self, data: Any, steps: Optional[int] = None, *, batch_size: Optional[int] = None,
              verbose: bool = False) -> None:
        """Learn the vocabulary (and idf weights) from ``data``, replacing the old one.

        Parameters
        ----------
        data : array-like of str, or an iterable of such batches
            A list/tuple/array: every string (1-D) or every row (2-D) is a document.
            Any other iterable is a stream of batches, read once.
        steps : int, optional
            Read at most this many batches of a stream.
        batch_size : int, optional
            Documents per native call for an in-memory ``data`` (progress and Ctrl-C
            granularity only; results do not depend on it).
        verbose : bool
            A ``tqdm`` progress bar when tqdm is installed.
        """
        _adapt(self, data, steps, batch_size, verbose)

    def __call__(self, inputs: Any) -> Union[LayerOutput, npt.NDArray[np.str_]]:
        if self.invert:
            return self._invert(inputs)
        self._require_vocab()
        arr = _as_strings(inputs, self.encoding, "StringLookup input")
        ids, _ = self._lookup(self._scanner, arr.ravel().tolist(), False)
        ids = ids.reshape(arr.shape)
        mode = self.output_mode
        if mode == "int":
            return ids
        if mode == "one_hot":
            if ids.ndim > 1 and ids.shape[-1] == 1:
                ids = ids.reshape(ids.shape[:-1])
            if self.sparse:
                sp = _scipy_sparse()
                return sp.csr_matrix(self._one_hot(ids).reshape(-1, self._depth()))
            return self._one_hot(ids)
        if ids.ndim > 2:
            raise ValueError("When output_mode is not `'int'`, maximum supported output rank "
                             f"is 2. Received output_mode {mode} and input shape {ids.shape}, "
                             f"which would result in output rank {ids.ndim}.")
        single = ids.ndim < 2
        rows = ids.reshape(1, -1) if single else ids
        offsets = np.arange(0, rows.size + 1, max(rows.shape[1], 1), dtype=np.int64)
        if rows.shape[1] == 0:
            offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        out = self._bag(np.ascontiguousarray(rows.ravel()), offsets, mode == "multi_hot")
        if single and not self.sparse:
            return out[0]
        return out

    def _invert(self, inputs: Any) -> npt.NDArray[np.str_]:
        if self._tokens is None:
            raise RuntimeError(f"StringLookup '{self.name}' has no vocabulary: call adapt() "
                               "or set_vocabulary() first.")
        arr = np.asarray(inputs)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"StringLookup(invert=True) takes integer ids; got an array of "
                            f"dtype {arr.dtype}")
        vocab = np.array(self.get_vocabulary(), dtype=object)
        ok = (arr >= 0) & (arr < len(vocab))
        out = np.full(arr.shape, self.oov_token, dtype=object)
        out[ok] = vocab[arr[ok]]
        if self.mask_token is not None:
            out[arr == 0] = self.mask_token
        return out.astype(str)


def _listify(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def _adapt(layer: "_Lookup", data: Any, steps: Optional[int], batch_size: Optional[int],
           verbose: bool) -> None:
    if layer._has_input_vocabulary:
        raise ValueError(f"Cannot adapt layer '{layer.name}' after setting a static "
                         "vocabulary via `vocabulary` argument or `set_vocabulary()` method.")
    counting = _Counting(layer)
    if _is_batch_stream(data):
        total = steps
        if total is None and hasattr(data, "__len__"):
            total = len(data)
        for i, batch in enumerate(_progress(data, verbose, total, f"adapt {layer.name}")):
            if steps is not None and i >= steps:
                break
            counting.add(*layer._docs_for_adapt(batch, True))
    else:
        docs, pretok = layer._docs_for_adapt(data, False)
        # Ctrl-C is seen between batches (the parallel count runs without the GIL).
        step = int(batch_size) if batch_size else 16384
        if step <= 0:
            raise ValueError(f"`batch_size` must be positive; got {batch_size}")
        chunks = range(0, len(docs), step)
        for a in _progress(chunks, verbose, len(chunks), f"adapt {layer.name}"):
            counting.add(docs[a:a + step], pretok)
    layer._finalize(counting.result())


# Below this many documents a batch is counted on the calling thread alone.
_PARALLEL_MIN_DOCS = 4096


class _Counting:
    """The counts of one adapt call: one table per thread, kept over all batches and
    merged once at the end (merging per batch cost as much as the threads saved)."""

    def __init__(self, layer: "_Lookup") -> None:
        self.layer = layer
        self.want_df = layer.output_mode == "tf_idf"
        self.tables = [_textvec.Table()]
        self.scanners: List[_textvec.Scanner] = []

    def add(self, docs: List[Any], pretok: bool) -> None:
        from ._core import get_num_threads

        n = get_num_threads()
        if n > 1 and not pretok and len(docs) >= _PARALLEL_MIN_DOCS and \
                _textvec.all_str(docs):
            while len(self.tables) < n:
                self.tables.append(_textvec.Table())
            while len(self.scanners) < n:
                self.scanners.append(self.layer._make_scanner())
            _textvec.count_docs_parallel(self.tables[:n], self.scanners[:n], docs,
                                         self.want_df)
        else:
            _textvec.count_docs(self.layer._scanner, self.tables[0], docs, pretok,
                                self.want_df)

    def result(self) -> _textvec.Table:
        main = self.tables[0]
        for t in self.tables[1:]:
            _textvec.merge_tables(main, t)
        return main


class TextVectorization(_Lookup):
    """Turns text into token ids, multi-hot/count/tf-idf vectors: Keras 3's
    ``TextVectorization``, without TensorFlow.

    Parameters
    ----------
    max_tokens : int, optional
        Vocabulary size limit, special tokens included.
    standardize : {"lower_and_strip_punctuation", "lower", "strip_punctuation"}, None or callable
        As Keras/TF do it: lower-casing is ASCII only (TF's ``tf.strings.lower``
        without an encoding); punctuation stripping deletes the ASCII characters
        ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``.  A callable takes one document
        (``str``) and returns a ``str`` (Keras calls it on a string tensor).
    split : {"whitespace", "character"}, None or callable
        ``"whitespace"`` splits on ASCII whitespace (space, ``\\t\\n\\v\\f\\r``) only;
        ``"character"`` on Unicode code points; ``None`` keeps the whole string as
        one token.  A callable takes one standardized document and returns a
        list of str.
    ngrams : int or tuple of int, optional
        ``n`` means ``(1, ..., n)``.  N-grams join tokens with one space.
    output_mode : {"int", "multi_hot", "count", "tf_idf", "one_hot"}
    output_sequence_length : int, optional
        ``"int"`` only: pad with 0 / truncate at the end to this length.
    pad_to_max_tokens : bool
        Vector outputs are ``max_tokens`` wide.
    vocabulary, idf_weights : optional
        A fixed vocabulary (list, array or file path) and, for ``"tf_idf"``, weights.
    sparse : bool
        Vector outputs as ``scipy.sparse.csr_matrix`` (needs scipy).
    ragged : bool
        ``"int"`` only: a list of 1-D ``int64`` arrays, one per document.
    encoding : str
        How ``bytes`` inputs are decoded.
    name : str, optional

    Notes
    -----
    Calling the layer takes a str, a list/tuple of str (or bytes) or a numpy string
    array of shape ``(batch,)`` or ``(batch, 1)``.  Outputs: ``int64`` arrays for
    ``"int"``, ``"multi_hot"``, ``"count"`` (and ``"one_hot"``, a list of
    ``(tokens, depth)`` arrays as Keras gives a ragged tensor), ``float32`` for
    ``"tf_idf"``.  See ``docs/keras3_text.md`` for the rules found by running Keras.
    """

    _caller = "TextVectorization"
    _default_name = "text_vectorization"

    def __init__(self, max_tokens: Optional[int] = None,
                 standardize: Union[str, None, Callable[[str], str]] = "lower_and_strip_punctuation",
                 split: Union[str, None, Callable[[str], Iterable[Any]]] = "whitespace",
                 ngrams: Union[int, Tuple[int, ...], None] = None, output_mode: str = "int",
                 output_sequence_length: Optional[int] = None, pad_to_max_tokens: bool = False,
                 vocabulary: Optional[Union[Sequence[str], np.ndarray, str]] = None,
                 idf_weights: Optional[Sequence[float]] = None, sparse: bool = False,
                 ragged: bool = False, encoding: str = "utf-8", name: Optional[str] = None,
                 **kwargs: Any) -> None:
        _check_choice(standardize, _STANDARDIZE, "TextVectorization", "standardize",
                      allow_none=True, allow_callables=True)
        _check_choice(split, _SPLIT, "TextVectorization", "split", allow_none=True,
                      allow_callables=True)
        output_mode = _norm_mode(output_mode)
        _check_choice(output_mode, _MODES, "TextVectorization", "output_mode")
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(i, int) for i in ngrams))):
            raise ValueError("`ngrams` must be None, an integer, or a tuple of integers. "
                             f"Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or
                                         isinstance(output_sequence_length, int)):
            raise ValueError("`output_sequence_length` must be either None or an integer "
                             "when `output_mode` is 'int'. Received: "
                             f"output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError("`output_sequence_length` must not be set if `output_mode` is "
                             f"not 'int'. Received output_sequence_length="
                             f"{output_sequence_length}.")
        if isinstance(output_sequence_length, int) and output_sequence_length < 0:
            raise ValueError("`output_sequence_length` must be >= 0; got "
                             f"{output_sequence_length}")
        if ragged and output_mode != "int":
            raise ValueError("`ragged` must not be true if `output_mode` is `'int'`. "
                             f"Received: ragged={ragged} and output_mode={output_mode}")
        if split is None and ngrams not in (None, 1, (1,)):
            # Keras would form n-grams across the batch axis of the unsplit strings.
            raise ValueError("`ngrams` needs a `split`; got split=None with "
                             f"ngrams={ngrams}")
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        extra = {k: kwargs.pop(k) for k in ("vocabulary_size", "has_input_vocabulary")
                 if k in kwargs}
        if kwargs:
            raise ValueError(f"Unrecognized keyword argument(s): {kwargs}")
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._ragged = bool(ragged)
        self._output_sequence_length = output_sequence_length
        self._scanner = self._make_scanner()
        self._init_lookup(max_tokens=max_tokens, num_oov_indices=1, mask_token="",
                          oov_token="[UNK]", vocabulary=vocabulary, idf_weights=idf_weights,
                          invert=False, output_mode=output_mode,
                          pad_to_max_tokens=pad_to_max_tokens, sparse=sparse,
                          encoding=encoding, name=name, **extra)

    def _make_scanner(self) -> _textvec.Scanner:
        st, sp = self._standardize, self._split
        lower = st in ("lower", "lower_and_strip_punctuation")
        strip = st in ("strip_punctuation", "lower_and_strip_punctuation")
        mode = {None: 0, "whitespace": 1, "character": 2}.get(sp, 0) if not callable(sp) else 0
        return _textvec.Scanner(lower, strip, mode, self._ngrams)

    def get_config(self) -> Dict[str, Any]:
        """Keras' config keys; ``TextVectorization.from_config`` reads Keras' configs."""
        return {"name": self.name, "trainable": True, "dtype": "string",
                "max_tokens": self.max_tokens, "standardize": self._standardize,
                "split": self._split, "ngrams": self._ngrams_arg,
                "output_mode": self.output_mode,
                "output_sequence_length": self._output_sequence_length,
                "pad_to_max_tokens": self.pad_to_max_tokens, "sparse": self.sparse,
                "ragged": self._ragged, "vocabulary": _listify(self.input_vocabulary),
                "idf_weights": _listify(self.input_idf_weights), "encoding": self.encoding,
                "vocabulary_size": self.vocabulary_size()}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "TextVectorization":
        config = dict(config)
        for k in ("standardize", "split"):
            if not (config.get(k) is None or isinstance(config.get(k), str) or callable(config[k])):
                raise ValueError(f"TextVectorization.from_config: a serialized callable "
                                 f"`{k}` ({config[k]!r}) cannot be restored without Keras")
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    # -- documents -------------------------------------------------------------
    def _documents(self, data: Any, what: str) -> Tuple[List[Any], bool, int]:
        """(docs, pretok, ndim): the documents of a batch (standardized/split by
        the callables when those are given) and the rank of the input."""
        if type(data) is list and _textvec.all_str(data):
            docs, ndim = data, 1     # the common case, without a numpy round trip
        else:
            arr = _as_strings(data, self.encoding, what)
            ndim = arr.ndim
            if arr.ndim > 1:
                if arr.ndim == 2 and arr.shape[-1] == 1:
                    arr = arr[:, 0]
                else:
                    raise ValueError("When using `TextVectorization` to tokenize strings, "
                                     "the input rank must be 1 or the last shape dimension "
                                     f"must be 1. Received: inputs.shape={arr.shape} with "
                                     f"rank={arr.ndim}")
            docs = [arr[()]] if ndim == 0 else arr.tolist()
        pretok = False
        if callable(self._standardize):
            docs = [_call_str(self._standardize, d, "standardize") for d in docs]
        if callable(self._split):
            docs = [_call_split(self._split, d) for d in docs]
            pretok = True
        return docs, pretok, ndim

    def _docs_for_adapt(self, data: Any, batch: bool) -> Tuple[List[Any], bool]:
        docs, pretok, _ = self._documents(data, "TextVectorization.adapt data")
        return docs, pretok

    def adapt(self, data: Any, batch_size: Optional[int] = None, steps: Optional[int] = None,
              *, verbose: bool = False) -> None:
        """Learn the vocabulary (and idf weights) from ``data``, replacing the old one.

        Parameters
        ----------
        data : array-like of str, or an iterable of batches
            A list/tuple/array of documents (shape ``(n,)`` or ``(n, 1)``), or any
            other iterable (a generator, a file reader...) yielding such batches,
            read once: a corpus larger than memory streams through.
        batch_size : int, optional
            Documents per native call for an in-memory ``data`` (Keras ignores it;
            here it only sets progress and Ctrl-C granularity).
        steps : int, optional
            Read at most this many batches of a stream.
        verbose : bool
            A ``tqdm`` progress bar when tqdm is installed.

        Notes
        -----
        Ranking is Keras': by count, ties by token in descending code-point order;
        at most ``max_tokens`` entries including ``""`` and ``"[UNK]"``.  If no token
        at all is seen, the previous vocabulary stays (as in Keras).  On any error
        the layer is unchanged.
        """
        _adapt(self, data, steps, batch_size, verbose)

    def __call__(self, inputs: Any) -> LayerOutput:
        self._require_vocab()
        docs, pretok, ndim = self._documents(inputs, "TextVectorization input")
        scalar = ndim == 0
        ids, offsets = self._lookup(self._scanner, docs, pretok)
        mode = self.output_mode
        osl = self._output_sequence_length
        if mode == "int":
            if self._split is None and not pretok:
                # One id per document, in the shape of the input.
                return ids[0] if scalar else (ids.reshape(-1, 1) if ndim == 2 else ids)
            lengths = np.diff(offsets)
            if self._ragged:
                rows = np.split(ids, offsets[1:-1]) if len(docs) else []
                if osl is not None:
                    rows = [r[:osl] for r in rows]
                rows = [np.ascontiguousarray(r) for r in rows]
                return rows[0] if scalar else rows
            width = osl if osl is not None else (int(lengths.max()) if len(lengths) else 0)
            out = np.zeros((len(docs), width), dtype=np.int64)
            _textvec.fill_padded(ids, offsets, out)
            return out[0] if scalar else out
        if mode == "one_hot":
            if self._split is None and not pretok:
                # One token per document: Keras gives a dense (batch, depth) array.
                out = self._one_hot(ids)
                return out[0] if scalar else out
            rows = np.split(ids, offsets[1:-1]) if len(docs) else []
            out = [self._one_hot(r) for r in rows]
            return out[0] if scalar else out
        if self._split is None and ndim <= 1:
            # Unsplit 1-D input is one sample of tokens (Keras encodes rank-1 lookups
            # as a single row), as StringLookup does.
            offsets = np.array([0, len(ids)], dtype=np.int64)
            scalar = True
        out = self._bag(ids, offsets, mode == "multi_hot")
        if scalar and not self.sparse:
            return out[0]
        return out


def _call_str(fn: Callable[[str], Any], doc: str, what: str) -> str:
    r = fn(doc)
    if isinstance(r, bytes):
        r = r.decode("utf-8")
    if not isinstance(r, str):
        raise TypeError(f"`{what}` callable must return a str; got {type(r).__name__}")
    return r


def _call_split(fn: Callable[[str], Any], doc: str) -> List[str]:
    r = fn(doc)
    if isinstance(r, np.ndarray):
        r = r.tolist()
    r = list(r)
    for i, t in enumerate(r):
        if isinstance(t, bytes):
            r[i] = t.decode("utf-8")
        elif not isinstance(t, str):
            raise TypeError(f"`split` callable must return str tokens; got "
                            f"{type(t).__name__}")
    return r
