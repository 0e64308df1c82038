"""Pretrained word vectors: fast loaders and the Keras embedding-matrix recipe.

``load_vectors`` reads GloVe text, word2vec text and binary, and fastText ``.vec``
files with a native parser (large blocks, all threads); ``build_embedding_matrix``
turns a tokenizer's ``word_index`` into the matrix of Keras' "Using pre-trained word
embeddings" example, ready for ``Embedding.from_pretrained``.
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping

from typing import Any, Iterator, Optional

import numpy as np
from numpy.typing import NDArray

from . import _core

__all__ = ["WordVectors", "load_vectors", "build_embedding_matrix", "embedding_coverage"]

_log = logging.getLogger("fastembed")

_FORMATS = ("auto", "glove", "word2vec", "word2vec_binary", "fasttext")


class WordVectors:
    """Word vectors read from a file: ``words`` in file order, ``vectors`` row-aligned.

    Attributes
    ----------
    words : list of str
        The words, in file order (a duplicated word appears once, at its first place).
    vectors : numpy.ndarray
        ``(len(words), dim)`` array; row ``i`` is the vector of ``words[i]``.
    index : dict
        word -> row.
    dim : int
        The vectors' dimension.
    n_duplicates : int
        How many later occurrences of already-seen words were dropped.
    """

    __slots__ = ("words", "vectors", "index", "dim", "n_duplicates", "format", "path")

    words: list[str]
    vectors: NDArray[np.floating[Any]]
    index: dict[str, int]
    dim: int

    def __init__(self, words: list[str], vectors: NDArray[np.floating[Any]],
                 index: Optional[dict[str, int]] = None, *, n_duplicates: int = 0,
                 format: Optional[str] = None, path: Optional[str] = None) -> None:
        vectors = np.asarray(vectors)
        words = list(words)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(
                f"vectors must have shape (len(words), dim) = ({len(words)}, dim), "
                f"got {vectors.shape}")
        if vectors.dtype.kind != "f":
            raise TypeError(f"vectors must be a float array, got dtype {vectors.dtype}")
        if index is None:
            index = dict(zip(words, range(len(words))))
            if len(index) != len(words):
                raise ValueError("words must be unique (WordVectors keeps the first vector of "
                                 "a duplicated word; load_vectors drops the others)")
        self.words = words
        self.vectors = vectors
        self.index = index
        self.dim = int(vectors.shape[1])
        self.n_duplicates = int(n_duplicates)
        self.format = format
        self.path = path

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> NDArray[np.floating[Any]]:
        return self.vectors[self.index[word]]

    def get(self, word: str, default: Any = None) -> Any:
        """The vector of ``word``, or ``default`` when the file does not have it."""
        row = self.index.get(word)
        return default if row is None else self.vectors[row]

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __repr__(self) -> str:
        src = f", path={self.path!r}" if self.path is not None else ""
        return (f"WordVectors({len(self.words)} words x {self.dim} dims, "
                f"dtype={self.vectors.dtype}{src})")


def _dtype_name(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt.name


def load_vectors(path: Any, format: str = "auto", dtype: Any = "float32",
                 limit: Optional[int] = None) -> WordVectors:
    """Read pretrained word vectors.

    Parameters
    ----------
    path : str or os.PathLike
        The vectors file.
    format : {"auto", "glove", "word2vec", "word2vec_binary", "fasttext"}
        ``"glove"``: ``word v1 ... vD`` per line, no header. ``"word2vec"`` and
        ``"fasttext"`` (``.vec``): the same after a ``count dim`` header line.
        ``"word2vec_binary"``: the header, then per word its UTF-8 bytes, a space and
        ``dim`` little-endian float32. ``"auto"`` tells them apart: a first line of two
        integers is a header, and the record after it is text when it reads as numbers.
    dtype : {"float32", "float64"}
        The vectors' dtype. Text values are rounded to float64 exactly, then to the
        dtype (as ``np.asarray(tokens, "float32")`` does).
    limit : int, optional
        Read only the first ``limit`` vectors of the file; the rest is not parsed.

    Returns
    -------
    WordVectors
        A word that appears twice keeps its first vector (``n_duplicates`` counts
        the dropped ones).

    Raises
    ------
    ValueError
        A malformed file (ragged rows, a bad or non-finite number, a header that does
        not match the file, a truncated binary file, invalid UTF-8), a file that shrank
        while it was read, or input beyond the bounds below, naming the file and the
        line (text) or byte offset (binary).
    OSError
        The file cannot be read.
    KeyboardInterrupt
        Ctrl-C (SIGINT in the main thread) stops the load within about 0.1 s, also
        while a pipe has no data; nothing is returned or kept.

    Notes
    -----
    Text lines may end in CRLF and carry trailing spaces; blank lines and a UTF-8
    byte order mark are skipped. A line with more than ``dim + 1`` fields (glove.840B
    words containing spaces) takes its last ``dim`` fields as the vector.

    Input that cannot be a vectors file is refused early instead of being buffered
    without end (``/dev/zero``, a binary blob, a header whose dimension is a lie): a
    line longer than 64 MiB, a dimension above 1,048,576 (2**20), or, in a word2vec
    binary file, a word of more than 1 MiB raise ``ValueError``. Memory grows with the
    bytes actually read, never with the counts a header claims.

    Pipes, FIFOs and devices are read in blocks to their end. A regular file is read up
    to the size it had when it was opened: bytes appended during the load are not read,
    and a file that shrinks during the load raises ``ValueError``.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, _FORMATS))}, "
                         f"got {format!r}")
    dt = _dtype_name(dtype)
    if limit is None:
        lim = -1
    else:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
            raise TypeError(f"limit must be an int or None, got {type(limit).__name__}")
        lim = int(limit)
        if lim < 0:
            raise ValueError(f"limit must be >= 0, got {lim}")
    fspath = os.fspath(path)
    name = os.fsdecode(fspath)
    with open(fspath, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        # Read with read(2), never through a mapping: a file that another process
        # truncates meanwhile must give an error, not SIGBUS.  A regular file is read up
        # to its size now (bytes appended later are ignored; an earlier end is an error);
        # pipes, devices and /proc-like files (size 0) are read to their end.
        size = st.st_size if stat.S_ISREG(st.st_mode) and st.st_size > 0 else -1
        if size > 0 and hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:
                pass
        res = _core.load_vectors(f.fileno(), name, format, dt, lim, size)
    if res.n_duplicates:
        _log.warning("%s: %d duplicate words ignored (the first vector of each is kept)",
                     name, res.n_duplicates)
    return WordVectors(res.words, res.vectors, res.index, n_duplicates=res.n_duplicates,
                       format=res.format, path=name)


def _as_word_index(word_index):
    wi = getattr(word_index, "word_index", word_index)  # a Tokenizer works too
    if isinstance(wi, dict):
        return wi
    if isinstance(wi, Mapping):
        return dict(wi)
    raise TypeError(f"word_index must be a dict word -> index (or a Tokenizer), "
                    f"got {type(word_index).__name__}")


def _as_vectors(vectors):
    """(index dict, 2-D C-contiguous float array) for a WordVectors or a dict."""
    if isinstance(vectors, WordVectors):
        return vectors.index, np.ascontiguousarray(vectors.vectors)
    if isinstance(vectors, Mapping):
        if len(vectors) == 0:
            raise ValueError("vectors is an empty dict: the dimension is unknown")
        keys = list(vectors.keys())
        rows = [np.asarray(v) for v in vectors.values()]
        first = rows[0]
        if first.ndim != 1:
            raise ValueError(f"each vector must be 1-D, got shape {first.shape} for "
                             f"{keys[0]!r}")
        dtype = first.dtype if first.dtype.kind == "f" else np.dtype(np.float64)
        try:
            table = np.stack(rows).astype(dtype, copy=False)
        except ValueError as exc:
            raise ValueError(f"all vectors must have the same length ({first.shape[0]}): "
                             f"{exc}") from None
        if table.dtype not in (np.float32, np.float64):
            table = table.astype(np.float64)
        return dict(zip(keys, range(len(keys)))), np.ascontiguousarray(table)
    raise TypeError(f"vectors must be a WordVectors or a dict word -> vector, got "
                    f"{type(vectors).__name__}")


def _rows_and_cutoff(word_index, num_words):
    rows = len(word_index) + 1
    if num_words is None:
        return rows, 2**63 - 1
    if isinstance(num_words, bool) or not isinstance(num_words, (int, np.integer)):
        raise TypeError(f"num_words must be an int or None, got {type(num_words).__name__}")
    if num_words < 0:
        raise ValueError(f"num_words must be >= 0, got {num_words}")
    return min(int(num_words), rows), int(num_words)


def build_embedding_matrix(word_index: Any, vectors: Any, num_words: Optional[int] = None
                           ) -> NDArray[np.floating[Any]]:
    """The embedding matrix of Keras' pretrained-embeddings example.

    Parameters
    ----------
    word_index : dict or Tokenizer
        word -> index, as ``Tokenizer.word_index`` (index 0 is padding).
    vectors : WordVectors or dict
        The pretrained vectors (a dict maps word -> 1-D vector).
    num_words : int, optional
        Keep only words with index ``< num_words``.

    Returns
    -------
    numpy.ndarray
        Shape ``(min(num_words, len(word_index) + 1), dim)``, the vectors' dtype. Row
        ``i`` is the vector of the word with index ``i`` when ``vectors`` has it, zeros
        otherwise (row 0 included).

    Raises
    ------
    IndexError
        A word's index is negative, or not below ``len(word_index) + 1`` while being
        kept by ``num_words``.
    """
    wi = _as_word_index(word_index)
    index, table = _as_vectors(vectors)
    rows, cutoff = _rows_and_cutoff(wi, num_words)
    out = np.zeros((rows, table.shape[1]), dtype=table.dtype)
    _core.fill_embedding_matrix(wi, index, table, out, cutoff)
    return out


def embedding_coverage(word_index: Any, vectors: Any, num_words: Optional[int] = None
                       ) -> tuple[int, int]:
    """How many of the kept words have a pretrained vector.

    Parameters are those of :func:`build_embedding_matrix`.

    Returns
    -------
    (found, missing) : tuple of int
        Words with index ``< num_words`` (all words when ``num_words`` is None) that
        ``vectors`` has, and those it lacks.
    """
    wi = _as_word_index(word_index)
    if isinstance(vectors, WordVectors):
        index = vectors.index
    elif isinstance(vectors, Mapping):
        index = vectors if isinstance(vectors, dict) else dict(vectors)
    else:
        raise TypeError(f"vectors must be a WordVectors or a dict word -> vector, got "
                        f"{type(vectors).__name__}")
    rows, cutoff = _rows_and_cutoff(wi, num_words)
    found, missing = _core.embedding_coverage(wi, index, rows, cutoff)
    return int(found), int(missing)
