"""Pickling: every public stateful class round-trips to an object that behaves the same.

Same config, same arrays (dtype, contents, writeable C-contiguous tables), same outputs for
the same inputs, and the same behaviour afterwards (further fitting / training gives the
same result on the original and on the copy).  An optimizer pickled together with its
variables keeps its per-variable state (slots and step counts).  The on-disk formats stay
npy / JSON: saved folders load with ``allow_pickle=False``.
"""
from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

import fastembed as fe

PROTOCOLS = sorted({2, 4, pickle.HIGHEST_PROTOCOL})
RNG_SEED = 7  # of the shared `rng` fixture (conftest.py)
TEXTS = ["Hope to see you soon", "Nice to see you again", "the cat sat on the mat",
         "the dog ate my homework", "caf\u00e9 au lait, s'il vous pla\u00eet!"]


def roundtrip(obj, protocol):
    return pickle.loads(pickle.dumps(obj, protocol=protocol))


def assert_table(a, b):
    assert isinstance(b, np.ndarray) and b.dtype == a.dtype and b.shape == a.shape
    assert b.tobytes() == a.tobytes()
    assert b.flags.c_contiguous and b.flags.writeable


# -- Tokenizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kwargs", [
    {},
    {"num_words": 6, "oov_token": "<OOV>"},
    {"char_level": True, "lower": False},
    {"order": "appearance", "index_from": 0},
])
def test_tokenizer_pickle(kwargs, protocol):
    tok = fe.Tokenizer(**kwargs)
    tok.fit_on_texts(TEXTS)
    tok2 = roundtrip(tok, protocol)
    assert type(tok2) is fe.Tokenizer
    assert tok2.get_config() == tok.get_config()
    assert tok2.to_json() == tok.to_json()
    for attr in ("word_counts", "word_docs", "index_docs", "word_index", "index_word",
                 "document_count", "num_words", "oov_token"):
        assert getattr(tok2, attr) == getattr(tok, attr), attr
    probe = TEXTS + ["an unseen sentence about the cat", ""]
    assert tok2.texts_to_sequences(probe) == tok.texts_to_sequences(probe)
    seqs = tok.texts_to_sequences(probe)
    assert tok2.sequences_to_texts(seqs) == tok.sequences_to_texts(seqs)
    for mode in ("binary", "count", "tfidf", "freq"):
        np.testing.assert_array_equal(tok2.texts_to_matrix(probe, mode=mode),
                                      tok.texts_to_matrix(probe, mode=mode))
    # The copy keeps fitting exactly like the original.
    more = ["see you soon, cat", "a brand new word appears"]
    tok.fit_on_texts(more)
    tok2.fit_on_texts(more)
    assert tok2.get_config() == tok.get_config()
    assert tok2.texts_to_sequences(probe) == tok.texts_to_sequences(probe)


def test_tokenizer_deepcopy_is_independent():
    tok = fe.Tokenizer()
    tok.fit_on_texts(TEXTS)
    tok2 = copy.deepcopy(tok)
    tok2.fit_on_texts(["zebra zebra zebra"])
    assert "zebra" in tok2.word_index and "zebra" not in tok.word_index


# -- Embedding / EmbeddingBag -----------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_pickle(protocol, dtype):
    emb = fe.Embedding(12, 5, mask_zero=True, input_length=4, seed=3,
                       dtype=dtype, name="words")
    ids = np.array([[0, 3, 11, 3], [5, 0, 0, 1]])
    out = emb(ids)
    emb2 = roundtrip(emb, protocol)
    assert type(emb2) is fe.Embedding
    assert emb2.get_config() == emb.get_config()
    assert_table(emb.embeddings, emb2.embeddings)
    assert emb2.embeddings is not emb.embeddings
    np.testing.assert_array_equal(emb2(ids), out)
    np.testing.assert_array_equal(emb2.compute_mask(ids), emb.compute_mask(ids))
    for w1, w2 in zip(emb.get_weights(), emb2.get_weights()):
        assert_table(w1, w2)
    g = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    s1, s2 = emb.backward(g, ids=ids), emb2.backward(g, ids=ids)
    np.testing.assert_array_equal(s1.indices, s2.indices)
    np.testing.assert_array_equal(s1.values, s2.values)
    assert tuple(s1.dense_shape) == tuple(s2.dense_shape)
    # The copy is a separate table: updating it leaves the original alone.
    before = emb.embeddings.copy()
    fe.ops.scatter_add(emb2.embeddings, np.array([1]), np.ones((1, 5), dtype))
    np.testing.assert_array_equal(emb.embeddings, before)


def test_embedding_pickle_after_set_weights_and_trainable_flag():
    emb = fe.Embedding.from_pretrained(
        np.arange(12, dtype=np.float32).reshape(4, 3), trainable=False)
    emb2 = roundtrip(emb, pickle.HIGHEST_PROTOCOL)
    assert emb2.trainable is False and emb2.get_config() == emb.get_config()
    assert_table(emb.embeddings, emb2.embeddings)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_pickle(protocol, mode):
    bag = fe.EmbeddingBag(9, 4, mode=mode, mask_zero=True, seed=1)
    ids2d = np.array([[1, 2, 0], [0, 0, 0], [8, 8, 3]])
    ids1d = np.array([1, 2, 8, 0, 3])
    offsets = np.array([0, 2, 2])
    bag2 = roundtrip(bag, protocol)
    assert type(bag2) is fe.EmbeddingBag
    assert bag2.get_config() == bag.get_config()
    assert_table(bag.embeddings, bag2.embeddings)
    np.testing.assert_array_equal(bag2(ids2d), bag(ids2d))
    np.testing.assert_array_equal(bag2(ids1d, offsets=offsets), bag(ids1d, offsets=offsets))
    if mode != "max":
        w = np.array([0.5, 1.0, 2.0, 1.0, -1.0], np.float32)
        np.testing.assert_array_equal(bag2(ids1d, offsets=offsets, per_sample_weights=w),
                                      bag(ids1d, offsets=offsets, per_sample_weights=w))


def test_sparse_gradient_pickle():
    g = fe.SparseGradient(np.array([3, 1, 3]), np.ones((3, 2), np.float32), (5, 2))
    g2 = roundtrip(g, pickle.HIGHEST_PROTOCOL)
    np.testing.assert_array_equal(g2.indices, g.indices)
    np.testing.assert_array_equal(g2.values, g.values)
    assert tuple(g2.dense_shape) == tuple(g.dense_shape)
    np.testing.assert_array_equal(g2.to_dense(), g.to_dense())


# -- WordVectors ----------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_word_vectors_pickle(tmp_path, protocol):
    p = tmp_path / "vecs.txt"
    p.write_text("the 0.1 0.2 0.3\ncat -1 2.5 3\ncaf\u00e9 1e-3 0 -0\nthe 9 9 9\n",
                 encoding="utf-8")
    wv = fe.load_vectors(p, format="glove")
    wv2 = roundtrip(wv, protocol)
    assert type(wv2) is fe.WordVectors
    assert wv2.words == wv.words and wv2.index == wv.index and wv2.dim == wv.dim
    assert len(wv2) == len(wv) == 3
    assert wv2.vectors.dtype == wv.vectors.dtype
    assert wv2.vectors.tobytes() == wv.vectors.tobytes()
    for w in wv.words:
        assert w in wv2
        np.testing.assert_array_equal(wv2[w], wv[w])
    for attr in ("n_duplicates", "format"):
        if hasattr(wv, attr):
            assert getattr(wv2, attr) == getattr(wv, attr)
    with pytest.raises(KeyError):
        wv2["dog"]
    wi = {"the": 1, "dog": 2, "cat": 3}
    np.testing.assert_array_equal(fe.build_embedding_matrix(wi, wv2),
                                  fe.build_embedding_matrix(wi, wv))


# -- optimizers -----------------------------------------------------------------------------

def _optimizers():
    from fastembed import optimizers as O

    out = []
    for name, kw in [("SGD", {"learning_rate": 0.1}),
                     ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
                     ("SGD", {"learning_rate": 0.1, "momentum": 0.5, "lazy": False}),
                     ("Adagrad", {"learning_rate": 0.1}),
                     ("Adam", {"learning_rate": 0.01}),
                     ("Adam", {"learning_rate": 0.01, "lazy": False})]:
        out.append(pytest.param(name, kw, id=f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"))
    return out


def _grads(rng, rows, dim, dtype=np.float32):
    idx = rng.integers(0, rows, 7)
    return fe.SparseGradient(idx, rng.standard_normal((7, dim)).astype(dtype), (rows, dim))


@pytest.mark.parametrize("name,kwargs", _optimizers())
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_optimizer_pickled_with_variables_keeps_state(name, kwargs, protocol):
    from fastembed import optimizers as O

    rng = np.random.default_rng(5)
    emb = fe.Embedding(10, 3, seed=2)
    dense_var = rng.standard_normal((4, 3)).astype(np.float32)
    opt = getattr(O, name)(**kwargs)
    for _ in range(3):  # build up slots and step counts
        opt.apply_gradients([(_grads(rng, 10, 3), emb),
                             (rng.standard_normal((4, 3)).astype(np.float32), dense_var)])

    opt2, emb2, dense2 = roundtrip((opt, emb, dense_var), protocol)
    assert type(opt2) is type(opt)
    assert opt2.get_config() == opt.get_config()
    assert_table(emb.embeddings, emb2.embeddings)
    assert_table(dense_var, dense2)
    assert opt2.get_step(emb2) == opt.get_step(emb)
    assert opt2.get_step(dense2) == opt.get_step(dense_var)
    assert opt2.iterations == opt.iterations

    # Continue training both the same way: identical variables afterwards, bit for bit.
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(3):
        opt.apply_gradients([(_grads(rng_a, 10, 3), emb),
                             (rng_a.standard_normal((4, 3)).astype(np.float32), dense_var)])
        opt2.apply_gradients([(_grads(rng_b, 10, 3), emb2),
                              (rng_b.standard_normal((4, 3)).astype(np.float32), dense2)])
    assert emb2.embeddings.tobytes() == emb.embeddings.tobytes()
    assert dense2.tobytes() == dense_var.tobytes()
    assert opt2.get_step(emb2) == opt.get_step(emb)
    # And the copy did not touch the original's variables through shared state.
    assert emb2.embeddings is not emb.embeddings


def test_optimizer_state_roundtrip_is_json_and_npy():
    """get_state() is arrays plus a JSON-able config (never pickle for the on-disk form)."""
    from fastembed import optimizers as O

    emb = fe.Embedding(6, 2, seed=0)
    opt = O.Adam(learning_rate=0.01)
    opt.apply_gradients([(_grads(np.random.default_rng(1), 6, 2), emb)])
    state = opt.get_state()

    def walk(x):
        if isinstance(x, np.ndarray):
            assert x.dtype != object
            return
        if isinstance(x, dict):
            for k, v in x.items():
                assert isinstance(k, (str, int))
                walk(v)
            return
        if isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
            return
        json.dumps(x)

    walk(state)


def test_embedding_save_is_npy_and_json(tmp_path):
    emb = fe.Embedding(7, 3, seed=4, mask_zero=True)
    emb.save(tmp_path / "e")
    files = sorted(p.name for p in (tmp_path / "e").iterdir())
    assert "config.json" in files and "embeddings.npy" in files
    json.loads((tmp_path / "e" / "config.json").read_text())
    arr = np.load(tmp_path / "e" / "embeddings.npy", allow_pickle=False)
    np.testing.assert_array_equal(arr, emb.embeddings)
    for name in files:
        head = (tmp_path / "e" / name).read_bytes()[:2]
        assert head != b"\x80\x04" and head[:1] != b"\x80", f"{name} looks like a pickle"


# -- layers: the last call (for backward) and memory-mapped tables --------------------------

def test_layer_pickle_keeps_the_last_call(rng):
    emb = fe.Embedding(20, 4, seed=1, mask_zero=True)
    ids = rng.integers(0, 20, size=(3, 5))
    emb(ids)
    e2 = pickle.loads(pickle.dumps(emb))
    np.testing.assert_array_equal(e2(ids), emb(ids))
    g = rng.standard_normal((3, 5, 4)).astype(np.float32)
    a, b = emb.backward(g), e2.backward(g)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    assert e2.get_config() == emb.get_config()
    e2.embeddings[0] = 5  # independent copies
    assert emb.embeddings[0, 0] != 5
    for mode in ("sum", "mean", "max"):
        bag = fe.EmbeddingBag(20, 4, mode=mode, seed=3)
        bag(ids)
        bag2 = pickle.loads(pickle.dumps(bag))
        g = rng.standard_normal((3, 4)).astype(np.float32)
        a, b = bag.backward(g), bag2.backward(g)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(bag2(ids), bag(ids))
        assert bag2.mode == mode


def test_pickle_memory_mapped_layer(tmp_path):
    e = fe.Embedding(10, 3, seed=1)
    e.save(tmp_path / "m")
    m = fe.Embedding.load(tmp_path / "m", mmap_mode="r")
    p = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(p([1, 2]), e([1, 2]))
