"""Embedding layers (filled in by the layers work)."""
from __future__ import annotations


class SparseGradient:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError


class Embedding:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError


class EmbeddingBag(Embedding):
    pass
