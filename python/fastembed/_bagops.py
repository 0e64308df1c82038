"""fastembed.ops.embedding_bag (filled in by the EmbeddingBag work)."""
from __future__ import annotations


def embedding_bag(table, ids, offsets=None, mode="sum", per_sample_weights=None,
                  mask_zero=False):
    raise NotImplementedError("embedding_bag is not implemented yet")
