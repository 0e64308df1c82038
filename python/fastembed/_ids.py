"""Normalization of id and value arrays before they reach the native kernels.

The kernels take C-contiguous int32 or int64 ids.  Every other integer width is
converted here (never truncated: a uint64 id that does not fit int64 is out of range
for any table and raises IndexError), bool and string ids are refused, and float ids
are refused unless the caller (the Keras-style layers) allows whole-number floats.
"""
from __future__ import annotations

import numpy as np

_INT64_MAX = int(np.iinfo(np.int64).max)


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


def as_ids(ids, allow_float: bool = False, name: str = "ids") -> np.ndarray:
    """Return `ids` as a C-contiguous, native int32 or int64 array.

    Raises TypeError for bool, string, object and (unless `allow_float`) float ids,
    ValueError for floats that are not whole numbers, IndexError for integers that do
    not fit int64.
    """
    if isinstance(ids, np.ndarray):
        arr = ids
    else:
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"{name} must be integers, got {type(ids).__name__}")
        try:
            arr = np.asarray(ids)
        except (ValueError, OverflowError) as exc:  # ragged lists, huge ints
            raise ValueError(f"{name} could not be read as an integer array: {exc}") from None
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
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be read as a {dtype} array: {exc}") from None
    return np.asarray(arr, order="C")
