"""``fastembed.ops.embedding_bag``, its stateless backward, and the bag calls of the layers.

Ids, offsets and weights are normalized here (``fastembed._ids``); everything else is
validated and computed in ``_core`` (src/cpp/bindings/bind_bag.cpp over src/cpp/fe/bag.hpp).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Tuple, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._ids import as_ids, as_values, as_values_like

__all__ = ["embedding_bag", "embedding_bag_backward", "embedding_bag_per_sample_weights_backward"]


@overload
def embedding_bag(table: Any, ids: ArrayLike, offsets: Optional[ArrayLike] = ...,
                  mode: str = ..., per_sample_weights: Optional[ArrayLike] = ...,
                  mask_zero: bool = ..., return_argmax: Literal[False] = ...
                  ) -> NDArray[np.floating[Any]]: ...
@overload
def embedding_bag(table: Any, ids: ArrayLike, offsets: Optional[ArrayLike] = ...,
                  mode: str = ..., per_sample_weights: Optional[ArrayLike] = ...,
                  mask_zero: bool = ..., *, return_argmax: Literal[True]
                  ) -> Tuple[NDArray[np.floating[Any]], Optional[NDArray[np.int64]]]: ...
def embedding_bag(table: Any, ids: ArrayLike, offsets: Optional[ArrayLike] = None,
                  mode: str = "sum", per_sample_weights: Optional[ArrayLike] = None,
                  mask_zero: bool = False, return_argmax: bool = False
                  ) -> Union[NDArray[np.floating[Any]],
                             Tuple[NDArray[np.floating[Any]], Optional[NDArray[np.int64]]]]:
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
    return_argmax : bool
        Also return, for ``max``, which row supplied each output element (what
        ``embedding_bag_backward`` needs to route the gradient).

    Returns
    -------
    out : ndarray, shape (B, D), the table's dtype (float32 for half and quantized tables)
        An empty bag (or one holding only masked ids) gives zeros.
    argmax : ndarray, shape (B, D), int64, or None
        Only with ``return_argmax=True`` (the result is then the pair ``(out, argmax)``):
        for ``max``, the id of the row that supplied ``out[b, k]`` (-1 for an empty bag);
        None for ``sum`` and ``mean``.

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
    out, argmax = bag_forward(table, ids, offsets, mode, per_sample_weights, mask_zero,
                              return_argmax)
    return (out, argmax) if return_argmax else out


def embedding_bag_backward(grad_output: NDArray[np.floating[Any]], ids: ArrayLike, rows: int,
                           offsets: Optional[ArrayLike] = None, mode: str = "sum",
                           per_sample_weights: Optional[ArrayLike] = None,
                           mask_zero: bool = False, argmax: Optional[NDArray[np.int64]] = None
                           ) -> Tuple[NDArray[np.int64], NDArray[np.floating[Any]]]:
    """The table gradient of one ``embedding_bag`` call, coalesced.

    Stateless: given the forward's arguments (and, for ``max``, its argmax), the gradient
    of ``sum(grad_output * embedding_bag(table, ids, ...))`` with respect to the table.
    The table itself is not needed (the pooling is linear in it; ``max`` routes through
    `argmax`).

    Parameters
    ----------
    grad_output : ndarray, shape (B, D), float32 or float64
        The gradient of the forward's output; its dtype is the gradient's dtype.
    ids, offsets, mode, per_sample_weights, mask_zero
        As given to ``embedding_bag`` (validated the same way).
    rows : int
        The table's number of rows ``V``: every id (and argmax) must lie in ``[0, V)``.
    argmax : ndarray, shape (B, D), int64, optional
        Required for ``max``: the second result of
        ``embedding_bag(..., mode="max", return_argmax=True)``; ignored otherwise.

    Returns
    -------
    indices : ndarray, shape (K,), int64
        The sorted unique rows that receive a gradient (masked ids, and ids whose bag
        has no gradient path such as an empty ``max`` bag, are left out; a row whose
        weights are zero is still listed, with zeros).
    values : ndarray, shape (K, D), the dtype of `grad_output`
        ``values[j]`` is the summed gradient of row ``indices[j]``: for ``sum``
        ``sum_i w_i grad_output[bag(i)]`` over the positions ``i`` holding that row;
        for ``mean`` each term is divided by its bag's count (or weight sum; a bag
        whose weights sum to 0 contributes zeros); for ``max``, ``grad_output[b, k]``
        goes to row ``argmax[b, k]``, column ``k``. Each row is summed in position
        order, so the result does not depend on the thread count.

    Raises
    ------
    IndexError
        An id (or argmax entry) outside ``[0, rows)``.
    TypeError
        Float ids, a non-float gradient, weights or argmax of another dtype.
    ValueError
        Bad offsets, `grad_output` not of shape ``(B, D)``, ``max`` without `argmax`,
        a bad mode.
    """
    if mode == "max" and argmax is None:
        raise ValueError("mode 'max' needs the argmax of the forward pass: "
                         "embedding_bag(..., mode='max', return_argmax=True)")
    if not isinstance(rows, (int, np.integer)) or isinstance(rows, (bool, np.bool_)):
        raise TypeError(f"rows must be an int, got {type(rows).__name__}")
    return bag_backward(grad_output, ids, offsets, mode, per_sample_weights, mask_zero, argmax,
                        rows)


def embedding_bag_per_sample_weights_backward(
        grad_output: NDArray[np.floating[Any]], table: Any, ids: ArrayLike,
        offsets: Optional[ArrayLike] = None, mode: str = "sum",
        per_sample_weights: Optional[ArrayLike] = None,
        mask_zero: bool = False) -> NDArray[np.floating[Any]]:
    """The gradient of one ``embedding_bag`` call with respect to its per_sample_weights.

    Parameters
    ----------
    grad_output : ndarray, shape (B, D)
        The gradient of the forward's output, in the forward output's dtype.
    table, ids, offsets, mode, per_sample_weights, mask_zero
        As given to ``embedding_bag``. `per_sample_weights` is needed for ``mean``
        (the output depends on their sum) and may be None for ``sum``.

    Returns
    -------
    ndarray, the shape of `ids`, the forward output's dtype
        ``sum``: ``grad_w[i] = grad_output[b] . table[ids[i]]``; ``mean``:
        ``(grad_output[b] . table[ids[i]] - grad_output[b] . out[b]) / W_b`` with
        ``W_b`` the bag's weight sum (zeros for a bag whose weights sum to 0).
        Masked positions get 0. ``b`` is the bag holding position ``i``.

    Raises
    ------
    As ``embedding_bag`` (ValueError for mode ``max``, which takes no weights), and
    ValueError / TypeError for a `grad_output` of another shape / dtype than the output.
    """
    if mode not in ("sum", "mean"):
        raise ValueError(f"per_sample_weights have a gradient in mode 'sum' and 'mean' only, "
                         f"got mode {mode!r}")
    if mode == "mean" and per_sample_weights is None:
        raise ValueError("mode 'mean' needs the per_sample_weights of the forward pass")
    # The forward validates ids, offsets and weights exactly as the forward call did.
    out = bag_forward(table, ids, offsets, mode, per_sample_weights, mask_zero, False)[0]
    grad = as_values(grad_output, out.dtype, "grad_output")
    if grad.shape != out.shape:
        raise ValueError(f"grad_output must have the output's shape {out.shape}, "
                         f"got {grad.shape}")
    ids_a = as_ids(ids)
    flat = ids_a.reshape(-1)
    n = flat.shape[0]
    if ids_a.ndim == 2:
        bag = np.repeat(np.arange(ids_a.shape[0]), ids_a.shape[1])
    else:
        starts = as_ids(offsets, name="offsets").astype(np.int64)
        bag = np.repeat(np.arange(starts.shape[0]), np.diff(np.append(starts, n)))
    emb = _core.gather(table, flat)
    if emb.dtype != out.dtype:  # half tables: gathered as stored, pooled in float32
        emb = emb.astype(out.dtype)
    dots = np.einsum("nd,nd->n", emb, grad[bag]) if n else np.zeros(0, out.dtype)
    keep = (flat != 0) if mask_zero else None
    if mode == "mean":
        w = np.asarray(per_sample_weights, dtype=out.dtype).reshape(-1)
        wk = w if keep is None else np.where(keep, w, 0)
        wsum = np.bincount(bag, weights=wk, minlength=out.shape[0]).astype(out.dtype)
        centre = np.einsum("bd,bd->b", grad, out)
        safe = np.where(wsum != 0, wsum, 1)
        dots = np.where(wsum[bag] != 0, (dots - centre[bag]) / safe[bag], 0)
    if keep is not None:
        dots = np.where(keep, dots, 0)
    return np.ascontiguousarray(dots, dtype=out.dtype).reshape(ids_a.shape)


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
