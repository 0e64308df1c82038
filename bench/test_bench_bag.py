"""embedding_bag (sum / mean / max): fastembed beside numpy and torch on the same bags.

Groups "bag-sum", "bag-mean", "bag-max".  Data: the issue's case, float32 (V, D) =
(1M, 64), 10k bags of 20 Zipf(1.1) ids (FASTEMBED_BENCH_FULL=1); by default V = 200k so
that the suite stays quick (the Zipf ids touch the same hot rows either way).  Each case
runs with fastembed and torch set to the same thread count (1 and 2); numpy is single
threaded.  Every result is checked against numpy's.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import FULL, need_torch, set_threads, zipf_ids

V = 1_000_000 if FULL else 200_000
D, B, L = 64, 10_000, 20

METHODS = ["fastembed 2-D", "fastembed offsets", "numpy table[ids2d].op(1)",
           "torch F.embedding_bag(ids2d)", "torch F.embedding_bag(offsets)",
           "torch F.embedding(ids2d).amax(1)"]


@lru_cache(maxsize=1)
def data():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((V, D), dtype=np.float32)
    ids2d = zipf_ids(rng, B * L, V).reshape(B, L)
    return table, ids2d, ids2d.reshape(-1), np.arange(0, B * L, L, dtype=np.int64)


@lru_cache(maxsize=3)
def reference(mode):
    table, ids2d, _, _ = data()
    return getattr(table[ids2d], mode)(axis=1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_bag(benchmark, mode, method, threads):
    table, ids2d, flat, offsets = data()
    if method.startswith("numpy") and threads == 2:
        pytest.skip("numpy is single threaded")
    if method.endswith("amax(1)") and mode != "max":
        pytest.skip("amax is the max-mode peer only")
    benchmark.group = f"bag-{mode}"
    set_threads(threads)
    if method == "fastembed 2-D":
        fn = lambda: fe.ops.embedding_bag(table, ids2d, mode=mode)
    elif method == "fastembed offsets":
        fn = lambda: fe.ops.embedding_bag(table, flat, offsets, mode=mode)
    elif method.startswith("numpy"):
        fn = lambda: getattr(table[ids2d], mode)(axis=1)
    else:
        torch = need_torch()
        F = torch.nn.functional
        tt, t2, tf, to = (torch.from_numpy(a) for a in (table, ids2d, flat, offsets))
        if method == "torch F.embedding_bag(ids2d)":
            fn = lambda: F.embedding_bag(t2, tt, mode=mode).numpy()
        elif method == "torch F.embedding_bag(offsets)":
            fn = lambda: F.embedding_bag(tf, tt, to, mode=mode).numpy()
        else:
            fn = lambda: F.embedding(t2, tt).amax(1).numpy()
    benchmark.extra_info.update(dict(op="embedding_bag", mode=mode, V=V, D=D, B=B, L=L,
                                     dist="zipf", method=method, threads=threads,
                                     library=method.split(" ")[0],
                                     bytes=(B * L + B) * D * 4))
    slow = method.startswith("numpy") or "amax" in method or (
        method.startswith("torch") and mode == "max")
    out = benchmark.pedantic(fn, rounds=5 if slow else 30, iterations=1, warmup_rounds=1)
    np.testing.assert_allclose(out, reference(mode), rtol=1e-4, atol=1e-4)


BACKWARD_METHODS = ["fastembed EmbeddingBag.backward", "torch autograd (sparse) + coalesce"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", BACKWARD_METHODS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_bag_backward(benchmark, mode, method, threads):
    """The table gradient of one bag call, coalesced (sorted unique rows, summed)."""
    table, ids2d, _, _ = data()
    benchmark.group = f"bag-backward-{mode}"
    set_threads(threads)
    grad = np.random.default_rng(2).standard_normal((B, D), dtype=np.float32)
    if method.startswith("fastembed"):
        layer = fe.EmbeddingBag.from_pretrained(table, trainable=True, mode=mode)
        layer.embeddings = table  # share the benchmark's table instead of a 256 MB copy
        layer(ids2d)
        fn = lambda: layer.backward(grad)
        def result(r):
            return r.indices, r.values
        setup = None
    else:
        torch = need_torch()
        if mode == "max":
            pytest.skip("torch has no sparse gradient for max bags")
        F = torch.nn.functional
        w = torch.from_numpy(table).requires_grad_()
        t2, tg = torch.from_numpy(ids2d), torch.from_numpy(grad)

        def setup():
            w.grad = None
            return (F.embedding_bag(t2, w, mode=mode, sparse=True),), {}

        def fn(out):
            out.backward(tg)
            return w.grad.coalesce()

        def result(r):
            return r.indices()[0].numpy(), r.values().numpy()
    benchmark.extra_info.update(dict(op="embedding_bag_backward", mode=mode, V=V, D=D, B=B,
                                     L=L, dist="zipf", method=method, threads=threads,
                                     library=method.split(" ")[0]))
    if setup is None:
        r = benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=1)
    else:
        r = benchmark.pedantic(fn, setup=setup, rounds=15, iterations=1, warmup_rounds=1)
    idx, vals = result(r)
    ref = fe.EmbeddingBag.from_pretrained(table[:1], mode=mode)  # reference: our own small pass
    ref.embeddings = table
    ref.input_dim = V
    ref(ids2d)
    want = ref.backward(grad)
    np.testing.assert_array_equal(idx, want.indices)
    np.testing.assert_allclose(vals, want.values, rtol=1e-4, atol=1e-5)
