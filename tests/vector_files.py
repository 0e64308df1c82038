"""Writers of vectors files for the tests: GloVe / word2vec / fastText text and word2vec
binary, with values written so that they must read back bit for bit."""
from __future__ import annotations

import numpy as np

UNICODE_WORDS = ["the", "naïve", "日本語", "emoji😀", "a\u00a0b", "Ωmega", "x", "ß"]


def fmt9(x):
    return "%.9g" % x


def write_text(path, words, vecs, header=False, eol="\n", trailing="", bom=False,
               final_eol=True, fmt=fmt9):
    lines = []
    if header:
        lines.append(f"{len(words)} {vecs.shape[1]}")
    for w, v in zip(words, vecs):
        lines.append(w + " " + " ".join(fmt(float(x)) for x in v) + trailing)
    body = eol.join(lines) + (eol if final_eol else "")
    data = body.encode("utf-8")
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path


def write_binary(path, words, vecs, newline=True, count=None, dim=None):
    vecs = np.asarray(vecs, dtype="<f4")
    out = [f"{len(words) if count is None else count} "
           f"{vecs.shape[1] if dim is None else dim}\n".encode()]
    for w, v in zip(words, vecs):
        out.append(w.encode("utf-8") + b" " + v.tobytes() + (b"\n" if newline else b""))
    path.write_bytes(b"".join(out))
    return path


def rand_vecs(n, d, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    v[0, 0] = 1.5e-30  # exponent forms and extremes go through the exact slow path
    if n > 1 and d > 1:
        v[1, 1] = -3.0e38
    return v
