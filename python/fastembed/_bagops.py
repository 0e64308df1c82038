"""``fastembed.ops.embedding_bag`` and the bag backward used by ``EmbeddingBag``.

Everything is validated and computed in ``_core`` (src/cpp/bindings/bind_bag.cpp over
src/cpp/fe/bag.hpp); this module only names the arguments.
"""
from __future__ import annotations

from . import _core

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
    return _core.embedding_bag(table, ids, offsets, mode, per_sample_weights,
                               bool(mask_zero), False)[0]


def bag_forward(table, ids, offsets, mode, per_sample_weights, mask_zero, want_argmax):
    """(out, argmax): argmax is the (B, D) int64 id that supplied each max (or None)."""
    return _core.embedding_bag(table, ids, offsets, mode, per_sample_weights,
                               bool(mask_zero), bool(want_argmax))


def bag_backward(grad, ids, offsets, mode, per_sample_weights, mask_zero, argmax, rows):
    """(indices, values) of the table gradient of one bag call, coalesced."""
    return _core.embedding_bag_backward(grad, ids, offsets, mode, per_sample_weights,
                                        bool(mask_zero), argmax, int(rows))
