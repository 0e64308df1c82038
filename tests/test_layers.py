"""Embedding, EmbeddingBag and SparseGradient: forward, backward, weights, config, pickling."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastembed as fe


RNG_SEED = 7  # of the shared `rng` fixture (conftest.py)


def zipf(rng, shape, rows):
    return (rng.zipf(1.3, size=shape) - 1) % rows


# ------------------------------------------------------------------ SparseGradient

def test_sparse_gradient_basics():
    g = fe.SparseGradient([3, 1, 3], np.array([[1, 2], [3, 4], [5, 6]], np.float32), (5, 2))
    assert g.indices.dtype == np.int64 and g.dense_shape == (5, 2)
    assert isinstance(g.dense_shape[0], int)
    dense = g.to_dense()
    np.testing.assert_array_equal(dense, [[0, 0], [3, 4], [0, 0], [6, 8], [0, 0]])
    assert dense.dtype == np.float32
    assert not g.is_coalesced()
    c = g.coalesce()
    np.testing.assert_array_equal(c.indices, [1, 3])
    np.testing.assert_array_equal(c.values, [[3, 4], [6, 8]])
    assert c.is_coalesced() and c.dense_shape == (5, 2)
    np.testing.assert_array_equal(c.to_dense(), dense)
    empty = fe.SparseGradient(np.zeros(0, np.int64), np.zeros((0, 2)), (5, 2))
    assert np.all(empty.to_dense() == 0) and empty.coalesce().indices.size == 0
    g2 = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(g2.values, g.values)
    assert g2.dense_shape == g.dense_shape


@pytest.mark.parametrize("args, exc, msg", [
    (([0, 1], np.zeros((3, 2)), (5, 2)), ValueError, r"values must have shape"),
    (([0, 1], np.zeros((2, 3)), (5, 2)), ValueError, r"values must have shape"),
    (([[0, 1]], np.zeros((2, 2)), (5, 2)), ValueError, r"indices must be 1-D"),
    (([0, 5], np.zeros((2, 2)), (5, 2)), IndexError, r"indices\[1\] = 5"),
    (([0, -1], np.zeros((2, 2)), (5, 2)), IndexError, r"indices\[1\] = -1"),
    (([0, 1], np.zeros((2, 2)), (5, 2, 1)), ValueError, r"dense_shape"),
    (([0, 1], np.zeros((2, 2), np.int32), (5, 2)), TypeError, r"float32 or float64"),
    (([0.5, 1], np.zeros((2, 2)), (5, 2)), TypeError, r"integers"),
])
def test_sparse_gradient_validation(args, exc, msg):
    with pytest.raises(exc, match=msg):
        fe.SparseGradient(*args)


# ------------------------------------------------------------------ Embedding forward

@pytest.mark.parametrize("id_dtype", [np.int8, np.uint16, np.int32, np.int64, np.uint64,
                                      np.float32, np.float64])
def test_lookup_matches_numpy_and_torch(rng, id_dtype):
    V, D = 120, 16
    emb = fe.Embedding(V, D, seed=1)
    ids = zipf(rng, (6, 9), 120).astype(id_dtype)
    out = emb(ids)
    assert out.shape == (6, 9, D) and out.dtype == np.float32
    np.testing.assert_array_equal(out, emb.embeddings[ids.astype(np.int64)])
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.embedding(torch.from_numpy(ids.astype(np.int64)),
                                      torch.from_numpy(emb.embeddings)).numpy()
    np.testing.assert_array_equal(out, t)


def test_lookup_array_likes():
    emb = fe.Embedding(7, 2, seed=0)
    W = emb.embeddings
    np.testing.assert_array_equal(emb([0, 1, 2]), W[[0, 1, 2]])
    np.testing.assert_array_equal(emb([[5, 1], [2, 3]]), W[[[5, 1], [2, 3]]])
    np.testing.assert_array_equal(emb(4), W[4])
    np.testing.assert_array_equal(emb([[1.0, 6.0]]), W[[[1, 6]]])
    assert emb([]).shape == (0, 2)
    with pytest.raises(ValueError, match="whole number"):
        emb([1.5])
    with pytest.raises(TypeError, match="bool"):
        emb(np.array([True]))
    with pytest.raises(TypeError):
        emb(["a"])


def test_bad_ids_raise_and_change_nothing(rng):
    emb = fe.Embedding(10, 4, seed=0)
    emb([1, 2])
    before = emb.embeddings.tobytes()
    last = emb._last_ids.copy()
    with pytest.raises(IndexError, match=r"ids\[1, 0\] = 10 is out of range for a table of 10"):
        emb([[1, 2], [10, 3]])
    with pytest.raises(IndexError, match=r"ids\[2\] = -1"):
        emb(np.array([1, 2, -1], np.int16))
    assert emb.embeddings.tobytes() == before
    np.testing.assert_array_equal(emb._last_ids, last)


def test_input_length():
    emb = fe.Embedding(10, 3, input_length=4)
    assert emb(np.ones((2, 4), np.int32)).shape == (2, 4, 3)
    with pytest.raises(ValueError, match=r'"input_length" is 4, but received input has shape \(2, 5\)'):
        emb(np.ones((2, 5), np.int32))
    with pytest.raises(ValueError, match="input_length"):
        fe.Embedding(10, 3, input_length=0)


def test_constructor_validation():
    for bad in (0, -1, 3.7, True, "3", None):
        with pytest.raises(ValueError, match="input_dim"):
            fe.Embedding(bad, 2)
    with pytest.raises(ValueError, match="output_dim"):
        fe.Embedding(3, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        fe.Embedding(3, 2, dtype="int32")
    with pytest.raises(ValueError, match="unknown embeddings_initializer"):
        fe.Embedding(3, 2, embeddings_initializer="orthogonalish")
    with pytest.raises(ValueError, match="mode must be"):
        fe.EmbeddingBag(3, 2, mode="min")
    with pytest.raises(TypeError, match="unexpected keyword"):
        fe.Embedding(3, 2, sparse=True)
    assert fe.Embedding(np.int64(3), np.int32(2)).embeddings.shape == (3, 2)


# ------------------------------------------------------------------ initializers and weights

def test_initializers():
    u = fe.Embedding(1000, 50, seed=3).embeddings
    assert u.dtype == np.float32 and u.flags.c_contiguous
    assert u.min() >= -0.05 and u.max() <= 0.05 and u.std() > 0.02
    np.testing.assert_array_equal(u, fe.Embedding(1000, 50, seed=3).embeddings)
    assert not np.array_equal(u, fe.Embedding(1000, 50, seed=4).embeddings)
    n = fe.Embedding(1000, 50, embeddings_initializer="normal", seed=0, dtype="float64")
    assert n.embeddings.dtype == np.float64 and abs(n.embeddings.std() - 0.05) < 0.002
    g = fe.Embedding(300, 100, embeddings_initializer="glorot_uniform", seed=0).embeddings
    limit = np.sqrt(6 / 400)
    assert g.max() <= limit and g.min() >= -limit and g.max() > 0.9 * limit
    assert np.all(fe.Embedding(5, 3, embeddings_initializer="zeros").embeddings == 0)
    W = np.arange(15, dtype=np.float64).reshape(5, 3)
    a = fe.Embedding(5, 3, embeddings_initializer=W)
    np.testing.assert_array_equal(a.embeddings, W)
    W[0, 0] = 99  # copied in, not aliased
    assert a.embeddings[0, 0] == 0
    c = fe.Embedding(5, 3, embeddings_initializer=lambda shape, dtype=None: np.ones(shape) * 2)
    assert np.all(c.embeddings == 2) and c.embeddings.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        fe.Embedding(5, 3, embeddings_initializer=np.zeros((3, 5)))


def test_weights_get_set():
    W = np.arange(12, dtype=np.float64).reshape(4, 3)
    for given in ([W], W, (W,)):
        e = fe.Embedding(4, 3, weights=given)
        np.testing.assert_array_equal(e.embeddings, W)
        assert e.embeddings.dtype == np.float32
    e = fe.Embedding(4, 3, weights=W.tolist())
    np.testing.assert_array_equal(e.embeddings, W)
    live = e.embeddings
    got = e.get_weights()
    got[0][0, 0] = -1
    assert e.embeddings[0, 0] == 0  # get_weights copies
    e.set_weights([np.asfortranarray(W * 2)])
    assert e.embeddings is live and live.flags.c_contiguous  # copied into the live table
    np.testing.assert_array_equal(live, W * 2)
    before = live.tobytes()
    with pytest.raises(ValueError, match=r"weight shape \(4, 3\) is not compatible with "
                                         r"provided weight shape \(3, 4\)"):
        e.set_weights([W.T])
    with pytest.raises(ValueError, match="list of one array"):
        e.set_weights(W)
    with pytest.raises(ValueError, match="not compatible"):
        fe.Embedding(4, 3, weights=[np.zeros((4, 4))])
    assert live.tobytes() == before


def test_compute_mask_and_output_shape():
    e = fe.Embedding(5, 2, mask_zero=True)
    np.testing.assert_array_equal(e.compute_mask([[2, 1, 0]]), [[True, True, False]])
    assert fe.Embedding(5, 2).compute_mask([1, 0]) is None
    assert e.compute_output_shape((3, 4)) == (3, 4, 2)
    # masking does not zero the looked-up vector of id 0 (Keras)
    np.testing.assert_array_equal(e([0]), e.embeddings[[0]])


def test_from_pretrained():
    M = np.random.default_rng(0).standard_normal((6, 4))
    e = fe.Embedding.from_pretrained(M)
    assert not e.trainable and e.embeddings.dtype == np.float64
    np.testing.assert_array_equal(e([5, 0]), M[[5, 0]])
    M[0] = 0
    assert e.embeddings[0, 0] != 0
    b = fe.EmbeddingBag.from_pretrained(M.astype(np.float32), trainable=True, mask_zero=True,
                                        mode="sum")
    assert b.trainable and b.mask_zero and b.mode == "sum"
    np.testing.assert_allclose(b([[0, 1, 2]]), M[[1, 2]].sum(0, keepdims=True), rtol=1e-6)
    with pytest.raises(ValueError, match="2-D"):
        fe.Embedding.from_pretrained(np.zeros(3))


def test_optimizer_interface_attributes():
    e = fe.Embedding(9, 4, name="words", trainable=False)
    assert (e.input_dim, e.output_dim, e.name, e.trainable) == (9, 4, "words", False)
    assert isinstance(e.embeddings, np.ndarray) and e.embeddings.flags.c_contiguous
    assert fe.Embedding(2, 2).name != fe.Embedding(2, 2).name


# ------------------------------------------------------------------ backward

def test_embedding_backward_matches_torch_and_numpy(rng):
    V, D = 40, 8
    emb = fe.Embedding(V, D, seed=2)
    ids = zipf(rng, (7, 11), V).astype(np.int32)
    out = emb(ids)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    sg = emb.backward(grad)
    assert sg.dense_shape == (V, D) and sg.values.dtype == np.float32
    np.testing.assert_array_equal(sg.indices, np.unique(ids))
    ref = np.zeros((V, D), np.float32)
    np.add.at(ref, ids.reshape(-1), grad.reshape(-1, D))
    np.testing.assert_array_equal(sg.to_dense(), ref)  # summed in position order
    torch = pytest.importorskip("torch")
    w = torch.from_numpy(emb.embeddings.copy()).requires_grad_()
    torch.nn.functional.embedding(torch.from_numpy(ids.astype(np.int64)), w).backward(
        torch.from_numpy(grad))
    np.testing.assert_allclose(sg.to_dense(), w.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_embedding_backward_explicit_ids_and_errors(rng):
    emb = fe.Embedding(10, 3)
    with pytest.raises(ValueError, match="call the layer first"):
        emb.backward(np.ones((1, 3)))
    sg = emb.backward(np.ones((2, 3)), ids=[4, 4])
    np.testing.assert_array_equal(sg.indices, [4])
    np.testing.assert_array_equal(sg.values, [[2, 2, 2]])
    with pytest.raises(IndexError, match=r"ids\[1\] = 10"):
        emb.backward(np.ones((2, 3)), ids=[1, 10])
    emb([[1, 2]])
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 2, 3\)"):
        emb.backward(np.ones((2, 3)))
    # the layer keeps its own copy of the ids: reusing the buffer does not change backward
    ids = np.array([1, 2, 3])
    emb(ids)
    ids[:] = 9
    np.testing.assert_array_equal(emb.backward(np.ones((3, 3))).indices, [1, 2, 3])


def test_embedding_bag_layer(rng):
    V, D = 30, 5
    W = rng.standard_normal((V, D)).astype(np.float32)
    for mode in ("sum", "mean", "max"):
        bag = fe.EmbeddingBag(V, D, mode=mode, weights=[W])
        ids = rng.integers(0, V, size=(4, 6))
        np.testing.assert_allclose(bag(ids), fe.ops.embedding_bag(W, ids, mode=mode))
        np.testing.assert_allclose(bag(ids.astype(np.float64)), getattr(W[ids], mode)(1),
                                   rtol=1e-6)
    bag = fe.EmbeddingBag(V, D, mode="mean", weights=W)
    flat = rng.integers(0, V, size=10)
    out = bag(flat, offsets=[0, 4, 4])
    np.testing.assert_allclose(out[0], W[flat[:4]].mean(0), rtol=1e-6)
    assert np.all(out[1] == 0)
    sg = bag.backward(np.ones((3, D), np.float32))
    assert sg.dense_shape == (V, D)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        bag.backward(np.ones((2, D)))
    with pytest.raises(ValueError, match="ids=None"):
        bag.backward(np.ones((3, D)), ids=flat)
    with pytest.raises(ValueError, match="per_sample_weights are only supported"):
        fe.EmbeddingBag(V, D, mode="max")(flat[:4].reshape(2, 2),
                                          per_sample_weights=np.ones((2, 2)))
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        bag(flat, offsets=[0, 5, 2])
    # float64 weights are accepted by the layer (cast to the table dtype)
    got = bag(flat.reshape(2, 5), per_sample_weights=np.full((2, 5), 2.0))
    np.testing.assert_allclose(got, W[flat.reshape(2, 5)].mean(1), rtol=1e-6)
    fresh = fe.EmbeddingBag(V, D)
    with pytest.raises(ValueError, match="forward call first"):
        fresh.backward(np.ones((1, D)))
    with pytest.raises(ValueError, match="input_length"):
        fe.EmbeddingBag(V, D, input_length=3)(np.ones((2, 4), np.int64))


# ------------------------------------------------------------------ config and pickling

def test_config_round_trip():
    e = fe.Embedding(11, 3, mask_zero=True, input_length=5, trainable=False, name="e1",
                     embeddings_initializer="normal", dtype="float64")
    cfg = e.get_config()
    for key in ("name", "trainable", "dtype", "input_dim", "output_dim",
                "embeddings_initializer", "embeddings_regularizer", "activity_regularizer",
                "embeddings_constraint", "mask_zero", "input_length"):
        assert key in cfg
    assert cfg["input_length"] == 5 and cfg["dtype"] == "float64"
    e2 = fe.Embedding.from_config(cfg)
    assert e2.get_config() == cfg
    assert e2.embeddings.dtype == np.float64 and e2.embeddings.shape == (11, 3)
    b = fe.EmbeddingBag(4, 2, mode="max", name="b")
    cfg = b.get_config()
    assert cfg["mode"] == "max"
    assert fe.EmbeddingBag.from_config(cfg).get_config() == cfg
    import json
    json.dumps(cfg)
    c = fe.Embedding(3, 2, embeddings_initializer=np.ones((3, 2)))
    assert fe.Embedding.from_config(c.get_config()).embeddings.shape == (3, 2)


def test_from_keras_config():
    keras_cfg = {
        "name": "embedding", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None},
        "input_dim": 7, "output_dim": 2,
        "embeddings_initializer": {"module": "keras.initializers", "class_name": "RandomUniform",
                                   "config": {"minval": -0.05, "maxval": 0.05, "seed": 3},
                                   "registered_name": None},
        "embeddings_regularizer": None, "activity_regularizer": None,
        "embeddings_constraint": None, "mask_zero": False, "batch_input_shape": [None, 5],
        "input_length": 5,
    }
    e = fe.Embedding.from_config(keras_cfg)
    assert (e.input_dim, e.output_dim, e.input_length, e.seed) == (7, 2, 5, 3)
    assert e.embeddings.dtype == np.float32 and e.embeddings_initializer == "uniform"
    assert np.abs(e.embeddings).max() <= 0.05


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(deadline=None)
@given(data=st.data())
def test_random_lookups_and_gradients_match_numpy(data):
    V = data.draw(st.integers(1, 40))
    D = data.draw(st.sampled_from([1, 2, 5, 16, 64]))
    shape = tuple(data.draw(st.lists(st.integers(0, 6), min_size=0, max_size=3)))
    id_dtype = data.draw(st.sampled_from([np.int8, np.int32, np.int64, np.uint16, np.float64]))
    if np.dtype(id_dtype).kind in "iu" and V > np.iinfo(id_dtype).max:
        V = int(np.iinfo(id_dtype).max)
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    emb = fe.Embedding(V, D, dtype=dtype, seed=1)
    ids = rng.integers(0, V, size=shape).astype(id_dtype)
    out = emb(ids)
    idx = ids.astype(np.int64)
    np.testing.assert_array_equal(out, emb.embeddings[idx])
    grad = rng.standard_normal(out.shape).astype(dtype)
    sg = emb.backward(grad)
    ref = np.zeros((V, D), dtype)
    np.add.at(ref, idx.reshape(-1), grad.reshape(-1, D))
    np.testing.assert_array_equal(sg.to_dense(), ref)
    np.testing.assert_array_equal(sg.indices, np.unique(idx))
