"""Fuzz target: fastembed.load_vectors on every format.

Bytes decode to a format, a dtype, a limit and a file: either the raw remaining bytes,
or a file assembled from tricky pieces (headers that lie, dimensions of 2**59 and around
the 2**20 bound, ragged rows, "nan", "1e999", "1.0abc", CRLF, a BOM, U+00A0 inside
words, truncated binary records, invalid UTF-8).  The file is then loaded with the
chosen format and also with format="auto", from a regular file and, when the input
asks for it, also through a pipe (no size known: a lying header meets only the reader's
own bounds).

The only exception allowed is ValueError (a malformed file; UnicodeDecodeError is a
ValueError too).  A successful load must give a consistent WordVectors: one row per
unique word, the index matching the word order, the requested dtype and dimension,
finite values, at most `limit` rows.  The file and the pipe must agree: both fail, or
both give the same words and vectors.  Anything else is a finding.
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bytes import ByteReader, fuzz_main  # noqa: E402

FORMATS = ["auto", "glove", "word2vec", "word2vec_binary", "fasttext"]
fe = None
_TMP = None


def load():
    global fe
    if fe is None:
        import fastembed

        fe = fastembed
    return fe


def _path():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="fe-fuzz-vectors-")
    return os.path.join(_TMP, "vectors.txt")


WORDS = [b"the", b"a", b"caf\xc3\xa9", b". . .", b"\xc2\xa0x", b"\xff\xfe", b"", b"the",
         b"\n", b"x\ty", b"\xe2\x82", b"word" * 20]
NUMS = [b"0", b"1", b"-1.5", b"0.25", b"1e-3", b"nan", b"inf", b"-inf", b"1e999", b"1.0abc",
        b"", b"+2", b".5", b"5.", b"0x10", b"1_0", b"--1", b"1e", b"3.4028236e38", b"\xc2\xa0"]
SEPS = [b" ", b" ", b" ", b"  ", b"\t", b"\xc2\xa0"]
EOLS = [b"\n", b"\n", b"\r\n", b"", b" \n", b"\n\n"]


def _text_file(r: ByteReader) -> bytes:
    out = bytearray()
    if r.u8() % 8 == 0:
        out += b"\xef\xbb\xbf"
    dim = r.int_in(0, 4)
    nlines = r.int_in(0, 6)
    if r.boolean():  # a header, truthful or not
        count = r.pick([nlines, nlines + 1, max(0, nlines - 1), 0, -1, 10**12, 2**63])
        hdim = r.pick([dim, dim + 1, 0, -3, 10**9, 2**59, 999999999999999999, 2**20,
                       2**20 + 1])
        out += str(count).encode() + b" " + str(hdim).encode() + r.pick(EOLS)
    for _ in range(nlines):
        out += r.pick(WORDS)
        nf = dim + r.pick([0, 0, 0, 0, 1, -1, 2])
        for _ in range(max(0, nf)):
            out += r.pick(SEPS) + r.pick(NUMS)
        out += r.pick(EOLS)
    return bytes(out)


def _binary_file(r: ByteReader) -> bytes:
    dim = r.int_in(0, 4)
    count = r.int_in(0, 5)
    hcount = r.pick([count, count + 1, max(0, count - 1), 10**12])
    hdim = r.pick([dim, dim, dim + 1, 0, 2**40, 2**59, 2**20 + 1])
    out = bytearray(f"{hcount} {hdim}\n".encode())
    for _ in range(count):
        if r.u8() % 4 == 0:
            out += b"\n"  # word2vec.c's leading newline
        out += r.pick(WORDS) + r.pick([b" ", b" ", b"\t", b""])
        vals = [r.pick([0.0, 1.0, -2.5, float("nan"), float("inf"), 1e-40]) for _ in range(dim)]
        out += struct.pack(f"<{dim}f", *vals)
    cut = r.u8()
    if cut < 40 and out:
        out = out[:len(out) - (cut % max(1, len(out)))]
    return bytes(out)


def make_file(r: ByteReader) -> bytes:
    how = r.u8() % 4
    if how == 0:
        return r.rest()
    if how == 3:
        return _binary_file(r)
    return _text_file(r)


def check_result(wv, dtype, limit):
    n = len(wv.words)
    assert isinstance(wv.vectors, np.ndarray) and wv.vectors.ndim == 2, "vectors not 2-D"
    assert wv.vectors.shape == (n, wv.dim), (wv.vectors.shape, n, wv.dim)
    assert wv.vectors.dtype == np.dtype(dtype), wv.vectors.dtype
    assert len(set(wv.words)) == n, "duplicate words kept"
    assert all(isinstance(w, str) for w in wv.words)
    assert wv.index == {w: i for i, w in enumerate(wv.words)}, "index does not match words"
    assert np.isfinite(wv.vectors).all(), "non-finite values accepted"
    if limit is not None:
        assert n <= limit, (n, limit)
    for i, w in enumerate(wv.words[:5]):
        assert w in wv and np.array_equal(wv[w], wv.vectors[i])


def _load_from_pipe(content: bytes, **kw):
    """load_vectors through a pipe (/proc/self/fd/N: a path whose size is unknown)."""
    rfd, wfd = os.pipe()
    writer = None
    try:
        if len(content) <= 60000:  # fits the pipe buffer: no writer thread needed
            os.write(wfd, content)
            os.close(wfd)
            wfd = -1
        else:
            def write(fd=wfd):
                try:
                    view = memoryview(content)
                    while view:
                        view = view[os.write(fd, view):]
                except BrokenPipeError:
                    pass
                finally:
                    os.close(fd)
            writer = threading.Thread(target=write)
            writer.start()
            wfd = -1
        return fe.load_vectors(f"/proc/self/fd/{rfd}", **kw)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
        if writer is not None:
            writer.join()


def _outcome(fn):
    try:
        return fn()
    except ValueError:
        return None


def TestOneInput(data: bytes) -> None:
    load()
    r = ByteReader(data)
    fmt = r.pick(FORMATS)
    dtype = r.pick(["float32", "float64"])
    limit = r.pick([None, None, None, 0, 1, 2])
    content = make_file(r)
    # Decided after the file so that older corpus inputs keep their meaning (raw-bytes
    # inputs, which end with the file, always go through the pipe too).
    via_pipe = r.u8() % 4 == 0 and os.path.isdir("/proc/self/fd")
    path = _path()
    with open(path, "wb") as f:
        f.write(content)
    for form in dict.fromkeys([fmt, "auto"]):
        kw = dict(format=form, dtype=dtype, limit=limit)
        wv = _outcome(lambda: fe.load_vectors(path, **kw))
        if wv is not None:
            check_result(wv, dtype, limit)
        if via_pipe:
            pv = _outcome(lambda: _load_from_pipe(content, **kw))
            assert (wv is None) == (pv is None), ("file and pipe disagree", form, wv, pv)
            if pv is not None:
                check_result(pv, dtype, limit)
                assert pv.words == wv.words and pv.vectors.tobytes() == wv.vectors.tobytes()


def main():
    fuzz_main(globals(), load)


if __name__ == "__main__":
    main()
