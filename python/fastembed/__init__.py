"""fastembed: embedding tables with a native CPU hot path.

Keras-exact text preprocessing (``Tokenizer``, ``pad_sequences``; Keras 3's
``TextVectorization`` and ``StringLookup`` without TensorFlow), ``Embedding`` and
``EmbeddingBag`` layers with sparse gradients and optimizers, fast pretrained-vector
loaders, and the kernels under them in ``fastembed.ops``. ``fastembed.torch`` (imported
on its own, needs torch) puts the same kernels inside PyTorch.

Not to be confused with the unrelated PyPI package of the same name (an ONNX
sentence-embedding library): this one is about embedding *tables*.
"""
from __future__ import annotations

from ._version import __version__
from ._core import get_num_threads, set_num_threads
from . import ops
from . import optimizers
from .text import Tokenizer, text_to_word_sequence, tokenizer_from_json
from .sequence import pad_sequences
from .layers import Embedding, EmbeddingBag, SparseGradient
from ._lowp import QuantizedTable
from .vectors import WordVectors, build_embedding_matrix, embedding_coverage, load_vectors
from .preprocessing import StringLookup, TextVectorization
from ._keras_pickle import load_keras_tokenizer

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "ops",
    "optimizers",
    "Tokenizer",
    "text_to_word_sequence",
    "tokenizer_from_json",
    "pad_sequences",
    "Embedding",
    "EmbeddingBag",
    "SparseGradient",
    "QuantizedTable",
    "WordVectors",
    "load_vectors",
    "build_embedding_matrix",
    "embedding_coverage",
    "TextVectorization",
    "StringLookup",
    "load_keras_tokenizer",
]
