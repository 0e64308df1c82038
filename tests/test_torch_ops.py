"""The stateless backward operations of fastembed.ops (what fastembed.torch is built on).

Oracle: the bag gradients written out with numpy loops, straight from the definitions
(sum / mean / max pooling; the weights' gradient as the dot products it is).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastembed as fe


def _bags(ids, offsets):
    if offsets is None:
        return [list(range(b * ids.shape[1], (b + 1) * ids.shape[1]))
                for b in range(ids.shape[0])]
    ends = list(offsets[1:]) + [len(ids)]
    return [list(range(s, e)) for s, e in zip(offsets, ends)]


def _oracle(table, ids, offsets, mode, psw, mask_zero, grad):
    """(forward, dense table gradient, weights gradient), by the definitions."""
    flat = ids.reshape(-1)
    w = np.ones(flat.shape, np.float64) if psw is None else psw.reshape(-1).astype(np.float64)
    t = table.astype(np.float64)
    out = np.zeros((len(_bags(ids, offsets)), table.shape[1]))
    dtab = np.zeros(table.shape)
    dw = np.zeros(flat.shape)
    for b, pos in enumerate(_bags(ids, offsets)):
        pos = [i for i in pos if not (mask_zero and flat[i] == 0)]
        if not pos:
            continue
        if mode == "max":
            rows = t[flat[pos]]
            first = rows.argmax(axis=0)
            out[b] = rows.max(axis=0)
            for k, j in enumerate(first):
                dtab[flat[pos[j]], k] += grad[b, k]
            continue
        total = sum(w[i] for i in pos) if mode == "mean" else 1.0
        if total == 0:
            continue
        out[b] = sum(w[i] * t[flat[i]] for i in pos) / total
        for i in pos:
            dtab[flat[i]] += w[i] / total * grad[b]
            dw[i] = (grad[b] @ t[flat[i]] - (grad[b] @ out[b] if mode == "mean" else 0)) / total
    return out, dtab, dw.reshape(ids.shape)


@st.composite
def _cases(draw):
    rows = draw(st.integers(1, 12))
    dim = draw(st.integers(1, 5))
    mode = draw(st.sampled_from(["sum", "mean", "max"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    idtype = draw(st.sampled_from([np.int32, np.int64]))
    if draw(st.booleans()):
        b, length = draw(st.integers(0, 5)), draw(st.integers(0, 5))
        ids = np.array(draw(st.lists(st.integers(0, rows - 1), min_size=b * length,
                                     max_size=b * length)), idtype).reshape(b, length)
        offsets = None
    else:
        n = draw(st.integers(0, 15))
        ids = np.array(draw(st.lists(st.integers(0, rows - 1), min_size=n, max_size=n)),
                       idtype)
        cuts = sorted(draw(st.lists(st.integers(0, n), min_size=0, max_size=6)))
        offsets = np.array([0] + cuts, np.int64)
    psw = None
    if mode != "max" and draw(st.booleans()):
        psw = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.0]),
                                     min_size=ids.size, max_size=ids.size)),
                       dtype).reshape(ids.shape)
    mask_zero = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    return rows, dim, mode, dtype, ids, offsets, psw, mask_zero, seed


@given(_cases())
def test_backward_matches_the_definitions(case):
    rows, dim, mode, dtype, ids, offsets, psw, mask_zero, seed = case
    rng = np.random.default_rng(seed)
    # Distinct values per column so that max has no ties to argue about.
    table = rng.permutation(rows * dim).reshape(rows, dim).astype(dtype) / 7
    out, argmax = fe.ops.embedding_bag(table, ids, offsets, mode, psw, mask_zero,
                                       return_argmax=True)
    assert (argmax is None) == (mode != "max")
    grad = rng.standard_normal(out.shape).astype(dtype)
    want_out, want_tab, want_w = _oracle(table, ids, offsets, mode, psw, mask_zero, grad)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, want_out, **tol)
    idx, vals = fe.ops.embedding_bag_backward(grad, ids, rows, offsets, mode, psw, mask_zero,
                                              argmax)
    assert idx.dtype == np.int64 and vals.dtype == dtype
    assert np.all(np.diff(idx) > 0)
    dense = np.zeros(table.shape)
    dense[idx] = vals
    np.testing.assert_allclose(dense, want_tab, **tol)
    if mode != "max":
        gw = fe.ops.embedding_bag_per_sample_weights_backward(
            grad, table, ids, offsets, mode, psw if psw is not None else
            (np.ones(ids.shape, dtype) if mode == "mean" else None), mask_zero)
        assert gw.shape == ids.shape and gw.dtype == dtype
        if mode == "mean" and psw is None:
            _, _, want_w = _oracle(table, ids, offsets, mode, np.ones(ids.shape), mask_zero,
                                   grad)
        np.testing.assert_allclose(gw, want_w, **tol)


def test_return_argmax_is_the_row_of_the_maximum():
    table = np.array([[1.0, 5.0], [3.0, 2.0], [0.0, 9.0]], np.float32)
    out, argmax = fe.ops.embedding_bag(table, np.array([[0, 1], [2, 2]]), mode="max",
                                       return_argmax=True)
    np.testing.assert_array_equal(out, [[3, 5], [0, 9]])
    np.testing.assert_array_equal(argmax, [[1, 0], [2, 2]])
    out, argmax = fe.ops.embedding_bag(table, np.array([0, 1]), np.array([0, 2]), mode="max",
                                       return_argmax=True)
    np.testing.assert_array_equal(argmax[1], [-1, -1])  # the empty bag
    out2 = fe.ops.embedding_bag(table, np.array([[0, 1]]), mode="sum")
    assert isinstance(out2, np.ndarray)


def test_backward_errors():
    ids = np.array([[1, 2], [3, 4]])
    g = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="argmax"):
        fe.ops.embedding_bag_backward(g, ids, 5, mode="max")
    with pytest.raises(IndexError, match="4"):
        fe.ops.embedding_bag_backward(g, ids, 4)
    with pytest.raises(ValueError, match="grad_output"):
        fe.ops.embedding_bag_backward(np.ones((3, 3), np.float32), ids, 5)
    with pytest.raises(TypeError, match="rows"):
        fe.ops.embedding_bag_backward(g, ids, 5.0)
    with pytest.raises(TypeError):
        fe.ops.embedding_bag_backward(g, ids.astype(np.float32), 5)
    with pytest.raises(ValueError, match="offsets"):
        fe.ops.embedding_bag_backward(g, np.array([1, 2]), 5, offsets=np.array([1, 2]))
    table = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="mode"):
        fe.ops.embedding_bag_per_sample_weights_backward(g, table, ids, mode="max")
    with pytest.raises(ValueError, match="grad_output"):
        fe.ops.embedding_bag_per_sample_weights_backward(np.ones((2, 4), np.float32), table,
                                                         ids)
    with pytest.raises(TypeError, match="grad_output"):
        fe.ops.embedding_bag_per_sample_weights_backward(g.astype(np.float64), table, ids)
    with pytest.raises(IndexError):
        fe.ops.embedding_bag_per_sample_weights_backward(g, table, ids + 3)
