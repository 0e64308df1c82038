"""``python -m fastembed bench``: a ~30 second check of this machine.

Times a few ops at moderate sizes beside numpy (and torch when installed), with the
machine's streaming-copy and random-row limits measured in the same run, and prints one
table: time, GB/s, the share of the random-row limit where that limit applies (tables
larger than the caches), and each peer's time over fastembed's.
The full suite (every op, every peer, the issue sizes) lives in the repository's bench/.
"""
from __future__ import annotations

import argparse
import platform
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import get_num_threads, ops, set_num_threads
from ._timing import (last_level_cache_bytes, limit_applies, measure, random_row_gbs,
                      stream_copy_gbs)

torch: Any
try:
    import torch
except ImportError:  # optional peer
    torch = None

# (name, bytes moved, D, bytes of the table read at random rows or None, {method: fn})
Case = Tuple[str, int, int, Optional[int], Dict[str, Callable[[], object]]]


def _gather_case(rng: np.random.Generator, V: int, D: int, N: int
                 ) -> Tuple[Case, "np.ndarray[Any, Any]"]:
    """The gather case (V, D, N) and its ids."""
    table = rng.standard_normal((V, D), dtype=np.float32)
    ids = rng.integers(0, V, N)
    out = np.empty((N, D), np.float32)
    fns: Dict[str, Callable[[], object]] = {
        "fastembed": lambda: ops.gather(table, ids),
        "fastembed (out=)": lambda: ops.gather(table, ids, out=out),
        "numpy take": lambda: np.take(table, ids, axis=0)}
    if torch is not None:  # into a preallocated output: torch's fastest form here
        tt, ti, to = torch.from_numpy(table), torch.from_numpy(ids), torch.empty((N, D))
        fns["torch index_select(out=)"] = lambda: torch.index_select(tt, 0, ti, out=to)
    return (f"gather V={V} D={D} N={N}", 2 * N * D * 4, D, V * D * 4, fns), ids


def _cases(rng: np.random.Generator) -> List[Case]:
    """The cases, gathers first."""
    case, i8 = _gather_case(rng, 100_000, 8, 1_000_000)
    cases = [case, _gather_case(rng, 1_000_000, 64, 200_000)[0]]

    V, D, N = 100_000, 8, 1_000_000
    tgt = np.zeros((V, D), np.float32)
    vals = rng.standard_normal((N, D), dtype=np.float32)
    fns: Dict[str, Callable[[], object]] = {
        "fastembed": lambda: ops.scatter_add(tgt, i8, vals),
        "numpy add.at": lambda: np.add.at(tgt, i8, vals)}
    if torch is not None:
        tg, ti, tv = torch.from_numpy(tgt), torch.from_numpy(i8), torch.from_numpy(vals)
        fns["torch index_add_"] = lambda: tg.index_add_(0, ti, tv)
    cases.append((f"scatter_add V={V} D={D} N={N}", 2 * N * D * 4, D, V * D * 4, fns))

    N, D = 200_000, 64
    zid = (rng.zipf(1.1, N) - 1) % 1_000_000
    zv = rng.standard_normal((N, D), dtype=np.float32)

    def np_coalesce() -> object:
        u, inv = np.unique(zid, return_inverse=True)
        out = np.zeros((u.size, D), np.float32)
        np.add.at(out, inv, zv)
        return u, out

    fns = {"fastembed": lambda: ops.coalesce(zid, zv), "numpy unique+add.at": np_coalesce}
    if torch is not None:
        tz, tzv = torch.from_numpy(zid), torch.from_numpy(zv)

        def torch_coalesce() -> object:
            u, inv = torch.unique(tz, return_inverse=True)
            return u, torch.zeros((u.numel(), D)).index_add_(0, inv, tzv)

        fns["torch unique+index_add_"] = torch_coalesce
    # Not a lookup in a table: the random-row limit does not bound it.
    cases.append((f"coalesce zipf N={N} D={D}", 2 * N * D * 4, D, None, fns))
    return cases


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fastembed bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A ~30-second speed check of this machine: gather, scatter_add and "
                    "coalesce\nbeside numpy (and torch when installed), with the machine's "
                    "memory limits\nmeasured in the same run. The full suite is bench/report.py "
                    "in the repository.")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for fastembed and torch (default: all available)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds per method; the median is shown (default 3)")
    args = p.parse_args(argv)
    threads = args.threads or get_num_threads()
    set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"fastembed quick bench: {platform.machine()}, {threads} thread(s), numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ", torch not installed"))
    copy = stream_copy_gbs(128 << 20, threads=threads, rounds=args.rounds)
    limits = {d: random_row_gbs(d, threads=threads, table_bytes=256 << 20, n=200_000,
                                rounds=args.rounds) for d in (8, 64)}
    print(f"limits: streaming copy {copy:.1f} GB/s (np.copyto of 128 MiB); random-row gather "
          + ", ".join(f"D={d} {g:.1f} GB/s" for d, g in limits.items())
          + " (np.take of uniform rows from a 256 MiB table)")
    rng = np.random.default_rng(0)
    header = f"{'op':34} {'method':24} {'time':>10} {'GB/s':>7} {'% limit':>8} {'fastembed x':>11}"
    print(header)
    print("-" * len(header))
    for name, nbytes, dim, table_bytes, fns in _cases(rng):
        # One method at a time: torch's OpenMP workers keep spinning after each call and
        # would slow whatever runs next on this machine's few cores if calls alternated.
        times = {k: measure({k: f}, rounds=args.rounds, min_time=0.05)[k]
                 for k, f in fns.items()}
        ours = min(t for k, t in times.items() if k.startswith("fastembed"))
        for method, t in times.items():
            gbs = nbytes / t / 1e9
            unit = f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} us"
            speed = "" if method.startswith("fastembed") else f"{t / ours:.2f}x"
            share = (f"{100 * gbs / limits[dim]:7.0f}%" if limit_applies(table_bytes)
                     else f"{'-':>8}")
            print(f"{name:34} {method:24} {unit:>10} {gbs:7.2f} {share} {speed:>11}")
    print(f"""
time: median seconds per call. GB/s: bytes of rows read + rows written per second.
% limit: GB/s as a share of the random-row gather limit above (same D and threads),
  shown for tables of at least twice the {last_level_cache_bytes() >> 20} MiB last-level cache; smaller
  tables are served from cache, which that limit does not bound (-).
fastembed x: the peer's time / fastembed's best time (2.00x: fastembed twice as fast).""")
    return 0
