"""fastembed.ops.embedding_bag and its backward against numpy references and torch."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastembed as fe
from fastembed import _bagops

MODES = ["sum", "mean", "max"]


def zipf(rng, n, rows):
    return (rng.zipf(1.3, size=n) - 1) % rows


def ref_bag(table, ids, offsets=None, mode="sum", psw=None, mask_zero=False):
    """Plain numpy reference of the documented semantics."""
    ids = np.asarray(ids)
    if offsets is None:
        pos = [np.arange(b * ids.shape[1], (b + 1) * ids.shape[1]) for b in range(ids.shape[0])]
    else:
        ends = list(offsets[1:]) + [ids.size]
        pos = [np.arange(s, e) for s, e in zip(offsets, ends)]
    flat = ids.reshape(-1)
    w = None if psw is None else np.asarray(psw).reshape(-1).astype(table.dtype)
    out = np.zeros((len(pos), table.shape[1]), table.dtype)
    for b, p in enumerate(pos):
        if mask_zero:
            p = p[flat[p] != 0]
        if p.size == 0:
            continue
        rows = table[flat[p]]
        if mode == "max":
            out[b] = rows.max(0)
            continue
        ww = np.ones(p.size, table.dtype) if w is None else w[p]
        s = (rows * ww[:, None]).sum(0)
        if mode == "sum":
            out[b] = s
        else:
            den = ww.sum()
            out[b] = 0 if den == 0 else s / den
    return out


def ref_grad(table, ids, offsets, mode, psw, mask_zero, grad):
    """Dense table gradient from the numpy reference semantics."""
    ids = np.asarray(ids)
    flat = ids.reshape(-1)
    if offsets is None:
        pos = [np.arange(b * ids.shape[1], (b + 1) * ids.shape[1]) for b in range(ids.shape[0])]
    else:
        ends = list(offsets[1:]) + [ids.size]
        pos = [np.arange(s, e) for s, e in zip(offsets, ends)]
    w = None if psw is None else np.asarray(psw).reshape(-1).astype(np.float64)
    g = np.zeros(table.shape, np.float64)
    for b, p in enumerate(pos):
        if mask_zero:
            p = p[flat[p] != 0]
        if p.size == 0:
            continue
        if mode == "max":
            rows = table[flat[p]]
            first = rows.argmax(0)  # numpy argmax: the first occurrence of the maximum
            for k in range(table.shape[1]):
                g[flat[p[first[k]]], k] += grad[b, k]
            continue
        ww = np.ones(p.size) if w is None else w[p]
        den = 1.0 if mode == "sum" else ww.sum()
        if den == 0:
            continue
        for j, i in enumerate(p):
            g[flat[i]] += grad[b] * ww[j] / den
    return g


RNG_SEED = 1234  # of the shared `rng` fixture (conftest.py)


# ------------------------------------------------------------------ forward vs references

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64, np.int16, np.uint8, np.uint32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_2d_matches_numpy(rng, mode, id_dtype, dtype):
    V, D = 60, 24
    table = rng.standard_normal((V, D)).astype(dtype)
    ids = zipf(rng, 9 * 7, V).reshape(9, 7).astype(id_dtype)
    out = fe.ops.embedding_bag(table, ids, mode=mode)
    assert out.dtype == dtype and out.shape == (9, D)
    np.testing.assert_allclose(out, ref_bag(table, ids, mode=mode), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("D", [1, 16, 32, 64, 128, 7])
def test_forward_matches_torch(rng, mode, D):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    V = 300
    table = rng.standard_normal((V, D)).astype(np.float32)
    ids2 = zipf(rng, 40 * 9, V).reshape(40, 9)
    want = F.embedding_bag(torch.from_numpy(ids2), torch.from_numpy(table), mode=mode).numpy()
    np.testing.assert_allclose(fe.ops.embedding_bag(table, ids2, mode=mode), want,
                               rtol=1e-5, atol=1e-6)
    flat = zipf(rng, 200, V)
    offsets = np.sort(rng.integers(0, 201, size=30))
    offsets[0] = 0
    want = F.embedding_bag(torch.from_numpy(flat), torch.from_numpy(table),
                           torch.from_numpy(offsets), mode=mode).numpy()
    got = fe.ops.embedding_bag(table, flat, offsets, mode=mode)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_per_sample_weights_sum_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    V, D = 100, 32
    table = rng.standard_normal((V, D)).astype(np.float32)
    flat = zipf(rng, 150, V)
    offsets = np.array([0, 10, 10, 50, 149, 150])
    w = rng.standard_normal(150).astype(np.float32)
    want = F.embedding_bag(torch.from_numpy(flat), torch.from_numpy(table),
                           torch.from_numpy(offsets), mode="sum",
                           per_sample_weights=torch.from_numpy(w)).numpy()
    got = fe.ops.embedding_bag(table, flat, offsets, mode="sum", per_sample_weights=w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ids2 = flat[:140].reshape(14, 10)
    w2 = w[:140].reshape(14, 10)
    want = F.embedding_bag(torch.from_numpy(ids2), torch.from_numpy(table), mode="sum",
                           per_sample_weights=torch.from_numpy(w2)).numpy()
    np.testing.assert_allclose(fe.ops.embedding_bag(table, ids2, per_sample_weights=w2), want,
                               rtol=1e-5, atol=1e-5)


def test_weighted_mean_and_zero_weight_bag(rng):
    V, D = 20, 8
    table = rng.standard_normal((V, D))
    ids = rng.integers(0, V, size=(5, 4))
    w = rng.random((5, 4))
    w[2] = [1.0, -1.0, 0.5, -0.5]  # sums to 0: that bag gives zeros
    got = fe.ops.embedding_bag(table, ids, mode="mean", per_sample_weights=w)
    np.testing.assert_allclose(got, ref_bag(table, ids, mode="mean", psw=w), rtol=1e-12)
    assert np.all(got[2] == 0)
    expect0 = (table[ids[0]] * w[0][:, None]).sum(0) / w[0].sum()
    np.testing.assert_allclose(got[0], expect0, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_mask_zero_both_forms(rng, mode):
    V, D = 30, 16
    table = rng.standard_normal((V, D)).astype(np.float32)
    ids = rng.integers(0, 4, size=(12, 6))  # many zeros
    ids[3] = 0  # an all-padding row gives zeros
    got = fe.ops.embedding_bag(table, ids, mode=mode, mask_zero=True)
    np.testing.assert_allclose(got, ref_bag(table, ids, mode=mode, mask_zero=True), rtol=1e-6)
    assert np.all(got[3] == 0)
    # the 1-D form with offsets gives the same bags
    offsets = np.arange(0, 72, 6)
    got1 = fe.ops.embedding_bag(table, ids.reshape(-1), offsets, mode=mode, mask_zero=True)
    np.testing.assert_array_equal(got1, got)
    # without the mask, id 0 is pooled like any other id
    np.testing.assert_allclose(fe.ops.embedding_bag(table, ids, mode=mode),
                               ref_bag(table, ids, mode=mode), rtol=1e-6)


def test_mask_zero_with_weights(rng):
    table = rng.standard_normal((10, 4))
    ids = np.array([[0, 1, 2], [0, 0, 0], [3, 0, 3]])
    w = rng.random((3, 3)) + 0.1
    for mode in ("sum", "mean"):
        got = fe.ops.embedding_bag(table, ids, mode=mode, per_sample_weights=w, mask_zero=True)
        np.testing.assert_allclose(got, ref_bag(table, ids, mode=mode, psw=w, mask_zero=True))
        assert np.all(got[1] == 0)


@pytest.mark.parametrize("mode", MODES)
def test_empty_bags_and_empty_inputs(rng, mode):
    table = rng.standard_normal((10, 5)).astype(np.float32)
    flat = np.array([1, 2, 3, 4])
    offsets = np.array([0, 0, 2, 2, 4, 4])  # bags 0, 2, 4, 5 are empty
    got = fe.ops.embedding_bag(table, flat, offsets, mode=mode)
    np.testing.assert_allclose(got, ref_bag(table, flat, offsets, mode=mode), rtol=1e-6)
    assert np.all(got[[0, 2, 4, 5]] == 0)
    assert fe.ops.embedding_bag(table, np.zeros((0, 3), np.int64), mode=mode).shape == (0, 5)
    out = fe.ops.embedding_bag(table, np.zeros((4, 0), np.int64), mode=mode)
    assert out.shape == (4, 5) and np.all(out == 0)
    out = fe.ops.embedding_bag(table, np.zeros(0, np.int64), np.zeros(0, np.int64), mode=mode)
    assert out.shape == (0, 5)


def test_zero_dim_table_still_validates_ids():
    table = np.zeros((5, 0), np.float32)
    assert fe.ops.embedding_bag(table, [[1, 2]]).shape == (1, 0)
    with pytest.raises(IndexError, match=r"ids\[0, 1\] = 9"):
        fe.ops.embedding_bag(table, [[1, 9]])


def test_max_ties_take_first_occurrence():
    table = np.array([[1.0, 5.0], [1.0, 2.0], [0.0, 5.0], [3.0, 3.0]], np.float32)
    layer = fe.EmbeddingBag(4, 2, mode="max", weights=table)
    out = layer(np.array([[1, 0, 2, 3]]))
    np.testing.assert_array_equal(out, [[3.0, 5.0]])
    g = layer.backward(np.array([[10.0, 20.0]], np.float32))
    # column 0: max 3.0 from row 3; column 1: 5.0 first reached by row 0 (before row 2)
    np.testing.assert_array_equal(g.indices, [0, 3])
    np.testing.assert_array_equal(g.values, [[0.0, 20.0], [10.0, 0.0]])
    out = layer(np.array([[2, 0]]))
    g = layer.backward(np.array([[1.0, 1.0]], np.float32))
    np.testing.assert_array_equal(g.to_dense(), [[1, 0], [0, 0], [0, 1], [0, 0]])


# ------------------------------------------------------------------ backward

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", ["2d", "offsets"])
def test_backward_matches_torch_autograd(rng, mode, form):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    V, D = 80, 16
    table = rng.standard_normal((V, D)).astype(np.float32)
    if form == "2d":
        ids, offsets = zipf(rng, 25 * 6, V).reshape(25, 6), None
    else:
        ids = zipf(rng, 120, V)
        offsets = np.sort(rng.integers(0, 121, size=20))
        offsets[0] = 0
    layer = fe.EmbeddingBag(V, D, mode=mode, weights=table)
    out = layer(ids, offsets=offsets)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    sg = layer.backward(grad)
    assert np.all(np.diff(sg.indices) > 0) and sg.values.dtype == np.float32
    w = torch.from_numpy(table.copy()).requires_grad_()
    t_out = F.embedding_bag(torch.from_numpy(ids), w,
                            None if offsets is None else torch.from_numpy(offsets), mode=mode)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    t_out.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(sg.to_dense(), w.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sg.to_dense(),
                               ref_grad(table, ids, offsets, mode, None, False, grad),
                               rtol=1e-5, atol=1e-6)


def test_backward_per_sample_weights_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    V, D = 50, 8
    table = rng.standard_normal((V, D)).astype(np.float32)
    ids = zipf(rng, 60, V)
    offsets = np.array([0, 5, 5, 30, 59])
    psw = rng.standard_normal(60).astype(np.float32)
    layer = fe.EmbeddingBag(V, D, mode="sum", weights=table)
    out = layer(ids, offsets=offsets, per_sample_weights=psw)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    sg = layer.backward(grad)
    w = torch.from_numpy(table.copy()).requires_grad_()
    t_out = F.embedding_bag(torch.from_numpy(ids), w, torch.from_numpy(offsets), mode="sum",
                            per_sample_weights=torch.from_numpy(psw))
    t_out.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(sg.to_dense(), w.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_backward_mask_and_weighted_mean_match_numpy(rng, mode):
    V, D = 12, 6
    table = rng.standard_normal((V, D))
    ids = rng.integers(0, 5, size=(9, 5))
    ids[4] = 0
    psw = None if mode == "max" else rng.random((9, 5)) + 0.05
    if psw is not None:
        psw[6] = [1, -1, 2, -2, 0]
    layer = fe.EmbeddingBag(V, D, mode=mode, weights=table, mask_zero=True, dtype="float64")
    out = layer(ids, per_sample_weights=psw)
    np.testing.assert_allclose(out, ref_bag(table, ids, mode=mode, psw=psw, mask_zero=True))
    grad = rng.standard_normal(out.shape)
    sg = layer.backward(grad)
    np.testing.assert_allclose(sg.to_dense(),
                               ref_grad(table, ids, None, mode, psw, True, grad), atol=1e-12)
    assert 0 not in sg.indices


# ------------------------------------------------------------------ determinism

@pytest.mark.parametrize("mode", MODES)
def test_bit_identical_for_any_thread_count(rng, mode):
    V, D = 5000, 64
    table = rng.standard_normal((V, D)).astype(np.float32)
    ids = zipf(rng, 3000 * 20, V).reshape(3000, 20)
    psw = None if mode == "max" else rng.random((3000, 20)).astype(np.float32)
    grad = rng.standard_normal((3000, D)).astype(np.float32)
    results = []
    before = fe.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fe.set_num_threads(threads)
            layer = fe.EmbeddingBag(V, D, mode=mode, weights=table)
            out = layer(ids, per_sample_weights=psw)
            sg = layer.backward(grad)
            results.append((out, sg.indices, sg.values))
    finally:
        fe.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ errors

def _table(rng):
    return rng.standard_normal((10, 4)).astype(np.float32)


@pytest.mark.parametrize("offsets, message", [
    ([1, 3], r"offsets\[0\] must be 0, got offsets\[0\]=1"),
    ([0, 3, 1], r"offsets must be non-decreasing: offsets\[2\]=1 < offsets\[1\]=3"),
    ([0, 2, 9], r"offsets\[2\]=9"),
    ([0, -1], r"offsets\[1\]=-1 < offsets\[0\]=0"),
    ([], r"offsets is empty"),
    ([[0, 1]], r"offsets must be 1-D"),
])
def test_bad_offsets(rng, offsets, message):
    table = _table(rng)
    ids = np.array([1, 2, 3, 4, 5])
    before = (table.tobytes(), ids.tobytes())
    with pytest.raises(ValueError, match=message):
        fe.ops.embedding_bag(table, ids, np.array(offsets, dtype=np.int64))
    assert (table.tobytes(), ids.tobytes()) == before


@pytest.mark.parametrize("ids, offsets, exc, message", [
    ([[1, 2], [3, 10]], None, IndexError, r"ids\[1, 1\] = 10 is out of range for a table of 10"),
    ([[1, -1]], None, IndexError, r"ids\[0, 1\] = -1"),
    ([1, 2, 30], [0, 1], IndexError, r"ids\[2\] = 30"),
    ([1, 2, 3], None, ValueError, r"1-D ids need offsets"),
    ([[1, 2]], [0], ValueError, r"ids must be 1-D when offsets are given"),
    (np.array([[1.0, 2.0]]), None, TypeError, r"float"),
    (np.array([[True, False]]), None, TypeError, r"bool"),
    ([["a", "b"]], None, TypeError, r"must be integers"),
    ([1, 2], [0.0, 1.0], TypeError, r"offsets must be integers"),
])
def test_bad_ids(rng, ids, offsets, exc, message):
    table = _table(rng)
    before = table.tobytes()
    with pytest.raises(exc, match=message):
        fe.ops.embedding_bag(table, ids if isinstance(ids, np.ndarray) else ids,
                             None if offsets is None else np.asarray(offsets))
    assert table.tobytes() == before


def test_offsets_beyond_int64_are_bad_offsets(rng):
    table = _table(rng)
    with pytest.raises(ValueError, match="offsets"):
        fe.ops.embedding_bag(table, np.array([1, 2]), np.array([0, 2**63 + 5], np.uint64))
    got = fe.ops.embedding_bag(table, np.array([1, 2, 3]), np.array([0, 1], np.uint8))
    np.testing.assert_allclose(got, [table[1], table[2] + table[3]], rtol=1e-6)


def test_bad_arguments(rng):
    table = _table(rng)
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="mode must be 'sum', 'mean' or 'max', got 'min'"):
        fe.ops.embedding_bag(table, ids, mode="min")
    with pytest.raises(ValueError, match="per_sample_weights are only supported"):
        fe.ops.embedding_bag(table, ids, mode="max", per_sample_weights=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"per_sample_weights must have the shape of ids \(2, 3\)"):
        fe.ops.embedding_bag(table, ids, per_sample_weights=np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="per_sample_weights must have the table's dtype float32"):
        fe.ops.embedding_bag(table, ids, per_sample_weights=np.ones((2, 3)))
    with pytest.raises(TypeError, match="float32 or float64"):
        fe.ops.embedding_bag(table.astype(np.int32), ids)
    with pytest.raises(ValueError, match="must be 2-D"):
        fe.ops.embedding_bag(table[0], ids)
    with pytest.raises(ValueError, match="contiguous"):
        fe.ops.embedding_bag(np.asfortranarray(table), ids)
    # per_sample_weights given as a list is read in the table's dtype
    got = fe.ops.embedding_bag(table, ids, per_sample_weights=[[1, 1, 1], [2, 2, 2]])
    np.testing.assert_allclose(got, ref_bag(table, ids, psw=[[1, 1, 1], [2, 2, 2]]), rtol=1e-6)


def test_strided_table_rows_are_accepted(rng):
    big = rng.standard_normal((10, 8)).astype(np.float32)
    view = big[:, :4]  # rows contiguous, row stride 8
    ids = np.array([[1, 9], [0, 3]])
    np.testing.assert_allclose(fe.ops.embedding_bag(view, ids), ref_bag(view, ids), rtol=1e-6)


def test_private_backward_rejects_bad_argmax(rng):
    grad = np.ones((1, 4), np.float32)
    ids = np.array([[1, 2]])
    with pytest.raises(IndexError, match=r"argmax\[0, 2\] = 99"):
        _bagops.bag_backward(grad, ids, None, "max", None, False,
                             np.array([[1, 2, 99, 1]], np.int64), 10)
    with pytest.raises(TypeError, match="argmax"):
        _bagops.bag_backward(grad, ids, None, "max", None, False, None, 10)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        _bagops.bag_backward(np.ones((3, 4), np.float32), ids, None, "sum", None, False, None, 10)


# ------------------------------------------------------------------ property test

@settings(deadline=None)
@given(data=st.data())
def test_random_bags_match_reference(data):
    mode = data.draw(st.sampled_from(MODES))
    V = data.draw(st.integers(1, 30))
    D = data.draw(st.sampled_from([1, 3, 16, 32]))
    n = data.draw(st.integers(0, 40))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((V, D))
    ids = rng.integers(0, V, size=n)
    cuts = np.sort(rng.integers(0, n + 1, size=data.draw(st.integers(1, 8))))
    cuts[0] = 0
    mask = data.draw(st.booleans())
    psw = None
    if mode != "max" and data.draw(st.booleans()):
        psw = rng.random(n) + 0.1
    got = fe.ops.embedding_bag(table, ids, cuts, mode=mode, per_sample_weights=psw,
                               mask_zero=mask)
    np.testing.assert_allclose(got, ref_bag(table, ids, cuts, mode=mode, psw=psw,
                                            mask_zero=mask), rtol=1e-10, atol=1e-12)
    layer = fe.EmbeddingBag(V, D, mode=mode, weights=table, mask_zero=mask, dtype="float64")
    layer(ids, offsets=cuts, per_sample_weights=psw)
    grad = rng.standard_normal((len(cuts), D))
    sg = layer.backward(grad)
    np.testing.assert_allclose(sg.to_dense(), ref_grad(table, ids, cuts, mode, psw, mask, grad),
                               rtol=1e-10, atol=1e-12)


def test_baseline_and_simd_builds_are_bit_identical(rng):
    """FASTEMBED_CPU=baseline (read once per process) gives the same bytes as the default."""
    import subprocess
    import sys

    code = (
        "import numpy as np, fastembed as fe, sys\n"
        "rng = np.random.default_rng(5)\n"
        "t = rng.standard_normal((3000, 64)).astype(np.float32)\n"
        "ids = ((rng.zipf(1.3, size=(400, 20)) - 1) % 3000)\n"
        "w = rng.random((400, 20)).astype(np.float32)\n"
        "outs = [fe.ops.embedding_bag(t, ids, mode=m) for m in ('sum', 'mean', 'max')]\n"
        "outs.append(fe.ops.embedding_bag(t, ids, mode='mean', per_sample_weights=w,"
        " mask_zero=True))\n"
        "sys.stdout.write(b''.join(o.tobytes() for o in outs).hex())\n"
    )
    import os
    res = {}
    for cpu in ("baseline", ""):
        env = dict(os.environ, FASTEMBED_CPU=cpu)
        res[cpu] = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True).stdout
    assert len(res["baseline"]) > 1000 and res["baseline"] == res[""]
