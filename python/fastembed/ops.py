"""Native kernels on numpy arrays: numpy in, numpy out.

Every op here is a Python function that normalizes its ids (``fastembed._ids.as_ids``,
the one place that decides which ids are accepted) and calls the bindings in
``fastembed._core``, which validate everything else before the first write.

Tables may also be float16, bfloat16 (numpy arrays of ml_dtypes' dtype) or a
``QuantizedTable`` (from ``quantize_rows``): ``gather`` returns a half table's dtype (a
bit copy of rows) and dequantizes a quantized table into float32; ``embedding_bag``
accumulates in float32 and returns float32; ``scatter_add`` into a half target sums each
touched row in float32, in index order, and rounds it once (to nearest, ties to even).

Backward passes are stateless functions of the forward's inputs, so any framework can be
bridged the same way (``fastembed.torch`` is built on them): the gradient of ``gather``
with respect to the table is ``coalesce(ids, grad_output)``; ``embedding_bag_backward``
gives the coalesced table gradient of ``embedding_bag`` (for ``max``, from the argmax that
``embedding_bag(..., return_argmax=True)`` returns), and
``embedding_bag_per_sample_weights_backward`` the gradient of its weights.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._bagops import (embedding_bag, embedding_bag_backward,
                      embedding_bag_per_sample_weights_backward)
from ._ids import as_ids, as_values_like
from ._lowp import QuantizedTable, quantize_rows

__all__ = ["gather", "scatter_add", "coalesce", "embedding_bag", "embedding_bag_backward",
           "embedding_bag_per_sample_weights_backward", "quantize_rows", "QuantizedTable"]


def gather(table: Any, ids: ArrayLike,
           out: Optional[NDArray[Any]] = None) -> NDArray[np.floating[Any]]:
    """Look up rows: ``out[...] = table[ids]`` (the forward pass of an embedding).

    Parameters
    ----------
    table : ndarray, float32 or float64, shape (rows, dim)
        Rows must be contiguous; a row-strided view or a read-only / memory-mapped table
        is fine (it is only read).
    ids : array-like of int, any shape (0-d, empty and non-contiguous included)
        int32 and int64 are used directly, other integer widths are converted.  Float,
        bool and string ids raise TypeError.  Every id must lie in [0, rows): negative ids
        never wrap.
    out : ndarray, optional
        C-contiguous array of shape ``ids.shape + (dim,)`` and the table's dtype.  Its
        memory must not overlap the table's (the whole span from the first to the last
        row, gaps of a strided table included) nor the ids'.

    Returns
    -------
    ndarray of shape ``ids.shape + (dim,)`` (``out`` when given).

    Raises
    ------
    IndexError
        For the first id outside [0, rows), naming it and its position; ``out`` is then
        left untouched.
    TypeError, ValueError
        For a wrong dtype, shape or memory layout, or an output too large for 64-bit
        sizes, saying what was expected.
    KeyboardInterrupt
        Ctrl-C stops a long gather within about a second.  A given ``out`` may then be
        partly written (the table and ids never are).
    """
    return _core.gather(table, as_ids(ids), out)


def scatter_add(target: NDArray[Any], ids: ArrayLike, values: ArrayLike,
                scale: float = 1.0) -> None:
    """In place: ``target[ids[i]] += scale * values[i]`` for every position, duplicates summed.

    The backward pass of a lookup.  Equal bit for bit to
    ``np.add.at(target, ids, scale * values)``, for any thread count.

    Parameters
    ----------
    target : ndarray, float32 or float64, shape (rows, dim)
        Updated in place, so it must be writeable, C-contiguous and aligned (never
        silently copied).
    ids : array-like of int, any shape
        Every id must lie in [0, rows).
    values : ndarray of shape exactly ``ids.shape + (dim,)`` and the target's dtype
        No broadcasting or reshaping.
    scale : float

    Raises
    ------
    IndexError
        For the first bad id (with its position); nothing has been written.
    TypeError, ValueError
        For wrong dtypes, shapes, a read-only / non-contiguous target, or values or ids
        whose memory overlaps the target's.

    Notes
    -----
    Ctrl-C does not stop a scatter_add midway: the update runs to its end (a table is
    never left half updated) and KeyboardInterrupt is raised right after it.
    """
    _core.scatter_add(target, as_ids(ids), as_values_like(values, target, "values"), scale)


def coalesce(ids: ArrayLike, values: NDArray[np.floating[Any]]
             ) -> Tuple[NDArray[np.int64], NDArray[np.floating[Any]]]:
    """Sum the rows of duplicate ids: returns ``(unique_ids, summed_values)``.

    ``unique_ids`` is the sorted unique int64 ids, ``summed_values[k]`` the sum (in
    index order, starting from 0.0) of ``values[i]`` over the positions i with
    ``ids[i] == unique_ids[k]``; equal bit for bit to ``np.unique`` + ``np.add.at`` on
    zeros.

    Parameters
    ----------
    ids : array-like of int, any shape; ids must be >= 0
    values : ndarray float32 or float64 of shape ``ids.shape + (dim,)``

    Raises
    ------
    IndexError
        For a negative id, naming it and its position.
    KeyboardInterrupt
        Ctrl-C stops a long coalesce within about a second (nothing is returned).

    Notes
    -----
    The calling thread keeps up to 16 MiB of scratch between calls (no page faults for
    batches up to ~0.4M ids); larger scratch is returned to the OS when the call ends.
    """
    return _core.coalesce(as_ids(ids), values)
