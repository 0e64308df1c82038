"""Half-precision and row-quantized bag sums (issue 14) beside their torch / FBGEMM peers.

Bag sum over a (1M, 64) table, 10k bags of 20 Zipf(1.1) ids (the issue's case, at every
size setting: the point is the bytes moved per row), 1 and 2 threads:
  group "half-fp16":  fastembed on a float16 table    vs torch F.embedding_bag (float16)
  group "half-bf16":  fastembed on a bfloat16 table   vs torch F.embedding_bag (bfloat16)
  group "half-q8":    fastembed 8-bit QuantizedTable  vs torch.ops.quantized
                      .embedding_bag_byte_rowwise_offsets (FBGEMM)
  group "half-q4":    fastembed 4-bit QuantizedTable  vs ...embedding_bag_4bit_rowwise_offsets
  group "half-self":  fastembed float16 vs fastembed float32
Every result is asserted close to the float32 bag of the same table.

``python bench/test_bench_half.py`` prints the ratios (peer time / ours, best of 1 and 2
threads each) without pytest-benchmark.
"""
from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import need_torch, set_threads, zipf_ids

V, D, B, L = 1_000_000, 64, 10_000, 20

CASES = {
    "fp16": ("fastembed float16", "torch F.embedding_bag float16"),
    "bf16": ("fastembed bfloat16", "torch F.embedding_bag bfloat16"),
    "q8": ("fastembed 8-bit", "torch FBGEMM byte_rowwise"),
    "q4": ("fastembed 4-bit", "torch FBGEMM 4bit_rowwise"),
    "self": ("fastembed float16", "fastembed float32"),
}


@lru_cache(maxsize=1)
def data():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((V, D), dtype=np.float32)
    flat = zipf_ids(rng, B * L, V)
    offsets = np.arange(0, B * L, L, dtype=np.int64)
    exact = fe.ops.embedding_bag(table, flat, offsets, mode="sum")
    return table, flat, offsets, exact


@lru_cache(maxsize=None)
def tables(kind):
    table = data()[0]
    if kind == "fp16":
        return table.astype(np.float16)
    if kind == "bf16":
        import ml_dtypes
        return table.astype(ml_dtypes.bfloat16)
    if kind in ("q8", "q4"):
        return fe.ops.quantize_rows(table, 8 if kind == "q8" else 4)
    return table


def runner(kind, method):
    """(fn, tolerance) for one method of one case."""
    table, flat, offsets, _ = data()
    if method.startswith("fastembed"):
        t = {"fastembed float16": "fp16", "fastembed bfloat16": "bf16", "fastembed 8-bit": "q8",
             "fastembed 4-bit": "q4", "fastembed float32": "f32"}[method]
        tab = tables(t)
        fn = lambda: fe.ops.embedding_bag(tab, flat, offsets, mode="sum")
    else:
        torch = need_torch()
        tf, to = torch.from_numpy(flat), torch.from_numpy(offsets)
        if kind in ("fp16", "bf16"):
            tt = torch.from_numpy(table).to(torch.float16 if kind == "fp16" else torch.bfloat16)
            F = torch.nn.functional
            fn = lambda: F.embedding_bag(tf, tt, to, mode="sum").float().numpy()
        else:
            q = torch.ops.quantized
            tt = torch.from_numpy(table)
            if kind == "q8":
                packed = q.embedding_bag_byte_prepack(tt)
                fn = lambda: q.embedding_bag_byte_rowwise_offsets(packed, tf, to, mode=0).numpy()
            else:
                packed = q.embedding_bag_4bit_prepack(tt)
                fn = lambda: q.embedding_bag_4bit_rowwise_offsets(packed, tf, to, mode=0).numpy()
    # Per element of a bag of L rows: float16 rounds each row by <= 2^-11 relative (the
    # values are ~N(0,1), |x| < 6), bfloat16 by 2^-8; quantized rows by half a step.
    tol = {"fp16": L * 6 * 2.0 ** -11, "bf16": L * 6 * 2.0 ** -8 + 0.1, "self": L * 6 * 2.0 ** -11,
           "q8": L * 12 / 255, "q4": L * 12 / 15}[kind]
    return fn, tol


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("side", [0, 1])
@pytest.mark.parametrize("kind", list(CASES))
def test_half_bag(benchmark, kind, side, threads):
    if kind == "bf16":
        pytest.importorskip("ml_dtypes")
    method = CASES[kind][side]
    fn, tol = runner(kind, method)
    benchmark.group = f"half-{kind}"
    set_threads(threads)
    benchmark.extra_info.update(dict(op="embedding_bag", mode="sum", V=V, D=D, B=B, L=L,
                                     dist="zipf", method=method, threads=threads,
                                     library=method.split(" ")[0]))
    out = benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)
    np.testing.assert_allclose(out, data()[3], rtol=0, atol=tol)


def best_time(fn, threads, rounds=15):
    set_threads(threads)
    fn()
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    rows = []
    for kind, (ours_m, peer_m) in CASES.items():
        ours_fn, tol = runner(kind, ours_m)
        peer_fn, _ = runner(kind, peer_m)
        exact = data()[3]
        np.testing.assert_allclose(ours_fn(), exact, rtol=0, atol=tol)
        np.testing.assert_allclose(peer_fn(), exact, rtol=0, atol=tol)
        ours = min(best_time(ours_fn, t) for t in (1, 2))
        peer = min(best_time(peer_fn, t) for t in (1, 2))
        rows.append((kind, ours_m, ours, peer_m, peer))
        print(f"{kind:5s} {ours_m:20s} {ours * 1e3:7.3f} ms   {peer_m:32s} {peer * 1e3:7.3f} ms"
              f"   peer/ours = {peer / ours:5.2f}", flush=True)
    return rows


if __name__ == "__main__":
    import sys
    import os
    sys.path.insert(0, os.path.dirname(__file__))
    main()
