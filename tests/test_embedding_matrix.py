"""fe.build_embedding_matrix against the loop of Keras' "Using pre-trained word
embeddings" example, and a frozen Embedding built from its result."""
from __future__ import annotations

import numpy as np
import pytest

import fastembed as fe

from vector_files import rand_vecs, write_text


def keras_matrix(word_index, embeddings_index, dim, num_words=None, dtype=np.float32):
    """The loop of Keras' pretrained-embeddings example (with its num_words cut-off)."""
    n = len(word_index) + 1 if num_words is None else min(num_words, len(word_index) + 1)
    embedding_matrix = np.zeros((n, dim), dtype=dtype)
    for word, i in word_index.items():
        if num_words is not None and i >= num_words:
            continue
        embedding_vector = embeddings_index.get(word)
        if embedding_vector is not None:
            embedding_matrix[i] = embedding_vector
    return embedding_matrix


@pytest.fixture
def pretrained(tmp_path):
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(0, 200, 2)] + ["the", "naïve"]
    vecs = rng.normal(0, 1, (len(words), 8)).astype(np.float32)
    return fe.load_vectors(write_text(tmp_path / "v.txt", words, vecs)), words, vecs


@pytest.mark.parametrize("num_words", [None, 1, 10, 51, 1000])
def test_build_embedding_matrix_matches_keras_loop(pretrained, num_words):
    wv, words, vecs = pretrained
    word_index = {f"w{i}": i + 1 for i in range(100)}
    word_index["naïve"] = 101
    word_index["unknown"] = 102
    emb = dict(zip(words, vecs))
    got = fe.build_embedding_matrix(word_index, wv, num_words=num_words)
    ref = keras_matrix(word_index, emb, 8, num_words)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    assert not got[0].any()
    # dict input: same matrix, in the dict's dtype
    np.testing.assert_array_equal(fe.build_embedding_matrix(word_index, emb, num_words), ref)
    emb64 = {w: v.astype(np.float64) for w, v in emb.items()}
    m64 = fe.build_embedding_matrix(word_index, emb64, num_words)
    assert m64.dtype == np.float64
    np.testing.assert_array_equal(m64, ref.astype(np.float64))
    # coverage: counted over the kept words
    kept = {w: i for w, i in word_index.items() if num_words is None or i < num_words}
    found = sum(w in emb for w in kept)
    assert fe.embedding_coverage(word_index, wv, num_words) == (found, len(kept) - found)
    assert fe.embedding_coverage(word_index, emb, num_words) == (found, len(kept) - found)


def test_build_embedding_matrix_with_tokenizer(pretrained):
    wv, words, vecs = pretrained
    tok = fe.Tokenizer()
    tok.fit_on_texts(["the w2 w4 w4 naïve zzz", "w2 the the qqq"])
    m = fe.build_embedding_matrix(tok, wv)
    ref = keras_matrix(tok.word_index, dict(zip(words, vecs)), 8)
    np.testing.assert_array_equal(m, ref)
    assert fe.embedding_coverage(tok, wv) == (4, 2)


def test_build_embedding_matrix_errors(pretrained):
    wv, _, _ = pretrained
    with pytest.raises(IndexError, match=r"word_index\['w2'\] = 5 is out of range"):
        fe.build_embedding_matrix({"w0": 1, "w2": 5}, wv)
    with pytest.raises(IndexError, match="-1"):
        fe.build_embedding_matrix({"w0": -1}, wv)
    # words cut off by num_words are skipped before the range check
    m = fe.build_embedding_matrix({"w0": 1, "w2": 5}, wv, num_words=2)
    assert m.shape == (2, 8)
    with pytest.raises(TypeError, match="integers"):
        fe.build_embedding_matrix({"w0": "1"}, wv)
    with pytest.raises(TypeError):
        fe.build_embedding_matrix(["w0"], wv)
    with pytest.raises(TypeError):
        fe.build_embedding_matrix({"w0": 1}, [1, 2])
    with pytest.raises(ValueError, match="empty"):
        fe.build_embedding_matrix({"w0": 1}, {})
    with pytest.raises(ValueError, match="num_words"):
        fe.build_embedding_matrix({"w0": 1}, wv, num_words=-1)


def test_from_pretrained_frozen(pretrained):
    wv, _, _ = pretrained
    word_index = {"w0": 1, "w2": 2, "nope": 3}
    m = fe.build_embedding_matrix(word_index, wv)
    emb = fe.Embedding.from_pretrained(m)
    np.testing.assert_array_equal(emb(np.array([[1, 2, 3, 0]])), m[[[1, 2, 3, 0]]])
    assert not emb.trainable
