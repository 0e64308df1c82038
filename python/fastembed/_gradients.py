"""``SparseGradient``: the row-sparse gradient the layers return and optimizers take."""
from __future__ import annotations

import operator
from typing import Any, Iterable, Tuple

import numpy as np
import numpy.typing as npt

from . import ops
from ._ids import as_array, as_ids
from ._initializers import is_table_dtype
from ._lowp import is_half

__all__ = ["SparseGradient"]


class SparseGradient:
    """A row-sparse gradient of a ``(V, D)`` table.

    Parameters
    ----------
    indices : array_like of int, shape (K,)
        Row ids, stored as int64. They may repeat (an uncoalesced gradient); see
        :meth:`coalesce`.
    values : array_like, shape (K, D)
        One row per index in the table's dtype: an ndarray of float32, float64, float16
        or bfloat16 is kept as it is, anything else (a list) is read as float32.
    dense_shape : tuple of int
        ``(V, D)``, the shape of the table the gradient belongs to.

    Raises
    ------
    TypeError
        `indices` that are not integers (floats, bools, strings, an iterator); `values`
        that are an array of another dtype (integers included) or a list that cannot be
        read as float32; a `dense_shape` that is not a sequence of integers.
    ValueError
        A `dense_shape` that is not two non-negative sizes, `indices` that are not 1-D,
        `values` whose shape is not ``(len(indices), dim)``, ragged lists.
    IndexError
        An index outside ``[0, V)`` (or too large for int64), naming its position.
    """

    __slots__ = ("indices", "values", "dense_shape")

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.floating[Any]]
    dense_shape: Tuple[int, int]

    def __init__(self, indices: npt.ArrayLike, values: npt.ArrayLike,
                 dense_shape: Iterable[int]) -> None:
        try:
            shape = tuple(operator.index(s) for s in dense_shape)
        except TypeError:
            raise TypeError(f"dense_shape must be a (rows, dim) pair of integers, got "
                            f"{dense_shape!r}") from None
        if len(shape) != 2 or shape[0] < 0 or shape[1] < 0:
            raise ValueError(f"dense_shape must be (rows, dim) with non-negative sizes, "
                             f"got {shape!r}")
        idx = as_ids(indices, name="indices")
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D (K,), got shape {idx.shape}")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        vals = values if isinstance(values, np.ndarray) else as_array(values, "values",
                                                                    dtype=np.float32)
        if vals.dtype.kind == "f" and not vals.dtype.isnative:
            vals = vals.astype(vals.dtype.newbyteorder("="))
        if not is_table_dtype(vals.dtype):
            raise TypeError(f"values must be float32 or float64 (or float16, bfloat16), got "
                            f"dtype {vals.dtype}")
        if vals.shape != (idx.shape[0], shape[1]):
            raise ValueError(f"values must have shape (len(indices), dim) = "
                             f"{(idx.shape[0], shape[1])}, got {vals.shape}")
        if idx.size:
            bad = np.flatnonzero((idx < 0) | (idx >= shape[0]))
            if bad.size:
                i = int(bad[0])
                raise IndexError(f"indices[{i}] = {int(idx[i])} is out of range for "
                                 f"dense_shape {shape}")
        self.indices = idx
        self.values = np.ascontiguousarray(vals)
        self.dense_shape = (shape[0], shape[1])

    def __getstate__(self) -> Tuple[Any, Any, Tuple[int, int]]:
        return (self.indices, self.values, self.dense_shape)

    def __setstate__(self, state: Tuple[Any, Any, Tuple[int, int]]) -> None:
        self.indices, self.values, self.dense_shape = state

    def __repr__(self) -> str:
        return (f"SparseGradient(rows={self.indices.shape[0]}, dense_shape={self.dense_shape}, "
                f"dtype={self.values.dtype})")

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.values.dtype

    def coalesce(self) -> SparseGradient:
        """Return the equivalent gradient with sorted unique indices and summed rows."""
        if is_half(self.values.dtype):  # summed in float32, rounded once
            uniq, vals = ops.coalesce(self.indices, self.values.astype(np.float32))
            return SparseGradient(uniq, vals.astype(self.values.dtype), self.dense_shape)
        uniq, vals = ops.coalesce(self.indices, self.values)
        return SparseGradient(uniq, vals, self.dense_shape)

    def is_coalesced(self) -> bool:
        """True when the indices are strictly increasing (sorted and unique)."""
        return bool(np.all(self.indices[1:] > self.indices[:-1]))

    def to_dense(self) -> npt.NDArray[np.floating[Any]]:
        """Return the ``dense_shape`` array with each row's values summed in."""
        out = np.zeros(self.dense_shape, dtype=self.values.dtype)
        ops.scatter_add(out, self.indices, self.values)
        return out
