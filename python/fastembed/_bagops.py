"""``fastembed.ops.embedding_bag`` and the bag backward used by ``EmbeddingBag``.

Ids and offsets are normalized here (``fastembed._ids``); everything else is validated
and computed in ``_core`` (src/cpp/bindings/bind_bag.cpp over src/cpp/fe/bag.hpp).
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._ids import as_ids, as_values_like

__all__ = ["embedding_bag"]


def embedding_bag(table, ids, offsets=None, mode="sum", per_sample_weights=None,
                  mask_zero=False):
    """Pool rows of `table` into bags.

    Parameters
    ----------
    table : ndarray, shape (V, D), float32, float64, float16 or bfloat16; or a QuantizedTable
        float16 / bfloat16 / quantized tables are read as float32 (exactly: upcast, or
        dequantized as ``scale * code + bias``), pooled in float32, and give float32.
    ids : ndarray of int
        2-D ``(B, L)``: each row is a bag (`offsets` must be None). 1-D ``(N,)``: the
        bags start at `offsets`. Any integer dtype; float ids are refused (TypeError).
    offsets : ndarray of int, shape (B,), optional
        Start of each bag in `ids` (torch's ``EmbeddingBag``): ``offsets[0] == 0``,
        non-decreasing, each ``<= len(ids)``; bag ``b`` is
        ``ids[offsets[b]:offsets[b+1]]`` (the last one runs to the end).
    mode : {"sum", "mean", "max"}
    per_sample_weights : ndarray, same shape as `ids`, optional
        Table dtype (float32, or the table's dtype, for half and quantized tables).
        ``sum`` -> ``sum w_i e_i``; ``mean`` -> ``sum w_i e_i / sum w_i``
        (zeros when the weights sum to 0); refused with ``max`` (ValueError).
    mask_zero : bool
        Leave the id 0 out of every bag.

    Returns
    -------
    ndarray, shape (B, D), the table's dtype (float32 for half and quantized tables)
        An empty bag (or one holding only masked ids) gives zeros.

    Notes
    -----
    NaN and infinities follow numpy: sums and means propagate them, and ``max`` gives
    NaN for an element when any row of the bag holds NaN there, whatever its position
    (as ``np.max`` / ``torch.amax``; torch's own ``embedding_bag`` max does not). For
    the backward pass, each output element's gradient goes to the first row of the bag
    that supplied its maximum, or its NaN. ``+-inf`` are ordinary values; ties (``-0.0``
    and ``0.0`` included) go to the first row reaching the maximum.

    Ctrl-C stops a long call within about a second (between groups of bags; a single bag
    is pooled whole) and raises ``KeyboardInterrupt``; nothing is returned.

    Raises
    ------
    IndexError
        An id outside ``[0, V)``, naming its position.
    TypeError
        Float, bool or string ids; a non-float table; weights of another dtype.
    ValueError
        Bad offsets (naming the position and value), wrong shapes, a bad mode, an output
        too large for 64-bit sizes.
    """
    return bag_forward(table, ids, offsets, mode, per_sample_weights, mask_zero, False)[0]


def _inputs(like, ids, offsets, per_sample_weights):
    """(ids, offsets, per_sample_weights) normalized for the bindings; list weights take
    the dtype of `like` (float32 for half and quantized tables)."""
    ids = as_ids(ids)
    if offsets is not None:
        try:
            offsets = as_ids(offsets, name="offsets")
        except IndexError as exc:
            # An offset too large for int64 is past the end of any ids: a bad offset.
            raise ValueError(str(exc)) from None
    if per_sample_weights is not None:
        per_sample_weights = as_values_like(per_sample_weights, like, "per_sample_weights",
                                            default=np.float32)
    return ids, offsets, per_sample_weights


def bag_forward(table, ids, offsets, mode, per_sample_weights, mask_zero, want_argmax):
    """(out, argmax): argmax is the (B, D) int64 id that supplied each max (or None)."""
    ids, offsets, per_sample_weights = _inputs(table, ids, offsets, per_sample_weights)
    return _core.embedding_bag(table, ids, offsets, mode, per_sample_weights,
                               bool(mask_zero), bool(want_argmax))


def bag_backward(grad, ids, offsets, mode, per_sample_weights, mask_zero, argmax, rows):
    """(indices, values) of the table gradient of one bag call, coalesced."""
    ids, offsets, per_sample_weights = _inputs(grad, ids, offsets, per_sample_weights)
    return _core.embedding_bag_backward(grad, ids, offsets, mode, per_sample_weights,
                                        bool(mask_zero), argmax, int(rows))
