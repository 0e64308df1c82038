"""The ``torch.ops.fastembed`` custom operators: fastembed's kernels on CPU tensors.

Each operator is a ``torch.library.custom_op`` whose implementation hands the tensors'
buffers to the numpy kernels without a copy (``Tensor.numpy()`` on a CPU tensor shares
its memory; ``torch.from_numpy`` shares the result's), a fake implementation that only
computes shapes (for ``torch.compile`` and meta tensors), and a registered autograd
formula whose backward is again one of these operators.  Nothing here is built against
torch, so one wheel serves every torch version.

Operators (all arguments positional, as in the schema):

- ``embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse) -> out``
- ``embedding_backward(grad, indices, num_weights, padding_idx, scale_grad_by_freq)
  -> (rows, values)``
- ``embedding_bag(weight, indices, offsets, mode, per_sample_weights,
  include_last_offset, padding_idx, scale_grad_by_freq, sparse) -> (out, argmax)``
- ``embedding_bag_backward(grad, indices, offsets, argmax, mode, per_sample_weights,
  include_last_offset, padding_idx, scale_grad_by_freq, num_weights) -> (rows, values)``
- ``embedding_bag_psw_backward(grad, weight, indices, offsets, mode, per_sample_weights,
  include_last_offset, padding_idx) -> grad_per_sample_weights``

``padding_idx`` is -1 for none (a negative padding_idx is normalized by the modules, as
torch's are); ``sparse`` only chooses the layout of the weight gradient.  ``(rows,
values)`` is a coalesced gradient: sorted unique int64 rows and their summed values.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .. import _bagops, _core

__all__: list[str] = []

_FLOATS = (torch.float32, torch.float64)
# float16 weights: looked up as stored (gathers) or pooled in float32 and rounded once
# (bags); their gradients are computed in float32 and rounded to float16.
_TABLES = _FLOATS + (torch.float16,)
_INTS = (torch.int32, torch.int64)


def _on_cpu(t: Tensor, name: str) -> None:
    if t.device.type != "cpu":
        raise ValueError(f"fastembed.torch runs on CPU tensors: {name} is on {t.device} "
                         f"(move it with .cpu(), or use torch.nn's module on that device)")


def _table(weight: Tensor) -> np.ndarray:
    """The weight's buffer as a numpy array, shared (the kernels read it in place)."""
    _on_cpu(weight, "weight")
    if weight.dtype not in _TABLES:
        raise TypeError(f"weight must be float32, float64 or float16, got {weight.dtype}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    if not weight.is_contiguous():
        raise ValueError(f"weight must be contiguous (the kernels read it in place), got "
                         f"strides {weight.stride()} for shape {tuple(weight.shape)}")
    return weight.detach().numpy()


def _ids(t: Tensor, name: str) -> np.ndarray:
    _on_cpu(t, name)
    if t.dtype not in _INTS:
        raise TypeError(f"{name} must be int32 or int64 (torch.int / torch.long), got {t.dtype}")
    # Ids are small next to the table; a strided view is copied rather than refused,
    # as torch.nn's modules accept one.
    return t.detach().contiguous().numpy()


def _values(t: Tensor, name: str, like: Tensor) -> np.ndarray:
    _on_cpu(t, name)
    if t.dtype != like.dtype:
        raise TypeError(f"{name} must have the weight's dtype {like.dtype}, got {t.dtype}")
    return t.detach().contiguous().numpy()


def _grad32(grad: Tensor) -> np.ndarray:
    """The gradient as the kernels take it (a float16 one widened to float32)."""
    g = grad.detach()
    if g.dtype == torch.float16:
        g = g.float()
    return g.contiguous().numpy()


def _bag_inputs(indices: Tensor, offsets: Optional[Tensor], psw: Optional[Tensor],
                include_last_offset: bool, padding_idx: int, like: Tensor):
    """torch's bag arguments in the kernels' terms: (ids, offsets, psw, mask_zero, keep).

    torch leaves padding_idx out of every bag; the kernels can leave out the id 0 only,
    so another padding_idx is removed from the ids (and the offsets shifted) here.
    `keep` is the mask of the positions kept (None when all are), for the weights'
    gradient.  With include_last_offset the last offset ends the last bag (ids past it
    belong to no bag only when there is no bag at all: torch pools the last bag to the
    end of input whatever the last offset is).
    """
    ids = _ids(indices, "input")
    pw = None if psw is None else _values(psw, "per_sample_weights", like)
    if pw is not None and pw.shape != ids.shape:
        raise ValueError(f"per_sample_weights must have the shape of input {tuple(ids.shape)}, "
                         f"got {tuple(pw.shape)}")
    offs = None
    if ids.ndim == 2:
        if offsets is not None:
            raise ValueError("offsets must be None when input is 2-D (each row is a bag), "
                             f"got offsets of shape {tuple(offsets.shape)}")
    elif ids.ndim == 1:
        if offsets is None:
            raise ValueError("offsets must be given when input is 1-D (they start the bags)")
        offs = _ids(offsets, "offsets")
        if offs.ndim != 1:
            raise ValueError(f"offsets must be 1-D, got shape {tuple(offs.shape)}")
        if include_last_offset:
            # The last offset closes the last bag; torch checks it but pools the last bag
            # to the end of input whatever its value, and so do we.
            if offs.shape[0] == 0:
                raise ValueError("offsets must hold at least one entry with "
                                 "include_last_offset=True (the end of the last bag)")
            last, n = int(offs[-1]), ids.shape[0]
            if last > n:
                raise ValueError(f"offsets[-1] = {last} must be <= len(input) = {n} (it ends "
                                 f"the last bag with include_last_offset=True)")
            if offs.shape[0] > 1 and last < int(offs[-2]):
                raise ValueError(f"offsets must be non-decreasing: offsets[-1]={last} < "
                                 f"offsets[-2]={int(offs[-2])}")
            offs = offs[:-1]
            if offs.shape[0] == 0:
                ids = ids[:0]  # no bag: the ids belong to none
                pw = None if pw is None else pw[:0]
    else:
        raise ValueError(f"input must be 1-D (with offsets) or 2-D (bags, bag_size), got shape "
                         f"{tuple(ids.shape)}")
    keep = None
    mask_zero = padding_idx == 0
    if padding_idx > 0:
        flat = ids.reshape(-1)
        drop = flat == padding_idx
        if drop.any():
            keep = ~drop
            if offs is None:
                counts = keep.reshape(ids.shape).sum(axis=1)
                offs = np.zeros(ids.shape[0], np.int64)
                np.cumsum(counts[:-1], out=offs[1:])
            else:
                _check_offsets(offs, flat.shape[0])  # before indexing with them
                removed = np.concatenate(([0], np.cumsum(drop)))
                offs = offs.astype(np.int64) - removed[offs]
            ids = flat[keep]
            if pw is not None:
                pw = pw.reshape(-1)[keep]
    return ids, offs, pw, mask_zero, keep


def _check_offsets(offs: np.ndarray, n: int) -> None:
    """The kernels' offsets rules (same messages), for when offsets are used before them."""
    if offs.shape[0] == 0:
        if n:
            raise ValueError(f"offsets is empty but ids holds {n} ids; offsets must start with 0")
        return
    if offs[0] != 0:
        raise ValueError(f"offsets[0] must be 0, got offsets[0]={int(offs[0])}")
    down = np.flatnonzero(offs[1:] < offs[:-1])
    if down.size:
        b = int(down[0]) + 1
        raise ValueError(f"offsets must be non-decreasing: offsets[{b}]={int(offs[b])} < "
                         f"offsets[{b - 1}]={int(offs[b - 1])}")
    past = np.flatnonzero(offs > n)
    if past.size:
        b = int(past[0])
        raise ValueError(f"offsets must be <= len(ids) = {n}: offsets[{b}]={int(offs[b])}")


def _op(name: str, impl):
    """``torch.ops.fastembed.<name>``: `impl` as a custom operator (functional: no input is
    written, no output aliases an input)."""
    return torch.library.custom_op(f"fastembed::{name}", impl, mutates_args=())


def _freq_scale(ids: np.ndarray, mask_zero: bool, rows: np.ndarray,
                values: np.ndarray) -> np.ndarray:
    """Divide each gradient row by its id's count in the batch (scale_grad_by_freq)."""
    flat = ids.reshape(-1)
    if mask_zero:
        flat = flat[flat != 0]
    seen, counts = np.unique(flat, return_counts=True)
    c = counts[np.searchsorted(seen, rows)].astype(values.dtype)
    return values / c[:, None]


# --- embedding (a gather) ------------------------------------------------------------

def _embedding_impl(weight: Tensor, indices: Tensor, padding_idx: int, scale_grad_by_freq: bool,
              sparse: bool) -> Tensor:
    table = _table(weight)
    return torch.from_numpy(_core.gather(table, _ids(indices, "input")))


embedding = _op("embedding", _embedding_impl)


@embedding.register_fake
def _(weight, indices, padding_idx, scale_grad_by_freq, sparse):
    return weight.new_empty(tuple(indices.shape) + (weight.shape[1],))


def _embedding_backward_impl(grad: Tensor, indices: Tensor, num_weights: int, padding_idx: int,
                       scale_grad_by_freq: bool) -> tuple[Tensor, Tensor]:
    ids = _ids(indices, "input")
    _on_cpu(grad, "grad")
    if grad.dtype not in _TABLES:
        raise TypeError(f"grad must be float32, float64 or float16, got {grad.dtype}")
    if tuple(grad.shape[:-1]) != tuple(ids.shape) or grad.dim() != ids.ndim + 1:
        raise ValueError(f"grad must have shape input.shape + (embedding_dim,) = "
                         f"{tuple(ids.shape)} + (D,), got {tuple(grad.shape)}")
    g = _grad32(grad).reshape(-1, grad.shape[-1])
    flat = ids.reshape(-1, 1)
    rows, values = _core.embedding_bag_backward(g, flat, None, "sum", None, padding_idx == 0,
                                                None, int(num_weights))
    if padding_idx > 0:
        keep = rows != padding_idx
        if not keep.all():
            rows, values = rows[keep], values[keep]
    if scale_grad_by_freq and rows.shape[0]:
        values = _freq_scale(ids, False, rows, values)
    return torch.from_numpy(rows), torch.from_numpy(values).to(grad.dtype)


embedding_backward = _op("embedding_backward", _embedding_backward_impl)


@embedding_backward.register_fake
def _(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    k = torch.library.get_ctx().new_dynamic_size()
    return (indices.new_empty((k,), dtype=torch.int64),
            grad.new_empty((k, grad.shape[-1])))


def _weight_grad(rows: Tensor, values: Tensor, num_weights, dim, sparse: bool) -> Tensor:
    if sparse:
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, (num_weights, dim),
                                       is_coalesced=True, check_invariants=False)
    return values.new_zeros((num_weights, dim)).index_copy_(0, rows, values)


def _embedding_setup(ctx, inputs, output):
    weight, indices, padding_idx, scale_grad_by_freq, sparse = inputs
    ctx.save_for_backward(indices)
    ctx.shape = weight.shape
    ctx.args = (padding_idx, scale_grad_by_freq, sparse)


def _embedding_grad(ctx, grad, backward=None):
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    (indices,) = ctx.saved_tensors
    padding_idx, scale, sparse = ctx.args
    backward = backward or torch.ops.fastembed.embedding_backward
    rows, values = backward(grad, indices, ctx.shape[0], padding_idx, scale)
    return (_weight_grad(rows, values, ctx.shape[0], ctx.shape[1], sparse),
            None, None, None, None)


embedding.register_autograd(_embedding_grad, setup_context=_embedding_setup)


# --- embedding_bag ---------------------------------------------------------------------

def _embedding_bag_impl(weight: Tensor, indices: Tensor, offsets: Optional[Tensor], mode: str,
                  per_sample_weights: Optional[Tensor], include_last_offset: bool,
                  padding_idx: int, scale_grad_by_freq: bool,
                  sparse: bool) -> tuple[Tensor, Tensor]:
    table = _table(weight)
    if mode == "max" and per_sample_weights is not None:
        raise ValueError("per_sample_weights are only supported for mode 'sum', got mode 'max'")
    ids, offs, pw, mask_zero, _ = _bag_inputs(indices, offsets, per_sample_weights,
                                              include_last_offset, padding_idx, weight)
    out, argmax = _core.embedding_bag(table, ids, offs, mode, pw, mask_zero, mode == "max")
    am = torch.from_numpy(argmax) if argmax is not None else torch.empty(0, dtype=torch.int64)
    return torch.from_numpy(out).to(weight.dtype), am


def _bag_count(indices, offsets, include_last_offset):
    if indices.dim() == 2 or offsets is None:
        return indices.shape[0]
    return offsets.shape[0] - 1 if include_last_offset else offsets.shape[0]


embedding_bag = _op("embedding_bag", _embedding_bag_impl)


@embedding_bag.register_fake
def _(weight, indices, offsets, mode, per_sample_weights, include_last_offset, padding_idx,
      scale_grad_by_freq, sparse):
    b = _bag_count(indices, offsets, include_last_offset)
    out = weight.new_empty((b, weight.shape[1]))
    am = (indices.new_empty((b, weight.shape[1]), dtype=torch.int64) if mode == "max"
          else indices.new_empty((0,), dtype=torch.int64))
    return out, am


def _embedding_bag_backward_impl(grad: Tensor, indices: Tensor, offsets: Optional[Tensor],
                           argmax: Tensor, mode: str, per_sample_weights: Optional[Tensor],
                           include_last_offset: bool, padding_idx: int,
                           scale_grad_by_freq: bool,
                           num_weights: int) -> tuple[Tensor, Tensor]:
    _on_cpu(grad, "grad")
    if grad.dtype not in _TABLES:
        raise TypeError(f"grad must be float32, float64 or float16, got {grad.dtype}")
    ids, offs, pw, mask_zero, _ = _bag_inputs(indices, offsets, per_sample_weights,
                                              include_last_offset, padding_idx, grad)
    am = None
    if mode == "max":
        _on_cpu(argmax, "argmax")
        if argmax.dtype != torch.int64:
            raise TypeError(f"argmax must be int64 (from the forward), got {argmax.dtype}")
        am = argmax.detach().contiguous().numpy()
    g = _grad32(grad)
    if pw is not None and pw.dtype == np.float16:
        pw = pw.astype(np.float32)
    rows, values = _bagops.bag_backward(g, ids, offs, mode, pw, mask_zero, am,
                                        int(num_weights))
    if scale_grad_by_freq and rows.shape[0]:
        values = _freq_scale(ids, mask_zero, rows, values)
    return torch.from_numpy(rows), torch.from_numpy(values).to(grad.dtype)


embedding_bag_backward = _op("embedding_bag_backward", _embedding_bag_backward_impl)


@embedding_bag_backward.register_fake
def _(grad, indices, offsets, argmax, mode, per_sample_weights, include_last_offset,
      padding_idx, scale_grad_by_freq, num_weights):
    k = torch.library.get_ctx().new_dynamic_size()
    return (indices.new_empty((k,), dtype=torch.int64),
            grad.new_empty((k, grad.shape[-1])))


def _embedding_bag_psw_backward_impl(grad: Tensor, weight: Tensor, indices: Tensor,
                               offsets: Optional[Tensor], mode: str,
                               per_sample_weights: Tensor, include_last_offset: bool,
                               padding_idx: int) -> Tensor:
    table = _table(weight)
    ids, offs, pw, mask_zero, keep = _bag_inputs(indices, offsets, per_sample_weights,
                                                 include_last_offset, padding_idx, weight)
    _values(grad, "grad", weight)
    g = _grad32(grad)
    if pw is not None and pw.dtype == np.float16:
        pw = pw.astype(np.float32)
    gw = _bagops.embedding_bag_per_sample_weights_backward(g, table, ids, offs, mode, pw,
                                                           mask_zero)
    full = np.zeros(per_sample_weights.shape, gw.dtype)
    if keep is not None:
        full.reshape(-1)[np.flatnonzero(keep)] = gw
    else:
        # Weights of ids in no bag (include_last_offset with one offset) get zeros.
        full.reshape(-1)[:gw.size] = gw.reshape(-1)
    return torch.from_numpy(full).to(per_sample_weights.dtype)


embedding_bag_psw_backward = _op("embedding_bag_psw_backward", _embedding_bag_psw_backward_impl)


@embedding_bag_psw_backward.register_fake
def _(grad, weight, indices, offsets, mode, per_sample_weights, include_last_offset,
      padding_idx):
    return per_sample_weights.new_empty(per_sample_weights.shape)


def _bag_setup(ctx, inputs, output):
    (weight, indices, offsets, mode, psw, include_last_offset, padding_idx,
     scale_grad_by_freq, sparse) = inputs
    psw_grad = psw is not None and ctx.needs_input_grad[4]
    ctx.save_for_backward(indices, offsets, output[1], psw, weight if psw_grad else None)
    ctx.shape = weight.shape
    ctx.args = (mode, include_last_offset, padding_idx, scale_grad_by_freq, sparse)


def _bag_grad(ctx, grad, _grad_argmax, backward=None, psw_backward=None):
    indices, offsets, argmax, psw, weight = ctx.saved_tensors
    mode, include_last_offset, padding_idx, scale, sparse = ctx.args
    gw = gp = None
    if ctx.needs_input_grad[0]:
        rows, values = (backward or torch.ops.fastembed.embedding_bag_backward)(
            grad, indices, offsets, argmax, mode, psw, include_last_offset, padding_idx,
            scale, ctx.shape[0])
        gw = _weight_grad(rows, values, ctx.shape[0], ctx.shape[1], sparse)
    if weight is not None:
        gp = (psw_backward or torch.ops.fastembed.embedding_bag_psw_backward)(
            grad, weight, indices, offsets, mode, psw, include_last_offset, padding_idx)
    return gw, None, None, None, gp, None, None, None, None


embedding_bag.register_autograd(_bag_grad, setup_context=_bag_setup)


# --- the eager path ----------------------------------------------------------------------
# Outside torch.compile the modules call the implementations through these Functions
# (same implementations, same autograd formulas), or directly when no gradient is
# wanted: a call through the dispatcher and custom_op's Python wrappers costs several
# times a small lookup itself.  Under torch.compile they call torch.ops.fastembed.*.

class EmbeddingFn(torch.autograd.Function):
    # Old-style forward(ctx, ...): with a separate setup_context, apply() binds the
    # arguments with inspect.signature on every call (about 50 us).
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq, sparse):
        inputs = (weight, indices, padding_idx, scale_grad_by_freq, sparse)
        out = _embedding_impl(*inputs)
        _embedding_setup(ctx, inputs, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return _embedding_grad(ctx, grad, _embedding_backward_impl)


class EmbeddingBagFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, indices, offsets, mode, per_sample_weights, include_last_offset,
                padding_idx, scale_grad_by_freq, sparse):
        inputs = (weight, indices, offsets, mode, per_sample_weights, include_last_offset,
                  padding_idx, scale_grad_by_freq, sparse)
        out = _embedding_bag_impl(*inputs)
        ctx.mark_non_differentiable(out[1])
        _bag_setup(ctx, inputs, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad, grad_argmax):
        return _bag_grad(ctx, grad, grad_argmax, _embedding_bag_backward_impl,
                         _embedding_bag_psw_backward_impl)
