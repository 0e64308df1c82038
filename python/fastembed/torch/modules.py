"""``fastembed.torch.Embedding`` and ``EmbeddingBag``: drop-ins for torch.nn's modules.

They subclass ``torch.nn.Embedding`` / ``torch.nn.EmbeddingBag`` (so ``isinstance``
checks, DDP's sparse-gradient handling, ``from_pretrained``, ``weight``, ``state_dict``
keys and ``reset_parameters`` are torch's own) and replace only ``forward``, which calls
the ``torch.ops.fastembed`` operators.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _ops  # noqa: F401  (registers torch.ops.fastembed.*)

__all__ = ["Embedding", "EmbeddingBag"]

_DTYPES = (torch.float32, torch.float64, torch.float16)


def _check_factory(device, dtype, cls: str) -> None:
    if device is not None and torch.device(device).type not in ("cpu", "meta"):
        raise ValueError(f"fastembed.torch.{cls} runs on the CPU, got device={device!r}; "
                         f"use torch.nn.{cls} on other devices")
    if dtype is not None and dtype not in _DTYPES:
        raise TypeError(f"fastembed.torch.{cls} supports float32, float64 and float16 "
                        f"weights, got dtype={dtype}")


def _check_input(module, input: Tensor, name: str = "input") -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of int32 or int64 ids, got "
                        f"{type(input).__name__}")
    if input.is_nested:
        raise ValueError(f"nested {name} tensors are not supported by fastembed.torch; pass "
                         f"1-D ids with offsets")
    for t, n in ((input, name), (module.weight, "weight")):
        if t.device.type != "cpu":
            raise ValueError(f"fastembed.torch runs on CPU tensors: {n} is on {t.device}")


def _flag_coalesced(param) -> None:
    """Restore the coalesced flag of a sparse gradient that is coalesced.

    The backward hands autograd a gradient flagged coalesced, but autograd's
    AccumulateGrad rebuilds a sparse gradient without the flag when it stores it, and an
    unflagged one is sorted again by every ``coalesce()`` (torch's optimizers call it).
    Whatever the gradient's origin, sorted unique rows are coalesced by definition; the
    check is one comparison per row.
    """
    g = param.grad
    if g is None or g.layout != torch.sparse_coo or g.is_coalesced() or g.sparse_dim() != 1:
        return
    rows = g._indices()[0]
    if rows.numel() < 2 or bool((rows[1:] > rows[:-1]).all()):
        g._coalesced_(True)


def _ensure_hook(module) -> None:
    # On the parameter (a frozen one cannot take hooks: checked again at each eager forward,
    # since a weight can be unfrozen or replaced later).
    w = module.weight
    if module.sparse and w.requires_grad and not getattr(w, "_fastembed_hooked", False):
        w.register_post_accumulate_grad_hook(_flag_coalesced)
        w._fastembed_hooked = True


def _padding(padding_idx) -> int:
    return -1 if padding_idx is None else int(padding_idx)


def _renorm(weight: Tensor, input: Tensor, max_norm: float, norm_type: float) -> None:
    """torch's own max_norm renormalization, done only once the ids are known good."""
    if input.numel():
        lo, hi = int(input.min()), int(input.max())
        if lo < 0 or hi >= weight.shape[0]:
            bad = lo if lo < 0 else hi
            raise IndexError(f"input holds id {bad}, out of range for a table of "
                             f"{weight.shape[0]} rows")
    with torch.no_grad():
        torch.embedding_renorm_(weight, input, max_norm, norm_type)


class Embedding(torch.nn.Embedding):
    """``torch.nn.Embedding`` on fastembed's kernels (CPU; float32, float64 or float16 weights).

    Every argument of ``torch.nn.Embedding`` is accepted with its meaning.  The forward
    is a gather (bit for bit torch's); the weight gradient is summed per row in index
    order (deterministic for any thread count) and, with ``sparse=True``, is a coalesced
    sparse COO tensor (torch's is uncoalesced; ``.coalesce()`` of it equals ours).
    ``scale_grad_by_freq`` also works with ``sparse=True`` (torch raises there).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None) -> None:
        _check_factory(device, dtype, "Embedding")
        if _weight is not None:
            _check_factory(_weight.device, _weight.dtype, "Embedding")
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx,
                         max_norm=max_norm, norm_type=norm_type,
                         scale_grad_by_freq=scale_grad_by_freq, sparse=sparse,
                         _weight=_weight, _freeze=_freeze, device=device, dtype=dtype)
        _ensure_hook(self)

    def forward(self, input: Tensor) -> Tensor:
        _check_input(self, input)
        if not torch.compiler.is_compiling():
            _ensure_hook(self)
        if self.max_norm is not None:
            _renorm(self.weight, input, self.max_norm, self.norm_type)
        args = (self.weight, input, _padding(self.padding_idx), bool(self.scale_grad_by_freq),
                bool(self.sparse))
        if torch.compiler.is_compiling():
            return torch.ops.fastembed.embedding(*args)
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return _ops.EmbeddingFn.apply(*args)
        return _ops._embedding_impl(*args)


class EmbeddingBag(torch.nn.EmbeddingBag):
    """``torch.nn.EmbeddingBag`` on fastembed's kernels (CPU; float32, float64 or float16 weights).

    Every argument of ``torch.nn.EmbeddingBag`` is accepted with its meaning; results
    equal torch's to float rounding (pooled sums are added in position order).  Where
    torch refuses a combination, so do we, with a ``ValueError`` at construction
    (``scale_grad_by_freq`` with ``mode="max"``) or in ``forward`` (``per_sample_weights``
    with a mode other than ``"sum"``).  Two extensions: ``sparse=True`` works with
    ``mode="max"`` and with ``scale_grad_by_freq``.  Sparse gradients are coalesced.
    For ``max``, NaN propagates as in ``torch.amax`` (see ``fastembed.ops.embedding_bag``).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                 sparse: bool = False, _weight=None, include_last_offset: bool = False,
                 padding_idx=None, device=None, dtype=None) -> None:
        _check_factory(device, dtype, "EmbeddingBag")
        if _weight is not None:
            _check_factory(_weight.device, _weight.dtype, "EmbeddingBag")
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode must be 'sum', 'mean' or 'max', got {mode!r}")
        if mode == "max" and scale_grad_by_freq:
            raise ValueError("max mode does not support scaling the gradient by the frequency "
                             "(scale_grad_by_freq=True), as in torch.nn.EmbeddingBag")
        super().__init__(num_embeddings, embedding_dim, max_norm=max_norm,
                         norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq,
                         mode=mode, sparse=sparse, _weight=_weight,
                         include_last_offset=include_last_offset, padding_idx=padding_idx,
                         device=device, dtype=dtype)
        _ensure_hook(self)

    def forward(self, input: Tensor, offsets: Tensor | None = None,
                per_sample_weights: Tensor | None = None) -> Tensor:
        _check_input(self, input)
        if not torch.compiler.is_compiling():
            _ensure_hook(self)
        if offsets is not None:
            _check_input(self, offsets, "offsets")
        if per_sample_weights is not None:
            if self.mode != "sum":
                raise ValueError(f"per_sample_weights are only supported for mode 'sum' "
                                 f"(as in torch.nn.EmbeddingBag), got mode {self.mode!r}")
            if not isinstance(per_sample_weights, Tensor):
                raise TypeError(f"per_sample_weights must be a torch.Tensor, got "
                                f"{type(per_sample_weights).__name__}")
            if per_sample_weights.shape != input.shape:
                raise ValueError(f"per_sample_weights must have the shape of input "
                                 f"{tuple(input.shape)}, got {tuple(per_sample_weights.shape)}")
        if self.max_norm is not None:
            _renorm(self.weight, input, self.max_norm, self.norm_type)
        args = (self.weight, input, offsets, self.mode, per_sample_weights,
                bool(self.include_last_offset), _padding(self.padding_idx),
                bool(self.scale_grad_by_freq), bool(self.sparse))
        if torch.compiler.is_compiling():
            return torch.ops.fastembed.embedding_bag(*args)[0]
        if torch.is_grad_enabled() and (self.weight.requires_grad or (
                per_sample_weights is not None and per_sample_weights.requires_grad)):
            return _ops.EmbeddingBagFn.apply(*args)[0]
        return _ops._embedding_bag_impl(*args)[0]
