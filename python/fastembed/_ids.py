"""Normalization of id and value arrays before they reach the native kernels.

The one place that decides which ids are accepted: every caller of ``fastembed._core``
passes its ids through ``as_ids`` (the bindings only refuse what is not normalized).
The kernels take C-contiguous int32 or int64 ids.  Every other integer width is
converted here (never truncated: a uint64 id that does not fit int64 is out of range
for any table and raises IndexError), bool and string ids are refused, and float ids
are refused unless the caller (the Keras-style layers) allows whole-number floats.
"""
from __future__ import annotations

import numbers

import numpy as np

_INT64_MAX = int(np.iinfo(np.int64).max)
_NATIVE_IDS = (np.dtype(np.int32), np.dtype(np.int64))  # native byte order


def _pos(arr: np.ndarray, flat: int) -> str:
    if arr.ndim == 0:
        return ""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, arr.shape)) + "]"


def _raise_for_huge_ints(arr: np.ndarray, name: str) -> None:
    """A list of Python ints that do not fit int64 becomes an object array: those ids are
    out of range for any table (IndexError), not a wrong dtype."""
    flat = arr.reshape(-1)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
               for v in flat):
        return
    for i, v in enumerate(flat):
        if not -(2**63) <= int(v) < 2**63:
            raise IndexError(f"{name}{_pos(arr, i)} = {int(v)} is out of range "
                             f"(ids must fit in int64)")


_SHOWN_LENGTHS = 8
# The ragged-list diagnosis walks at most this many items (it only runs on an error path).
_DIAGNOSE_BUDGET = 1_000_000


def _is_row(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim > 0
    return not isinstance(x, (str, bytes)) and hasattr(x, "__len__")


def _ragged_detail(obj, name) -> str:
    """Where a nested sequence stops being rectangular, in words ("" when not found)."""
    level, seen = [obj], 0
    for depth in range(64):
        lens = [len(item) if _is_row(item) else None for item in level]
        kinds = set(lens)
        if len(kinds) > 1:
            index = "".join(f"[{c}]" for c in "ijklmnpqrs"[:depth]) + "[.]" * (depth - 10)
            items = name + index
            if None in kinds:
                return f"{items} mixes numbers and sequences"
            shown = ", ".join(str(n) for n in lens[:_SHOWN_LENGTHS])
            more = ", ..." if len(lens) > _SHOWN_LENGTHS else ""
            rows = "the rows " if depth == 1 else ""
            return f"{rows}{items} have lengths {shown}{more}"
        if kinds == {None} or not level:
            return ""
        nxt = []
        for item in level:
            seen += len(item)
            if seen > _DIAGNOSE_BUDGET:
                return ""
            nxt.extend(item[i] for i in range(len(item)))
        level = nxt
    return ""


def as_array(values, name: str, dtype=None, hint: str = "") -> np.ndarray:
    """``np.asarray(values, dtype)`` that explains a ragged nested list.

    numpy's own message ("inhomogeneous shape after 1 dimensions") says neither which
    argument nor what to do; this one names the argument and the row lengths.
    """
    try:
        return np.asarray(values, dtype=dtype)
    except (ValueError, OverflowError) as exc:
        text = str(exc)
        if "inhomogeneous" not in text and "setting an array element with a sequence" not in text:
            if isinstance(exc, OverflowError) or dtype is None:
                raise ValueError(f"{name} could not be read as an array: {exc}") from None
            raise TypeError(f"{name} could not be read as a {np.dtype(dtype)} array: "
                            f"{exc}") from None
        try:
            detail = _ragged_detail(values, name)
        except Exception:  # a hostile __len__/__getitem__: keep the plain message
            detail = ""
        raise ValueError(f"{name} must be a rectangular array (every row of the same length)"
                         f"{'; ' + detail if detail else ''}{hint}") from None


def as_ids(ids, allow_float: bool = False, name: str = "ids") -> np.ndarray:
    """Return `ids` as a C-contiguous, native int32 or int64 array.

    Raises TypeError for bool, string, object and (unless `allow_float`) float ids,
    ValueError for floats that are not whole numbers, IndexError for integers that do
    not fit int64.
    """
    if type(ids) is np.ndarray and ids.dtype in _NATIVE_IDS and ids.flags.c_contiguous:
        return ids  # the common case, first: usable as it is
    if isinstance(ids, np.ndarray):
        arr = ids
    else:
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"{name} must be integers, got {type(ids).__name__}")
        arr = as_array(ids, name, hint="; pad them to one length with fastembed.pad_sequences")
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)  # an empty list: numpy's default dtype is float64
        elif arr.dtype.kind == "O":
            _raise_for_huge_ints(arr, name)
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(
            f"{name} must be integers, got dtype bool (a boolean mask is not a list of ids)")
    if kind in "iu":
        if arr.dtype.itemsize == 8 and kind == "u" and arr.size:
            big = np.flatnonzero(arr.reshape(-1) > _INT64_MAX)
            if big.size:
                i = int(big[0])
                raise IndexError(
                    f"{name}{_pos(arr, i)} = {int(arr.reshape(-1)[i])} is out of range "
                    f"(ids must fit in int64)")
        if arr.dtype.isnative and arr.dtype in (np.int32, np.int64):
            return np.asarray(arr, order="C")
        return np.asarray(arr, order="C", dtype=np.int64 if arr.dtype.itemsize >= 4 or kind == "u"
                                    else np.int32)
    if kind == "f":
        if not allow_float:
            raise TypeError(
                f"{name} must be integers, got dtype {arr.dtype} "
                f"(fastembed.ops does not cast float ids; the Embedding layers accept floats "
                f"holding whole numbers)")
        flat = arr.reshape(-1)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(flat) | (flat != np.trunc(flat))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}{_pos(arr, i)} = {flat[i]!r} is not a whole number; float ids must "
                f"hold whole numbers")
        huge = np.abs(flat) >= 2.0 ** 63
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            raise IndexError(f"{name}{_pos(arr, i)} = {flat[i]!r} is out of range")
        return np.asarray(arr, order="C", dtype=np.int64)
    if kind == "O" and arr.ndim == 0 and hasattr(ids, "__next__"):
        raise TypeError(f"{name} must be integers, got an iterator ({type(ids).__name__}); "
                        f"pass a list or an array")
    raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")


def as_values(values, dtype, name: str = "values") -> np.ndarray:
    """Return `values` as a C-contiguous native float array of `dtype`.

    Array-likes (lists) are converted; an ndarray must already be a float array of
    that dtype (a non-native byte order is converted, another width is refused).
    """
    dtype = np.dtype(dtype)
    if isinstance(values, np.ndarray):
        if values.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {values.dtype}")
        if values.dtype.newbyteorder("=") != dtype:
            raise TypeError(f"{name} must have dtype {dtype}, got {values.dtype}")
        return np.asarray(values, order="C", dtype=dtype)
    try:
        arr = as_array(values, name, dtype=dtype)
    except TypeError as exc:
        raise TypeError(f"{name} could not be read as a {dtype} array: {exc}") from None
    return np.asarray(arr, order="C")


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def as_values_like(values, like, name: str, default=None):
    """An array-like (a list) of float `values` as an array of the dtype of the float32 /
    float64 table `like` (or of `default` for any other table); arrays and anything
    else are returned as they are, for the bindings to check (they refuse another dtype
    rather than cast it)."""
    if isinstance(values, np.ndarray):
        return values
    dtype = like.dtype if isinstance(like, np.ndarray) and like.dtype in _FLOATS else default
    return values if dtype is None else as_values(values, dtype, name)


def as_flag(value, name: str) -> bool:
    """A bool argument: True/False (numpy's too) or the integers 0 and 1.

    ``bool("False")`` is True, so a string (or any other object) is refused with
    TypeError rather than read by its truth value.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r} "
                    f"(of type {type(value).__name__}).")


def as_number(value, name: str) -> float:
    """A real-number argument as a float; strings, bools and other objects raise TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r} "
                        f"(of type {type(value).__name__}).")
    return float(value)
