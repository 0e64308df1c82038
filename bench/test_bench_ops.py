"""gather / scatter_add / coalesce: fastembed beside numpy and torch.

Group names: "<op> V=.. D=.. N=.. <dist>".  Each case runs at 1 and 2 threads (fastembed
and torch); numpy is single threaded, plus its obvious 2-Python-thread split for gather.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import FULL, make_ids, need_torch, set_threads, split2, torch

GATHER_SHAPES = [(100_000, 8, 1_000_000, "uniform"), (10_000, 32, 100_000, "uniform"),
                 (1_000_000, 64, 1_000_000, "uniform"), (7, 2, 5, "uniform")]
if not FULL:
    GATHER_SHAPES[2] = (200_000, 64, 200_000, "uniform")
SCATTER_SHAPES = [(1_000_000, 64, 1_000_000, "zipf") if FULL else (200_000, 64, 200_000, "zipf"),
                  (100_000, 8, 1_000_000, "uniform")]
COALESCE_SHAPES = [(1_000_000, 64, 1_000_000, "zipf") if FULL else (200_000, 64, 200_000, "zipf")]


@lru_cache(maxsize=2)
def data(V, D, N, dist, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((V, D), dtype=np.float32)
    ids = make_ids(rng, N, V, dist)
    return table, ids


def gid(op, V, D, N, dist):
    return f"{op} V={V} D={D} N={N} {dist}"


def info(benchmark, op, V, D, N, dist, method, threads, nbytes):
    benchmark.extra_info.update(dict(op=op, V=V, D=D, N=N, dist=dist, method=method,
                                     threads=threads, bytes=nbytes, library=method.split(" ")[0]))


# ------------------------------------------------------------------------------ gather

GATHER_METHODS = ["fastembed gather", "fastembed gather(out=)", "numpy table[ids]",
                  "numpy take", "numpy take(out=,clip)", "torch index_select(out=)",
                  "torch F.embedding"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", GATHER_METHODS)
@pytest.mark.parametrize("shape", GATHER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gather(benchmark, shape, method, threads):
    V, D, N, dist = shape
    table, ids = data(V, D, N, dist)
    if method.startswith("numpy") and threads == 2 and "clip" not in method:
        pytest.skip("numpy is single threaded")
    benchmark.group = gid("gather", *shape)
    set_threads(threads)
    out = np.empty((N, D), np.float32)
    if method == "fastembed gather":
        fn = lambda: fe.ops.gather(table, ids)
    elif method == "fastembed gather(out=)":
        fn = lambda: fe.ops.gather(table, ids, out=out)
    elif method == "numpy table[ids]":
        fn = lambda: table[ids]
    elif method == "numpy take":
        fn = lambda: np.take(table, ids, axis=0)
    elif method == "numpy take(out=,clip)":
        if threads == 1:
            fn = lambda: np.take(table, ids, axis=0, out=out, mode="clip")
        else:
            def fn():
                split2(lambda b, e: np.take(table, ids[b:e], axis=0, out=out[b:e], mode="clip"), N)
                return out
    else:
        torch = need_torch()
        tt, ti, to = torch.from_numpy(table), torch.from_numpy(ids), torch.from_numpy(out)
        if method == "torch index_select(out=)":
            fn = lambda: torch.index_select(tt, 0, ti, out=to).numpy()
        else:
            fn = lambda: torch.nn.functional.embedding(ti, tt).numpy()
    info(benchmark, "gather", V, D, N, dist, method, threads, 2 * N * D * 4)
    res = benchmark(fn)
    np.testing.assert_array_equal(res, table[ids])


# ------------------------------------------------------------------------- scatter_add

SCATTER_METHODS = ["fastembed scatter_add", "numpy add.at", "torch index_add_"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", SCATTER_METHODS)
@pytest.mark.parametrize("shape", SCATTER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_scatter_add(benchmark, shape, method, threads):
    V, D, N, dist = shape
    table, ids = data(V, D, N, dist)
    vals = np.random.default_rng(1).standard_normal((N, D), dtype=np.float32)
    if method.startswith("numpy") and threads == 2:
        pytest.skip("numpy is single threaded")
    benchmark.group = gid("scatter_add", *shape)
    set_threads(threads)
    target = np.zeros((V, D), np.float32)
    if method == "fastembed scatter_add":
        fn = lambda: fe.ops.scatter_add(target, ids, vals)
    elif method == "numpy add.at":
        fn = lambda: np.add.at(target, ids, vals)
    else:
        torch = need_torch()
        tt, ti, tv = torch.from_numpy(target), torch.from_numpy(ids), torch.from_numpy(vals)
        fn = lambda: tt.index_add_(0, ti, tv)
    info(benchmark, "scatter_add", V, D, N, dist, method, threads, 2 * N * D * 4)
    # One-round timing state: the target accumulates, so check one fresh call after.
    benchmark.pedantic(fn, rounds=5 if method != "numpy add.at" else 2, iterations=1,
                       warmup_rounds=1)
    target[...] = 0
    fn()
    want = np.zeros((V, D), np.float32)
    fe.ops.scatter_add(want, ids, vals)
    np.testing.assert_allclose(target, want, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------------- coalesce

COALESCE_METHODS = ["fastembed coalesce", "numpy unique+add.at", "torch unique+index_add_",
                    "torch sparse .coalesce()"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", COALESCE_METHODS)
@pytest.mark.parametrize("shape", COALESCE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_coalesce(benchmark, shape, method, threads):
    V, D, N, dist = shape
    _, ids = data(V, D, N, dist)
    vals = np.random.default_rng(1).standard_normal((N, D), dtype=np.float32)
    if method.startswith("numpy") and threads == 2:
        pytest.skip("numpy is single threaded")
    benchmark.group = gid("coalesce", *shape)
    set_threads(threads)
    if method == "fastembed coalesce":
        fn = lambda: fe.ops.coalesce(ids, vals)
    elif method == "numpy unique+add.at":
        def fn():
            u, inv = np.unique(ids, return_inverse=True)
            out = np.zeros((u.size, D), np.float32)
            np.add.at(out, inv, vals)
            return u, out
    else:
        torch = need_torch()
        ti, tv = torch.from_numpy(ids), torch.from_numpy(vals)
        if method == "torch unique+index_add_":
            def fn():
                u, inv = torch.unique(ti, return_inverse=True)
                out = torch.zeros((u.numel(), D))
                out.index_add_(0, inv, tv)
                return u.numpy(), out.numpy()
        else:
            def fn():
                s = torch.sparse_coo_tensor(ti[None], tv, (V, D)).coalesce()
                return s.indices()[0].numpy(), s.values().numpy()
    info(benchmark, "coalesce", V, D, N, dist, method, threads, 2 * N * D * 4)
    rounds = 2 if method.startswith("numpy") else 5
    u, s = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    wu, ws = fe.ops.coalesce(ids, vals)
    np.testing.assert_array_equal(u, wu)
    np.testing.assert_allclose(s, ws, rtol=1e-4, atol=1e-3)
