"""fe.load_vectors and WordVectors: every format read back bit for bit, and the native
reader's blocks, FIFOs and parsing rules (errors: test_vectors_errors.py; the embedding
matrix: test_embedding_matrix.py).

Files are generated in tmp_path for every format; values are written with '%.9g' (text)
or as raw float32 (binary) so that they must read back bit for bit.  The reference for
text parsing is numpy's own string -> float32 cast (the Keras blog's
``np.asarray(values[1:], dtype='float32')``).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastembed as fe

from vector_files import UNICODE_WORDS, fmt9, rand_vecs, write_binary, write_text


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("fmt,header,trailing", [
    ("glove", False, ""), ("word2vec", True, ""), ("fasttext", True, " "),
    ("auto", False, ""), ("auto", True, " ")])
def test_text_round_trip(tmp_path, fmt, header, trailing):
    words = UNICODE_WORDS
    vecs = rand_vecs(len(words), 7)
    p = write_text(tmp_path / "v.txt", words, vecs, header=header, trailing=trailing)
    wv = fe.load_vectors(p, format=fmt)
    assert wv.words == words
    assert wv.vectors.dtype == np.float32 and wv.vectors.shape == (len(words), 7)
    np.testing.assert_array_equal(wv.vectors, vecs)
    assert wv.dim == 7 and len(wv) == len(words)
    assert wv.index == {w: i for i, w in enumerate(words)}
    assert wv.format == ({"auto": "word2vec" if header else "glove"}.get(fmt, fmt))


@pytest.mark.parametrize("newline", [True, False])
@pytest.mark.parametrize("fmt", ["auto", "word2vec_binary"])
def test_binary_round_trip(tmp_path, fmt, newline):
    words = UNICODE_WORDS
    vecs = rand_vecs(len(words), 5)
    p = write_binary(tmp_path / "v.bin", words, vecs, newline=newline)
    wv = fe.load_vectors(p, format=fmt)
    assert wv.words == words and wv.format == "word2vec_binary"
    assert wv.vectors.tobytes() == vecs.astype(np.float32).tobytes()


def test_binary_float64_and_limit(tmp_path):
    vecs = rand_vecs(6, 4)
    p = write_binary(tmp_path / "v.bin", [f"w{i}" for i in range(6)], vecs)
    wv = fe.load_vectors(p, dtype="float64", limit=4)
    assert wv.vectors.dtype == np.float64
    np.testing.assert_array_equal(wv.vectors, vecs[:4].astype(np.float64))


def test_float64_text_is_exact(tmp_path):
    tokens = ["0.1", "-2.5e-3", "123456789.123456789", "1e-310", "7"]
    (tmp_path / "v.txt").write_text("w " + " ".join(tokens) + "\n")
    wv = fe.load_vectors(tmp_path / "v.txt", dtype="float64")
    assert wv.vectors.tolist() == [[float(t) for t in tokens]]


def test_numbers_match_numpy_float32_cast(tmp_path):
    """Short decimals, long mantissas, exponents, signs: numpy's str -> float32 cast."""
    rng = np.random.default_rng(1)
    toks = [f"{x:.6f}" for x in rng.normal(0, 0.5, 300)]
    toks += [f"{x:.5g}" for x in rng.normal(0, 1e-4, 100)]
    toks += [repr(float(x)) for x in rng.normal(0, 3, 100)]
    toks += ["+1.5", ".5", "5.", "-0", "0", "1E5", "2.5e+3", "123456789012345678901234",
             "0.000000000000000000000000000001", "1.000000059604644775390625000001",
             "3.4028235e38", "-1.1754944e-38", "1e-50", "00012.50"]
    while len(toks) % 10:
        toks.append("1")
    grid = np.array(toks).reshape(-1, 10)
    lines = [f"w{i} " + " ".join(row) for i, row in enumerate(grid)]
    (tmp_path / "v.txt").write_text("\n".join(lines) + "\n")
    wv = fe.load_vectors(tmp_path / "v.txt")
    ref = np.asarray(grid, dtype=np.float32)
    assert wv.vectors.tobytes() == ref.tobytes()


def test_keras_blog_loop_equivalence(tmp_path):
    rng = np.random.default_rng(2)
    words = [f"tok{i}" for i in range(300)]
    vecs = rng.normal(0, 0.4, (300, 50)).astype(np.float32)
    p = write_text(tmp_path / "glove.txt", words, vecs, fmt=lambda x: "%.5g" % x)
    embeddings_index = {}
    with open(p, encoding="utf-8") as f:
        for line in f:
            values = line.split()
            embeddings_index[values[0]] = np.asarray(values[1:], dtype="float32")
    wv = fe.load_vectors(p)
    assert wv.words == list(embeddings_index)
    np.testing.assert_array_equal(wv.vectors, np.stack(list(embeddings_index.values())))


def test_duplicates_keep_first(tmp_path):
    words = ["a", "b", "a", "c", "b"]
    vecs = np.arange(15, dtype=np.float32).reshape(5, 3)
    for p in (write_text(tmp_path / "d.txt", words, vecs),
              write_binary(tmp_path / "d.bin", words, vecs)):
        wv = fe.load_vectors(p)
        assert wv.words == ["a", "b", "c"]
        assert wv.n_duplicates == 2
        np.testing.assert_array_equal(wv.vectors, vecs[[0, 1, 3]])
        assert wv.index == {"a": 0, "b": 1, "c": 2}
        np.testing.assert_array_equal(wv["c"], vecs[3])


def test_limit(tmp_path):
    words = [f"w{i}" for i in range(10)]
    vecs = rand_vecs(10, 4)
    p = write_text(tmp_path / "v.txt", words, vecs)
    for lim in (0, 1, 3, 10, 50):
        wv = fe.load_vectors(p, limit=lim)
        assert wv.words == words[:lim]
        np.testing.assert_array_equal(wv.vectors, vecs[:lim])
        assert wv.vectors.shape == (min(lim, 10), 4)
    # Lines after the limit are not parsed: a bad line there is no error.
    with open(p, "a") as f:
        f.write("broken 1 2\n")
    assert len(fe.load_vectors(p, limit=10)) == 10
    with pytest.raises(ValueError, match="line 11"):
        fe.load_vectors(p)
    # With a header, limit below the announced count reads just that many.
    pb = write_binary(tmp_path / "v.bin", words, vecs)
    assert fe.load_vectors(pb, limit=3).words == words[:3]
    pw = write_text(tmp_path / "v.vec", words, vecs, header=True)
    assert fe.load_vectors(pw, limit=3).words == words[:3]


def test_header_count_smaller_than_file_stops_there(tmp_path):
    words = [f"w{i}" for i in range(5)]
    vecs = rand_vecs(5, 3)
    p = write_text(tmp_path / "v.vec", words, vecs, header=True)
    data = p.read_bytes().replace(b"5 3\n", b"3 3\n", 1) + b"junk line\n"
    p.write_bytes(data)
    wv = fe.load_vectors(p)
    assert wv.words == words[:3]
    pb = write_binary(tmp_path / "v.bin", words, vecs, count=3)
    assert fe.load_vectors(pb).words == words[:3]


def test_crlf_bom_trailing_spaces_blank_lines(tmp_path):
    words = ["\u00e9t\u00e9", "b", "c"]
    vecs = rand_vecs(3, 4)
    p = write_text(tmp_path / "v.txt", words, vecs, eol="\r\n", trailing="  \t", bom=True)
    data = p.read_bytes().replace(b"\r\nb ", b"\r\n\r\n   \r\nb ")  # blank lines
    p.write_bytes(data)
    wv = fe.load_vectors(p)
    assert wv.words == words
    np.testing.assert_array_equal(wv.vectors, vecs)
    # Same with a header, and without a final newline.
    p2 = write_text(tmp_path / "v.vec", words, vecs, header=True, eol="\r\n", trailing=" ",
                    bom=True, final_eol=False)
    wv2 = fe.load_vectors(p2)
    assert wv2.format == "word2vec" and wv2.words == words
    np.testing.assert_array_equal(wv2.vectors, vecs)


def test_tabs_and_runs_of_spaces(tmp_path):
    (tmp_path / "v.txt").write_text("a\t1  2\t 3\nb 4 5 6\n")
    wv = fe.load_vectors(tmp_path / "v.txt")
    assert wv.vectors.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_glove_840b_words_with_spaces(tmp_path):
    (tmp_path / "v.txt").write_text(
        "the 1 2 3\n. . . 4 5 6\nat name@domain.com 7 8 9\nx\u00a0y 1 1 1\n")
    wv = fe.load_vectors(tmp_path / "v.txt")
    assert wv.words == ["the", ". . .", "at name@domain.com", "x\u00a0y"]
    assert wv.vectors.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]]


def test_threads_give_identical_results(tmp_path, threads):
    # > 1 MB so that the block is split into several chunks.
    rng = np.random.default_rng(3)
    n, d = 6000, 50
    words = [f"w{i}\u00e9" for i in range(n)]
    vecs = rng.normal(0, 1, (n, d)).astype(np.float32)
    p = write_text(tmp_path / "big.txt", words, vecs)
    assert os.path.getsize(p) > 2 << 20
    results = []
    for t in (1, 2, 3):
        threads(t)
        wv = fe.load_vectors(p)
        assert wv.words == words
        results.append(wv.vectors.tobytes())
    assert results[0] == results[1] == results[2] == vecs.tobytes()
    # The first error in file order wins, whatever the chunking.
    lines = p.read_bytes().split(b"\n")
    lines[5000] = lines[5000] + b" 1"
    lines[5500] = b"bad 1 2"
    p.write_bytes(b"\n".join(lines))
    for t in (1, 2):
        threads(t)
        with pytest.raises(ValueError, match=r"line 5001: ragged row: expected 50 values"):
            fe.load_vectors(p)


# ------------------------------------------------------------------ WordVectors

def test_word_vectors_api(tmp_path):
    vecs = rand_vecs(3, 2)
    wv = fe.load_vectors(write_text(tmp_path / "v.txt", ["a", "b", "c"], vecs))
    assert "b" in wv and "z" not in wv and len(wv) == 3 and list(wv) == ["a", "b", "c"]
    np.testing.assert_array_equal(wv["b"], vecs[1])
    with pytest.raises(KeyError):
        wv["z"]
    assert wv.get("z") is None and wv.get("a") is not None
    assert "3 words x 2 dims" in repr(wv)
    wv2 = fe.WordVectors(["x", "y"], np.zeros((2, 4), np.float32))
    assert wv2.index == {"x": 0, "y": 1} and wv2.dim == 4
    with pytest.raises(ValueError):
        fe.WordVectors(["x"], np.zeros((2, 4)))


# ------------------------------------------------------------------ hypothesis

WORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
                             blacklist_characters="\ufeff"), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(st.lists(WORD, min_size=1, max_size=12, unique=True), st.integers(2, 6),
       st.sampled_from(["glove", "word2vec", "fasttext", "word2vec_binary"]), st.data())
def test_round_trip_property(tmp_path_factory, words, d, fmt, data):
    vals = data.draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                              min_size=len(words) * d, max_size=len(words) * d))
    vecs = np.array(vals, dtype=np.float32).reshape(len(words), d)
    p = tmp_path_factory.mktemp("rt") / "v"
    if fmt == "word2vec_binary":
        write_binary(p, words, vecs, newline=False)
    else:
        write_text(p, words, vecs, header=fmt != "glove", trailing=" " if fmt == "fasttext" else "")
    wv = fe.load_vectors(p, format=fmt)
    assert wv.words == words
    assert wv.vectors.tobytes() == vecs.tobytes()
    assert fe.load_vectors(p).words == words  # auto detection agrees


# ------------------------------------------------------------------ block boundaries

def _core_load(data, fmt="auto", limit=-1, block=0, dtype="float32"):
    from fastembed import _core

    r = _core.load_vectors(data, "mem", fmt, dtype, limit, -1, block)
    return r.words, r.vectors


@pytest.mark.parametrize("block", [16, 37, 100, 1000])
def test_small_blocks_cross_every_boundary(tmp_path, block):
    """Tiny blocks put lines and binary records across block ends everywhere."""
    words = [f"w{i}\u00e9" for i in range(60)]
    vecs = rand_vecs(60, 9, seed=block)
    for data in (write_text(tmp_path / "v.txt", words, vecs, eol="\r\n").read_bytes(),
                 write_text(tmp_path / "v.vec", words, vecs, header=True,
                            trailing=" ").read_bytes(),
                 write_binary(tmp_path / "v.bin", words, vecs).read_bytes(),
                 write_binary(tmp_path / "w.bin", words, vecs, newline=False).read_bytes()):
        got_words, got = _core_load(data, block=block)
        assert got_words == words
        assert got.tobytes() == vecs.tobytes()
        for lim in (0, 1, 7, 59):
            lw, lv = _core_load(data, limit=lim, block=block)
            assert lw == words[:lim] and lv.tobytes() == vecs[:lim].tobytes()
    # errors are found at the same place whatever the block size
    bad = write_text(tmp_path / "b.txt", words, vecs).read_bytes().split(b"\n")
    bad[41] = bad[41].rsplit(b" ", 1)[0]
    with pytest.raises(ValueError, match=r"mem, line 42: ragged row: expected 9 values"):
        _core_load(b"\n".join(bad), block=block)
    full = write_binary(tmp_path / "t.bin", words, vecs).read_bytes()
    with pytest.raises(ValueError, match="mem, byte offset"):
        _core_load(full[:-3], block=block)


def test_long_line_grows_the_buffer():
    line = b"w " + b" ".join([b"0.25"] * 5000) + b"\n"
    words, vecs = _core_load(line * 3, block=64)
    assert words == ["w"] and vecs.shape == (1, 5000) and (vecs == 0.25).all()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
@pytest.mark.parametrize("kind", ["glove", "binary"])
def test_fifo_is_read_in_blocks(tmp_path, kind):
    import threading

    words = [f"w{i}" for i in range(300)]
    vecs = rand_vecs(300, 20)
    src = (write_text(tmp_path / "src", words, vecs) if kind == "glove"
           else write_binary(tmp_path / "src", words, vecs)).read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as f:
            for i in range(0, len(src), 4096):
                f.write(src[i:i + 4096])

    t = threading.Thread(target=writer)
    t.start()
    try:
        wv = fe.load_vectors(fifo)
    finally:
        t.join(timeout=30)
    assert wv.words == words and wv.vectors.tobytes() == vecs.tobytes()


def test_float32_fast_path_differential():
    """Random short decimals, and 8-digit decimals next to float32 rounding midpoints,
    against numpy's str -> float32 cast (float64 first, then float32)."""
    rng = np.random.default_rng(11)
    n = 20000
    ints = rng.integers(0, 10 ** rng.integers(0, 9, n), dtype=np.int64)
    fracs = rng.integers(0, 9, n)
    toks = []
    for i, k, s in zip(ints, fracs, rng.random(n) < 0.5):
        f = "" if k == 0 else "." + str(rng.integers(0, 10 ** k)).zfill(k)
        toks.append(("-" if s else "") + str(i) + f)
    # Near midpoints: x + ulp/2 rounded to 8 decimals, then nudged by one unit.
    x = rng.uniform(1, 70000, 4000).astype(np.float32)
    mid = (x.astype(np.float64) + np.spacing(x).astype(np.float64) / 2)
    for m, d in zip(mid, rng.integers(-1, 2, len(mid))):
        toks.append("%.8f" % (round(m, 8) + d * 1e-8))
    while len(toks) % 20:
        toks.append("0")
    grid = np.array(toks).reshape(-1, 20)
    data = "\n".join(f"w{i} " + " ".join(r) for i, r in enumerate(grid)).encode()
    _, got = _core_load(data)
    ref = np.asarray(grid, dtype=np.float32)
    assert got.tobytes() == ref.tobytes()
    _, got64 = _core_load(data, dtype="float64")
    assert got64.tobytes() == np.asarray(grid, dtype=np.float64).tobytes()


def test_leading_blank_lines_and_line_numbers(tmp_path):
    p = tmp_path / "v.txt"
    p.write_bytes(b"\n  \r\na 1 2\n\nb 1\n")
    with pytest.raises(ValueError, match=r"v\.txt, line 5: ragged row: expected 2 values "
                                         r"after the word, found 1"):
        fe.load_vectors(p)
    p.write_bytes(b"\n\n3 2\n\na 1 2\nb 3 4\nc 5 6")
    wv = fe.load_vectors(p)
    assert wv.format == "word2vec" and wv.words == ["a", "b", "c"]
    assert wv.vectors.tolist() == [[1, 2], [3, 4], [5, 6]]


# ------------------------------------------------------------------ differential: a
# Python transcription of the documented GloVe rules against the native parser

import re as _re

_NUM = _re.compile(rb"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_FIELD = _re.compile(rb"[^ \t]+")


def _ref_number(tok):
    if not _NUM.fullmatch(tok):
        return None
    x = float(tok)
    if not np.isfinite(x):
        return None
    with np.errstate(over="ignore"):  # beyond float32: rounds to inf, refused below
        v = np.float32(x)
    return v if np.isfinite(v) else None


def ref_glove(data):
    """(words, vectors) or ("error", line) following the rules in vectors.hpp."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    words, rows, seen, D = [], [], set(), None
    for lineno, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b" \t\r")
        if not line:
            continue
        spans = [m.span() for m in _FIELD.finditer(line)]
        n = len(spans)
        if D is None:
            D = n - 1
            if D < 1:
                return "error", lineno
        if n < D + 1:
            return "error", lineno
        first = n - D
        if n > D + 1 and all(_NUM.fullmatch(line[a:b]) for a, b in spans[1:first]):
            return "error", lineno
        vals = [_ref_number(line[a:b]) for a, b in spans[first:]]
        if any(v is None for v in vals):
            return "error", lineno
        word = line[spans[0][0]:spans[first - 1][1]]
        try:
            w = word.decode("utf-8")
        except UnicodeDecodeError:
            return "error", lineno
        if w not in seen:
            seen.add(w)
            words.append(w)
            rows.append(vals)
    if D is None:
        return "error", 0
    return words, np.array(rows, dtype=np.float32).reshape(len(rows), D)


_TOKENS = [b"0.5", b"-1", b"2.25e-3", b"+.5", b"5.", b".", b"-", b"1e", b"1e+2", b"nan",
           b"inf", b"1e999", b"1e39", b"1.0abc", b"007", b"-0", b"1_0", b"0x10",
           b"3.4028235e38", b"1e-60"]
_WORDS = [b"the", b"caf\xc3\xa9", b"\xff", b"a b", b"x", b".", b"1", b"\xe6\x97\xa5"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_WORDS),
                          st.lists(st.sampled_from(_TOKENS[:7]) | st.sampled_from(_TOKENS),
                                   min_size=0, max_size=4),
                          st.sampled_from([b" ", b"\t", b"  "]),
                          st.sampled_from([b"\n", b"\r\n", b" \n", b"\n\n"])),
                min_size=1, max_size=6),
       st.booleans(), st.sampled_from([0, 16, 40]))
def test_glove_rules_differential(lines, bom, block):
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(
        w + sep + sep.join(nums) + eol for w, nums, sep, eol in lines)
    ref = ref_glove(data)
    if ref[0] == "error":
        with pytest.raises(ValueError) as ei:
            _core_load(data, fmt="glove", block=block)
        if ref[1]:
            assert f"line {ref[1]}:" in str(ei.value), (data, str(ei.value))
    else:
        words, vecs = _core_load(data, fmt="glove", block=block)
        assert words == ref[0]
        assert vecs.tobytes() == ref[1].tobytes()
