"""Native kernels on numpy arrays: numpy in, numpy out.

``gather``, ``scatter_add`` and ``coalesce`` are the C++ functions themselves (no
Python frame in between, so a tiny lookup costs about one call).  They validate
everything before the first write; see each function's docstring.

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

from ._core import coalesce, gather, scatter_add
from ._bagops import (embedding_bag, embedding_bag_backward,
                      embedding_bag_per_sample_weights_backward)
from ._lowp import QuantizedTable, quantize_rows

__all__ = ["gather", "scatter_add", "coalesce", "embedding_bag", "embedding_bag_backward",
           "embedding_bag_per_sample_weights_backward", "quantize_rows", "QuantizedTable"]
