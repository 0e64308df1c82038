"""Pretrained vectors (filled in by the pretrained-vectors work)."""
from __future__ import annotations


class WordVectors:
    pass


def load_vectors(path, format="auto", dtype="float32", limit=None):
    raise NotImplementedError


def build_embedding_matrix(word_index, vectors, num_words=None):
    raise NotImplementedError


def embedding_coverage(word_index, vectors, num_words=None):
    raise NotImplementedError
