"""fastembed inside PyTorch: custom operators, drop-in modules, fused sparse optimizers.

Needs torch (the extra ``fastembed[torch]``); ``import fastembed`` alone never imports it.
"""
from __future__ import annotations

import importlib

try:
    import torch as _torch  # noqa: F401  (the real torch: imports are absolute)
except ImportError as e:  # pragma: no cover - exercised in a child without torch
    raise ImportError(
        "fastembed.torch needs PyTorch: pip install 'fastembed[torch]' (or a CPU build of "
        "torch, e.g. pip install torch==2.13.0)") from e

from .modules import Embedding, EmbeddingBag  # noqa: E402  (registers torch.ops.fastembed)

__all__: list[str] = ["Embedding", "EmbeddingBag", "optim", "clip_grad_norm_"]


def __getattr__(name: str):
    # fastembed.torch.optim (and clip_grad_norm_ with it) loads on first use.
    # importlib, not "from . import optim": that form asks this __getattr__ again first.
    if name in ("optim", "clip_grad_norm_"):
        optim = importlib.import_module(".optim", __name__)
        return optim if name == "optim" else optim.clip_grad_norm_
    raise AttributeError(f"module 'fastembed.torch' has no attribute {name!r}")
