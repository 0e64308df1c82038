"""Small timing helpers shared by ``python -m fastembed bench`` and ``bench/report.py``.

The machines this runs on are noisy (a shared VM moves the same case 1.5x between runs),
so methods are timed *interleaved*: each round takes one sample of every method, and the
result is the median per method.  Compare ratios within one call, not across runs.
"""
from __future__ import annotations

import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional

import numpy as np

__all__ = ["measure", "stream_copy_gbs", "random_row_gbs", "last_level_cache_bytes",
           "limit_applies"]


def _calibrate(fn: Callable[[], object], min_time: float) -> int:
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 20:
            return n
        n = max(n * 2, int(n * min_time / max(dt, 1e-9) * 1.2))


def measure(fns: Dict[str, Callable[[], object]], rounds: int = 5,
            min_time: float = 0.02) -> Dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds."""
    inner = {k: _calibrate(f, min_time) for k, f in fns.items()}  # also warms up
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for k, f in fns.items():
                n = inner[k]
                t0 = time.perf_counter()
                for _ in range(n):
                    f()
                samples[k].append((time.perf_counter() - t0) / n)
    finally:
        if enabled:
            gc.enable()
    return {k: float(np.median(v)) for k, v in samples.items()}


def _split(pool: ThreadPoolExecutor, fn: Callable[[int, int], object], n: int,
           threads: int) -> None:
    if threads == 1:
        fn(0, n)
        return
    bounds = [n * i // threads for i in range(threads + 1)]
    futs = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    fn(bounds[0], bounds[1])
    for f in futs:
        f.result()


def stream_copy_gbs(nbytes: int = 256 << 20, threads: int = 1, rounds: int = 5) -> float:
    """Streaming copy bandwidth (bytes read + written per second / 1e9), np.copyto."""
    n = nbytes // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    with ThreadPoolExecutor(max_workers=max(1, threads - 1)) as pool:
        def run() -> None:
            _split(pool, lambda b, e: np.copyto(dst[b:e], src[b:e]), n, threads)
        t = measure({"copy": run}, rounds=rounds, min_time=0.05)["copy"]
    return 2 * nbytes / t / 1e9


def random_row_gbs(dim: int, threads: int = 1, table_bytes: int = 512 << 20,
                   n: int = 500_000, rounds: int = 5, seed: int = 0) -> float:
    """Random-row gather limit: np.take(out=, mode='clip') of uniform ids from a table far
    larger than the caches, in GB/s counting rows read + rows written (2 * n * dim * 4)."""
    rows = max(1, table_bytes // (dim * 4))
    rng = np.random.default_rng(seed)
    table = np.ones((rows, dim), np.float32)
    ids = rng.integers(0, rows, size=n)
    out = np.empty((n, dim), np.float32)
    with ThreadPoolExecutor(max_workers=max(1, threads - 1)) as pool:
        def run() -> None:
            _split(pool, lambda b, e: np.take(table, ids[b:e], axis=0, out=out[b:e],
                                              mode="clip"), n, threads)
        t = measure({"take": run}, rounds=rounds, min_time=0.05)["take"]
    return 2 * n * dim * 4 / t / 1e9


def last_level_cache_bytes() -> int:
    """The largest CPU cache of this machine in bytes (Linux sysfs; 32 MiB if unknown)."""
    sizes = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(base)
    except OSError:
        entries = []
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else 32 << 20


def limit_applies(table_bytes: Optional[int]) -> bool:
    """Whether the random-row limit bounds an op on a table of `table_bytes`.

    The limit is measured on a table far larger than the caches; a table that is not at
    least twice the last-level cache is served partly from cache and can run faster, so
    a percentage of the limit would mean nothing for it.
    """
    return table_bytes is not None and table_bytes >= 2 * last_level_cache_bytes()
