"""``pad_sequences``: Keras 3's function, numpy-2 safe, with a native fast path."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Type, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

from . import _textpad

__all__ = ["pad_sequences"]

#: What ``pad_sequences`` takes: a sequence (list, tuple, array) of sequences.
Sequences = Union[Sequence[Any], npt.NDArray[Any]]
_S = TypeVar("_S", bound=np.generic)

# Output dtypes the native loop writes; every other dtype (strings, object, bool,
# narrow integers...) takes the reference path.
_FAST_DTYPES = frozenset(np.dtype(t) for t in ("int32", "int64", "float32", "float64"))


@overload
def pad_sequences(sequences: Sequences, maxlen: Optional[int] = None, *,
                  padding: str = "pre", truncating: str = "pre",
                  value: Any = 0.0) -> npt.NDArray[np.int32]: ...
@overload
def pad_sequences(sequences: Sequences, maxlen: Optional[int] = None,
                  dtype: Union[Type[_S], "np.dtype[_S]"] = ..., padding: str = "pre",
                  truncating: str = "pre", value: Any = 0.0) -> npt.NDArray[_S]: ...
@overload
def pad_sequences(sequences: Sequences, maxlen: Optional[int] = None,
                  dtype: npt.DTypeLike = "int32", padding: str = "pre",
                  truncating: str = "pre", value: Any = 0.0) -> npt.NDArray[Any]: ...


def pad_sequences(sequences: Sequences, maxlen: Optional[int] = None,
                  dtype: npt.DTypeLike = "int32", padding: str = "pre",
                  truncating: str = "pre", value: Any = 0.0) -> npt.NDArray[Any]:
    """Pad (and truncate) sequences to the same length, exactly as Keras 3 does.

    Parameters
    ----------
    sequences : sequence of sequences
        Lists, tuples or arrays of ids (or of equal-shape samples, or of strings
        with ``dtype=object`` or a string dtype).
    maxlen : int, optional
        Length of every output row; by default the longest sequence's length.
    dtype : dtype, default "int32"
        Output dtype. Use ``object`` (the builtin) for variable-length strings.
    padding : {"pre", "post"}
        Pad before or after each sequence.
    truncating : {"pre", "post"}
        Drop values from the start ("pre", keeping the last ``maxlen``) or the end.
    value : scalar, default 0.0
        Padding value, cast to ``dtype`` as ``np.full`` casts it.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(sequences), maxlen) + sample_shape``.

    Raises
    ------
    ValueError
        Keras 3's errors, with its messages: a non-iterable item, an unknown
        ``padding``/``truncating`` (raised when a non-empty sequence needs it), a
        string ``value`` with a non-string dtype, samples of different shapes,
        ``maxlen=0`` with ``truncating="pre"`` and a non-empty sequence.

    Notes
    -----
    Lists/tuples of Python ints or floats and 1-D numpy arrays written to an
    int32/int64/float32/float64 output are copied by a Cython loop; anything that
    loop cannot reproduce bit for bit goes through the reference algorithm.
    """
    out = _pad_fast(sequences, maxlen, dtype, padding, truncating, value)
    if out is not None:
        return out
    return _pad_reference(sequences, maxlen, dtype, padding, truncating, value)


def _pad_fast(sequences: Any, maxlen: Any, dtype: Any, padding: Any, truncating: Any,
              value: Any) -> Optional[npt.NDArray[Any]]:
    """The native path, or None when the inputs are outside what it reproduces."""
    is_matrix = (type(sequences) is np.ndarray and sequences.ndim == 2
                 and sequences.dtype.kind in "iufb" and sequences.size > 0)
    if not is_matrix and (type(sequences) not in (list, tuple) or not sequences):
        return None
    if not (isinstance(padding, str) and padding in ("pre", "post")):
        return None
    if not (isinstance(truncating, str) and truncating in ("pre", "post")):
        return None
    if isinstance(value, (str, bytes)):
        return None
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            return None
        if maxlen <= 0:
            return None
    if dtype is object:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if dt not in _FAST_DTYPES or not dt.isnative:
        return None
    if is_matrix:
        return _pad_matrix(sequences, maxlen, dtype, padding, truncating, value)
    n = len(sequences)
    lengths = _textpad.seq_lengths(sequences)
    if lengths is None:
        return None
    if maxlen is None:
        maxlen = np.max(lengths)
        if maxlen == 0:
            return None
    # The padding value cast exactly as np.full casts it (warnings included); the
    # native loop then writes every element once instead of after a full memset.
    fill = np.full((1,), value, dtype=dtype)
    x = np.empty((n, maxlen), dtype=dtype)
    if not _textpad.pad_fill(sequences, x, fill, int(maxlen), padding == "pre",
                             truncating == "pre", dtype):
        return None
    return x


def _pad_matrix(arr: npt.NDArray[Any], maxlen: Optional[int], dtype: Any, padding: str,
                truncating: str, value: Any) -> npt.NDArray[Any]:
    """A 2-D numeric array: every row has the same length, so Keras' per-row slice
    and cast are a slice and a cast of blocks of rows."""
    n, length = arr.shape
    if maxlen is None:
        maxlen = length
    fill = np.full((), value, dtype=dtype)
    x = np.empty((n, maxlen), dtype=dtype)
    cnt = min(length, maxlen)
    src = arr[:, length - cnt:] if truncating == "pre" else arr[:, :cnt]
    off = maxlen - cnt if padding == "pre" else 0
    # Blocks of a few million elements: each numpy call is short, so Ctrl-C (seen
    # between two of them) stops a huge copy within milliseconds.
    step = max(1, _BLOCK // max(1, maxlen))
    for r in range(0, n, step):
        block = x[r:r + step]
        block[:, :off] = fill
        block[:, off + cnt:] = fill
        block[:, off:off + cnt] = np.asarray(src[r:r + step], dtype=dtype)
    return x


_BLOCK = 1 << 22
_TEXT_HINT = ("pad_sequences takes sequences of integer ids; encode texts first with "
              "Tokenizer.texts_to_sequences")


def _is_text(obj: Any) -> bool:
    return isinstance(obj, (str, bytes)) or (
        isinstance(obj, np.ndarray) and obj.dtype.kind in "US")


def _pad_reference(sequences: Any, maxlen: Any, dtype: Any, padding: Any, truncating: Any,
                   value: Any) -> npt.NDArray[Any]:
    """Keras 3's algorithm step by step (its checks, their order and messages)."""
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    num_samples = len(sequences)

    lengths: List[int] = []
    sample_shape = ()
    found = False
    first_text = None
    for x in sequences:
        if first_text is None and isinstance(x, (str, bytes)) and len(x):
            first_text = (len(lengths), x)
        try:
            lengths.append(len(x))
            if not found and len(x):
                sample_shape = np.asarray(x).shape[1:]
                found = True
        except TypeError as e:
            raise ValueError("`sequences` must be a list of iterables. "
                             f"Found non-iterable: {str(x)}") from e

    if maxlen is None:
        maxlen = np.max(lengths)

    # Keras 3 accepts str and bytes dtypes for a str value, and only the builtin
    # ``object`` (an identity test: np.dtype(object) is refused).
    is_dtype_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: "
            f"{type(value)}\nYou should set `dtype=object` for variable length strings.")

    if first_text is not None and np.dtype(dtype).kind not in "OUS":
        # Keras fails on this row only, with numpy's "invalid literal for int()" (or
        # "len() of unsized object" for a numeric string): say what to do, up front.
        idx, text = first_text
        raise ValueError(f"sequences[{idx}] is a string ({text[:40]!r}), not a sequence "
                         f"of ids: {_TEXT_HINT}")

    x = np.full((num_samples, maxlen) + sample_shape, value, dtype=dtype)
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        if truncating == "pre":
            trunc = s[-maxlen:]
        elif truncating == "post":
            trunc = s[:maxlen]
        else:
            raise ValueError(f'Truncating type "{truncating}" not understood')

        try:
            trunc = np.asarray(trunc, dtype=dtype)
        except ValueError as exc:
            if _is_text(trunc) or any(map(_is_text, trunc)):
                raise ValueError(f"{exc} (sequence at position {idx}: "
                                 f"{_TEXT_HINT})") from exc
            raise
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                f"is different from expected shape {sample_shape}")

        if padding == "post":
            x[idx, :len(trunc)] = trunc
        elif padding == "pre":
            x[idx, -len(trunc):] = trunc
        else:
            raise ValueError(f'Padding type "{padding}" not understood')
    return x
