"""Native kernels on numpy arrays: numpy in, numpy out.

``gather``, ``scatter_add`` and ``coalesce`` are the C++ functions themselves (no
Python frame in between, so a tiny lookup costs about one call).  They validate
everything before the first write; see each function's docstring.
"""
from __future__ import annotations

from ._core import coalesce, gather, scatter_add
from ._bagops import embedding_bag

__all__ = ["gather", "scatter_add", "coalesce", "embedding_bag"]
