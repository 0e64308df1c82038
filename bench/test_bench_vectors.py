"""load_vectors: fastembed beside the Keras-blog Python loop (and pandas when installed).

Group "load_vectors": one generated GloVe-format text file, by default 50,000 words x 100
dims; FASTEMBED_BENCH_FULL=1 selects the issue's 400,000 x 100 (about 343 MB), written
once into a cache directory under /tmp (FASTEMBED_BENCH_CACHE overrides it).  Every
method's result is asserted equal to fastembed's.
"""
from __future__ import annotations

import os
import tempfile
import time
from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import FULL, set_threads

try:  # optional peer
    import pandas as pd
except ImportError:  # pragma: no cover
    pd = None

V, D = (400_000, 100) if FULL else (50_000, 100)
CACHE = os.environ.get("FASTEMBED_BENCH_CACHE",
                       os.path.join(tempfile.gettempdir(), "fastembed-bench-cache"))


def _words(rng, n):
    # Distinct lowercase words of 2..12 letters (the row number in base 26 keeps them
    # unique), like glove.6B's lowercased vocabulary.
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype="S1")
    out = []
    lens = rng.integers(2, 9, size=n)
    body = letters[rng.integers(0, 26, size=(n, 8))]
    for i in range(n):
        k, tag = i, []
        while True:
            tag.append(chr(97 + k % 26))
            k //= 26
            if k == 0:
                break
        out.append(b"".join(body[i, :lens[i]]).decode() + "".join(tag))
    return out


def glove_file(n=V, dim=D, seed=0):
    """Path of a cached GloVe-format file: n words, dim values of 6 significant digits."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"glove_{n}x{dim}_s{seed}.txt")
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(seed)
    words = _words(rng, n)
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        step = 10_000
        for s in range(0, n, step):
            vals = rng.normal(0.0, 0.4, size=(min(step, n - s), dim)).astype(np.float32)
            # GloVe prints about 6 significant digits per value.
            txt = np.char.mod("%.6g", vals)
            f.write("".join(w + " " + " ".join(row) + "\n"
                            for w, row in zip(words[s:s + len(vals)], txt.tolist())))
    os.replace(tmp, path)
    return path


def keras_blog(path):
    """The loop of Keras' "Using pre-trained word embeddings" blog post."""
    embeddings_index = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            values = line.split()
            word = values[0]
            coefs = np.asarray(values[1:], dtype="float32")
            embeddings_index[word] = coefs
    return embeddings_index


def pandas_read(path):
    import csv

    df = pd.read_csv(path, sep=" ", header=None, index_col=0, quoting=csv.QUOTE_NONE,
                     na_filter=False, engine="c", dtype={i: np.float32 for i in range(1, D + 1)},
                     keep_default_na=False, encoding="utf-8")
    return [str(w) for w in df.index], df.to_numpy(dtype=np.float32)


@lru_cache(maxsize=1)
def reference():
    wv = fe.load_vectors(glove_file())
    return wv.words, wv.vectors


METHODS = ["fastembed 1T", "fastembed 2T", "keras-blog loop", "pandas read_csv"]


@pytest.mark.parametrize("method", METHODS)
def test_load_vectors(benchmark, method):
    path = glove_file()
    words, vectors = reference()
    size = os.path.getsize(path)
    benchmark.group = "load_vectors"
    benchmark.extra_info.update(dict(op="load_vectors", V=V, D=D, bytes=size, method=method,
                                     format="glove", library=method.split(" ")[0]))
    rounds = 3 if method.startswith("fastembed") else 1
    if method.startswith("fastembed"):
        threads = int(method[-2])
        set_threads(threads)
        benchmark.extra_info["threads"] = threads
        wv = benchmark.pedantic(fe.load_vectors, args=(path,), rounds=rounds, iterations=1,
                                warmup_rounds=1)
        # CPU seconds of one load (all threads): on a shared machine the wall time also
        # counts waiting for a core.
        t0 = time.process_time()
        fe.load_vectors(path)
        benchmark.extra_info["cpu_s"] = round(time.process_time() - t0, 4)
        assert wv.words == words
        np.testing.assert_array_equal(wv.vectors, vectors)
    elif method == "keras-blog loop":
        idx = benchmark.pedantic(keras_blog, args=(path,), rounds=rounds, iterations=1)
        assert list(idx) == words
        np.testing.assert_array_equal(np.stack(list(idx.values())), vectors)
    else:
        if pd is None:
            pytest.skip("pandas not installed")
        got_words, got = benchmark.pedantic(pandas_read, args=(path,), rounds=rounds,
                                            iterations=1)
        assert got_words == words
        # pandas' default float parser may differ from the correctly rounded value by
        # one float64 ulp, which can move a float32 by one ulp.
        np.testing.assert_allclose(got, vectors, rtol=2e-7, atol=0)
