#!/usr/bin/env python
"""Run the benchmark suite and write bench/results/REPORT.md (+ PNG charts).

    python bench/report.py            # quick sizes (a few minutes)
    python bench/report.py --full     # the sizes named in the issues (much longer)

In the same run it measures the machine's streaming-copy bandwidth and its random-row
gather limit, runs the pytest-benchmark suite (every group holds fastembed and its
peers on the same data, each result asserted), then writes one table per op: median
time, GB/s, % of the random-row limit at the same D and thread count (for tables larger
than the caches, where that limit applies), and how many times faster fastembed's best
is than each method.  Charts (matplotlib, optional):
gather throughput against embedding dimension and against thread count.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROW_OPS = ("gather", "scatter_add", "coalesce", "embedding_bag", "adam", "adagrad", "sgd",
           "train")
RESULTS = HERE / "results"

sys.path.insert(0, str(HERE))


def machine_info() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "cores": len(os.sched_getaffinity(0))}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    versions = {}
    for mod in ("fastembed", "numpy", "torch", "keras_preprocessing", "pandas", "gensim"):
        try:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", "?")
        except ImportError:
            versions[mod] = "not installed"
    info["versions"] = versions
    return info


def measure_limits(full: bool) -> dict:
    from fastembed._timing import random_row_gbs, stream_copy_gbs

    copy_bytes = (512 << 20) if full else (128 << 20)
    table_bytes = (1 << 30) if full else (256 << 20)
    limits = {"copy": {}, "rand": {}}
    for t in (1, 2):
        limits["copy"][t] = stream_copy_gbs(copy_bytes, threads=t)
        for d in (8, 32, 64, 256):
            limits["rand"][(d, t)] = random_row_gbs(d, threads=t, table_bytes=table_bytes,
                                                     n=500_000 if full else 200_000)
    return limits


def run_suite(full: bool, out_json: Path, select: str | None) -> int:
    env = dict(os.environ)
    if full:
        env["FASTEMBED_BENCH_FULL"] = "1"
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={out_json}", "--benchmark-disable-gc",
           "--benchmark-max-time", "1.0" if full else "0.25", "--benchmark-min-rounds", "3"]
    if select:
        cmd += ["-k", select]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd, env=env, cwd=str(HERE))


def sweep(full: bool) -> dict:
    """Gather GB/s against D (1 and 2 threads) for fastembed, numpy and torch."""
    import fastembed as fe
    from fastembed._timing import measure

    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    table_bytes = (1 << 30) if full else (256 << 20)
    n = 500_000 if full else 200_000
    res = defaultdict(dict)  # (method, threads) -> {D: GB/s}
    for d in (8, 16, 32, 64, 128, 256):
        rows = table_bytes // (4 * d)
        table = rng.standard_normal((rows, d), dtype=np.float32)
        ids = rng.integers(0, rows, n)
        out = np.empty((n, d), np.float32)
        for t in (1, 2):
            fe.set_num_threads(t)
            fns = {"fastembed gather": lambda: fe.ops.gather(table, ids),
                   "fastembed gather(out=)": lambda: fe.ops.gather(table, ids, out=out)}
            if t == 1:
                fns["numpy take(out=,clip)"] = lambda: np.take(table, ids, axis=0, out=out, mode="clip")
            if torch is not None:
                torch.set_num_threads(t)
                tt, ti, to = torch.from_numpy(table), torch.from_numpy(ids), torch.from_numpy(out)
                fns["torch index_select(out=)"] = lambda: torch.index_select(tt, 0, ti, out=to)
            for k, s in measure(fns, rounds=3, min_time=0.05).items():
                res[(k, t)][d] = 2 * n * d * 4 / s / 1e9
        del table
    return res


def method_of(b: dict) -> tuple[str, int]:
    ei = b.get("extra_info", {})
    method = ei.get("method")
    threads = ei.get("threads")
    params = b.get("params") or {}
    if method is None:
        method = (params.get("method") or params.get("impl") or ei.get("library")
                  or params.get("library"))
    if method is None:
        m = re.search(r"\[(.*)\]", b["name"])
        method = m.group(1) if m else b["name"]
    if threads is None:
        threads = params.get("threads", 1)
    return str(method), int(threads)


def is_ours(method: str) -> bool:
    return method.lower().startswith("fastembed") or method.lower().startswith("fe ")


def fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.2f} us"


def limit_for(limits, dim, threads):
    if dim is None:
        return None
    ds = sorted(d for d, t in limits["rand"] if t == threads) or [8]
    d = min(ds, key=lambda x: abs(np.log2(max(dim, 1)) - np.log2(x)))
    return limits["rand"].get((d, threads))


def table_bytes_of(extra_info: dict) -> int | None:
    """Bytes of the table a benchmark reads rows of (V x D at the dtype's width)."""
    if extra_info.get("table_bytes"):
        return int(extra_info["table_bytes"])
    V, D = extra_info.get("V"), extra_info.get("D") or extra_info.get("dim")
    if not V or not D:
        return None
    dtype = str(extra_info.get("dtype", "float32"))
    width = 2 if dtype in ("float16", "bfloat16") else 8 if dtype == "float64" else 4
    return int(V) * int(D) * width


def write_report(info, limits, bench, charts, full, path: Path):
    from fastembed._timing import last_level_cache_bytes, limit_applies

    groups = defaultdict(list)
    for b in bench.get("benchmarks", []):
        groups[b.get("group") or b["name"]].append(b)
    lines = ["# fastembed benchmark report", ""]
    lines.append(f"Generated by `python bench/report.py{' --full' if full else ''}` on "
                 f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}. Every number below "
                 f"comes from this one run.")
    lines += ["", "## Machine", ""]
    lines.append(f"- CPU: {info.get('cpu', '?')} ({info['cores']} cores available), "
                 f"memory {info.get('memory', '?')}, {info['platform']}")
    lines.append("- Versions: python " + info["python"] + ", " +
                 ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    lines += ["", "## Limits measured in this run", "",
              "| threads | streaming copy GB/s | random-row gather GB/s (D=8 / 32 / 64 / 256) |",
              "|---|---|---|"]
    for t in (1, 2):
        rr = " / ".join(f"{limits['rand'][(d, t)]:.1f}" for d in (8, 32, 64, 256))
        lines.append(f"| {t} | {limits['copy'][t]:.1f} | {rr} |")
    lines += ["", "GB/s counts bytes of rows read plus rows written (the anchors' convention); "
              "'% limit' is that GB/s as a share of the random-row gather limit at the nearest D "
              "and the same thread count. It is shown only for row-moving ops on tables of at "
              f"least twice the last-level cache ({last_level_cache_bytes() >> 20} MiB here): "
              "smaller tables are served from cache, which the limit does not bound.", ""]

    summary = []
    detail = []
    for g in sorted(groups):
        rows = []
        for b in groups[g]:
            method, threads = method_of(b)
            med = b["stats"]["median"]
            ei = b.get("extra_info", {})
            nbytes = ei.get("bytes")
            # The random-row limit bounds the row-moving kernels, not parsers or text, and
            # only on tables that do not fit in the caches.
            dim = (ei.get("D") or ei.get("dim")) if str(ei.get("op", "")).startswith(
                ROW_OPS) else None
            if not limit_applies(table_bytes_of(ei)):
                dim = None
            rows.append((method, threads, med, nbytes, dim))
        ours = [r for r in rows if is_ours(r[0])]
        peers = [r for r in rows if not is_ours(r[0])]
        best_ours = min(ours, key=lambda r: r[2]) if ours else None
        best_peer = min(peers, key=lambda r: r[2]) if peers else None
        if best_ours and best_peer:
            summary.append((g, best_ours, best_peer, best_peer[2] / best_ours[2]))
        detail += ["", f"### {g}", "", "| method | threads | median | GB/s | % limit | fastembed best is x faster |",
                   "|---|---|---|---|---|---|"]
        for method, threads, med, nbytes, dim in sorted(rows, key=lambda r: r[2]):
            gbs = nbytes / med / 1e9 if nbytes else None
            lim = limit_for(limits, dim, threads) if gbs and dim else None
            ratio = (med / best_ours[2]) if best_ours else None
            detail.append(f"| {method} | {threads} | {fmt_time(med)} | "
                          f"{'' if gbs is None else f'{gbs:.2f}'} | "
                          f"{'' if lim is None else f'{100 * gbs / lim:.0f}%'} | "
                          f"{'' if ratio is None or is_ours(method) else f'{ratio:.2f}'} |")
    lines += ["## Summary: fastembed's best against the best peer (each at its best thread count)", "",
              "| group | fastembed | best peer | peer time / fastembed time |", "|---|---|---|---|"]
    for g, o, p, r in summary:
        lines.append(f"| {g} | {fmt_time(o[2])} ({o[0]}, {o[1]}T) | {fmt_time(p[2])} ({p[0]}, {p[1]}T) | "
                     f"**{r:.2f}** |")
    if charts:
        lines += ["", "## Charts", ""] + [f"![{c.stem}]({c.name})" for c in charts]
    lines += ["", "## Per group"] + detail
    path.write_text("\n".join(lines) + "\n")


def draw_charts(sw: dict, limits: dict) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no charts")
        return []
    charts = []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (method, t), by_d in sorted(sw.items()):
        ds = sorted(by_d)
        ax.plot(ds, [by_d[d] for d in ds], marker="o", label=f"{method} ({t}T)")
    for t in (1, 2):
        ds = [8, 32, 64, 256]
        ax.plot(ds, [limits["rand"][(d, t)] for d in ds], "k--" if t == 1 else "k:",
                label=f"random-row limit ({t}T)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("embedding dimension D")
    ax.set_ylabel("GB/s (rows read + written)")
    ax.set_title("gather throughput against D (table far larger than cache)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = RESULTS / "gather_vs_dim.png"
    fig.savefig(p, dpi=110)
    charts.append(p)
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = sorted({m for m, _ in sw})
    d = 64
    for i, m in enumerate(methods):
        ts = [t for (mm, t) in sw if mm == m]
        ax.bar([t + 0.18 * i - 0.27 for t in sorted(ts)], [sw[(m, t)][d] for t in sorted(ts)],
               width=0.18, label=m)
    ax.set_xticks([1, 2])
    ax.set_xlabel("threads")
    ax.set_ylabel("GB/s")
    ax.set_title(f"gather throughput against thread count (D={d})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = RESULTS / "gather_vs_threads.png"
    fig.savefig(p, dpi=110)
    charts.append(p)
    plt.close("all")
    return charts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the sizes named in the issues")
    ap.add_argument("-k", dest="select", default=None, help="pytest -k filter for the suite")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse bench/results/benchmarks.json instead of running the suite")
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    info = machine_info()
    print("measuring limits ...", flush=True)
    limits = measure_limits(args.full)
    out_json = RESULTS / "benchmarks.json"
    if not args.reuse:
        rc = run_suite(args.full, out_json, args.select)
        if rc not in (0, 5):
            print(f"benchmark suite exited with {rc}; the report covers what ran")
    bench = json.loads(out_json.read_text()) if out_json.exists() else {"benchmarks": []}
    print("sweeping gather over D and threads ...", flush=True)
    charts = draw_charts(sweep(args.full), limits)
    write_report(info, limits, bench, charts, args.full, RESULTS / "REPORT.md")
    print(f"wrote {RESULTS / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
