"""Shared helpers for the benchmark suite.

Every benchmark group holds fastembed and its peers (numpy always; torch,
keras_preprocessing, pandas, gensim when installed) on the same data in the same run,
and every benchmark asserts its result against the group's reference.

FASTEMBED_BENCH_FULL=1 selects the sizes named in the issues; the default sizes are
smaller so that the whole suite runs in a few minutes.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

FULL = os.environ.get("FASTEMBED_BENCH_FULL", "") not in ("", "0")

try:  # optional peers
    import torch
except ImportError:  # pragma: no cover
    torch = None


def zipf_ids(rng, n, rows, a=1.1, dtype=np.int64):
    """Zipf(a) ids truncated to `rows`; id = rank, so hot rows are the low ids."""
    return ((rng.zipf(a, size=n) - 1) % rows).astype(dtype)


def make_ids(rng, n, rows, dist, dtype=np.int64):
    if dist == "zipf":
        return zipf_ids(rng, n, rows, dtype=dtype)
    return rng.integers(0, rows, size=n, dtype=dtype)


_POOL = ThreadPoolExecutor(max_workers=2)


def split2(fn, n):
    """Run fn(begin, end) on two Python threads over [0, n): the obvious 2-thread numpy."""
    h = n // 2
    f = _POOL.submit(fn, 0, h)
    fn(h, n)
    f.result()


def set_threads(n):
    import fastembed as fe

    fe.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _restore_threads():
    import fastembed as fe

    before = fe.get_num_threads()
    tb = torch.get_num_threads() if torch is not None else None
    yield
    fe.set_num_threads(before)
    if torch is not None:
        torch.set_num_threads(tb)


def need_torch():
    if torch is None:
        pytest.skip("torch not installed")
    return torch
