"""Keras 3 text layers: fe.TextVectorization beside keras.layers.TextVectorization (TF CPU).

Groups "keras3-adapt" (max_tokens=20000), "keras3-int" (output_mode="int",
output_sequence_length=100) and "keras3-tf_idf" (max_tokens=20000).  The text is real:
~50 MB of docstrings of the installed Python packages, one paragraph per document
(``keras3_corpus.py``; without FASTEMBED_BENCH_FULL=1 10 MB, or FASTEMBED_BENCH_KERAS3_MB).  Every benchmark
asserts its result against Keras'.  The tf_idf call encodes the first 4000 documents
(a dense (4000, 20000) float32 output is 320 MB for each library).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastembed as fe
from conftest import FULL
from keras3_corpus import corpus

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

MB = float(os.environ.get("FASTEMBED_BENCH_KERAS3_MB", "50" if FULL else "10"))
MAX_TOKENS = 20000
TFIDF_DOCS = 4000
# Keras takes seconds per call: one round; fastembed three (minimum is the fair figure
# on a shared machine).
ROUNDS = {"fastembed": 3, "keras": 1}

_cache: dict = {}


def _docs():
    if "docs" not in _cache:
        _cache["docs"] = corpus(MB)
    return _cache["docs"]


def _reference_vocab():
    if "vocab" not in _cache:
        k = keras.layers.TextVectorization(max_tokens=MAX_TOKENS)
        k.adapt(_docs())
        _cache["vocab"] = [str(t) for t in k.get_vocabulary()]
    return _cache["vocab"]


def _info(benchmark, library):
    docs = _docs()
    benchmark.extra_info.update(library=library, documents=len(docs),
                                megabytes=round(sum(map(len, docs)) / 1e6, 1),
                                max_tokens=MAX_TOKENS)


@pytest.mark.parametrize("library", ["fastembed", "keras"])
def test_adapt(benchmark, library):
    benchmark.group = "keras3-adapt"
    _info(benchmark, library)
    docs = _docs()
    cls = fe.TextVectorization if library == "fastembed" else keras.layers.TextVectorization

    def run():
        layer = cls(max_tokens=MAX_TOKENS)
        layer.adapt(docs)
        return layer

    layer = benchmark.pedantic(run, rounds=ROUNDS[library], iterations=1)
    assert [str(t) for t in layer.get_vocabulary()] == _reference_vocab()


@pytest.mark.parametrize("library", ["fastembed", "keras"])
def test_call_int(benchmark, library):
    benchmark.group = "keras3-int"
    _info(benchmark, library)
    docs = _docs()
    vocab = _reference_vocab()
    if library == "fastembed":
        layer = fe.TextVectorization(output_sequence_length=100, vocabulary=vocab)
        call = lambda: layer(docs)  # noqa: E731
    else:
        layer = keras.layers.TextVectorization(output_sequence_length=100, vocabulary=vocab)
        call = lambda: layer(docs).numpy()  # noqa: E731
    out = benchmark.pedantic(call, rounds=ROUNDS[library], iterations=1)
    if "int" not in _cache:
        _cache["int"] = out
    np.testing.assert_array_equal(out, _cache["int"])
    assert out.shape == (len(docs), 100) and out.dtype == np.int64


@pytest.mark.parametrize("library", ["fastembed", "keras"])
def test_call_tf_idf(benchmark, library):
    benchmark.group = "keras3-tf_idf"
    _info(benchmark, library)
    benchmark.extra_info["called_documents"] = TFIDF_DOCS
    docs = _docs()
    if "tfidf_layers" not in _cache:
        f = fe.TextVectorization(max_tokens=MAX_TOKENS, output_mode="tf_idf")
        f.adapt(docs)
        k = keras.layers.TextVectorization(max_tokens=MAX_TOKENS, output_mode="tf_idf")
        k.set_vocabulary(f.get_vocabulary(), idf_weights=f._idf)
        _cache["tfidf_layers"] = {"fastembed": f, "keras": k}
    layer = _cache["tfidf_layers"][library]
    batch = docs[:TFIDF_DOCS]
    if library == "fastembed":
        call = lambda: layer(batch)  # noqa: E731
    else:
        call = lambda: layer(batch).numpy()  # noqa: E731
    out = benchmark.pedantic(call, rounds=ROUNDS[library], iterations=1)
    if "tfidf" not in _cache:
        _cache["tfidf"] = out
    np.testing.assert_array_equal(out, _cache["tfidf"])
    assert out.dtype == np.float32
