"""fe.load_vectors on malformed input: the exception, the file and line it names, and no
allocation from the counts a header claims (test_reliability_vectors.py: interrupts,
truncation, FIFOs)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastembed as fe

from vector_files import rand_vecs, write_binary, write_text


def _bin(words_vecs, header="2 3\n"):
    out = [header.encode()]
    for w, v in words_vecs:
        out.append(w + b" " + np.asarray(v, "<f4").tobytes())
    return b"".join(out)


TEXT_ERRORS = [
    ("ragged_short", b"a 1 2 3\nb 1 2\n", "line 2", "expected 3 values after the word, found 2"),
    ("ragged_long", b"a 1 2 3\nb 1 2 3 4\n", "line 2", "expected 3 values after the word, found 4"),
    ("bad_number", b"a 1 2 3\nb 1.0abc 2 3\n", "line 2", "1.0abc"),
    ("nan", b"a 1 2 3\nb 1 nan 3\n", "line 2", "not finite"),
    ("inf", b"a 1 2 3\n\nb 1 2 -inf\n", "line 3", "not finite"),
    ("overflow64", b"a 1 2 3\nb 1 2 1e999\n", "line 2", "not finite"),
    ("overflow32", b"a 1 2 3\nb 1e39 2 3\n", "line 2", "not finite"),
    ("no_values", b"lonely\n", "line 1", "no values"),
    ("utf8", b"a 1 2 3\nb\xff 1 2 3\n", "line 2", "UTF-8"),
    ("utf8_surrogate", b"a 1 2 3\n\xed\xa0\x80 1 2 3\n", "line 2", "UTF-8"),
    ("header_too_many", b"5 3\na 1 2 3\nb 1 2 3\n", "line 1", "announces 5 vectors"),
    ("header_dim_lies", b"2 2\na 1 2 3\nb 1 2 3\n", "line 2", "expected 2 values"),
    ("header_dim_small", b"2 4\na 1.5 2.5 3.5\nb 1.5 2.5 3.5\n", "line 2", "expected 4 values"),
    ("header_impossible", b"2 4\na 1 2 3\nb 1 2 3\n", "line 1",
     "announces 2 vectors of 4 dims, which cannot fit in the 16 bytes"),
    ("empty", b"", "", "empty"),
    ("blank_only", b"\n \r\n", "", "empty"),
]


@pytest.mark.parametrize("name,data,where,what", TEXT_ERRORS, ids=[t[0] for t in TEXT_ERRORS])
def test_text_errors(tmp_path, name, data, where, what):
    p = tmp_path / f"{name}.txt"
    p.write_bytes(data)
    with pytest.raises(ValueError) as ei:
        fe.load_vectors(p)
    msg = str(ei.value)
    assert str(p) in msg and where in msg and what in msg, msg


def test_header_count_too_large_for_present_lines(tmp_path):
    # The size check cannot tell (long lines); the end of the file does.
    p = tmp_path / "v.vec"
    p.write_text("3 2\n" + "a" * 50 + " 1 2\nb 3 4\n")
    with pytest.raises(ValueError, match=r"v\.vec, line 1: the header announces 3 vectors, "
                                         r"but the file holds only 2"):
        fe.load_vectors(p)


@pytest.mark.parametrize("fmt", ["word2vec", "fasttext", "word2vec_binary"])
def test_missing_header(tmp_path, fmt):
    p = tmp_path / "v.txt"
    p.write_text("a 1 2 3\n")
    with pytest.raises(ValueError, match=r"v\.txt, line 1: expected a header line"):
        fe.load_vectors(p, format=fmt)


BIN_ERRORS = [
    ("truncated_vector", _bin([(b"ab", [1, 2, 3]), (b"cd", [4, 5, 6])])[:-5], "byte offset 19",
     "truncated"),
    ("no_space", _bin([(b"ab", [1, 2, 3])]) + b"\nwordwithoutspace", "byte offset 20",
     "truncated"),
    ("utf8", _bin([(b"ab", [1, 2, 3]), (b"c\xc3", [4, 5, 6])]), "byte offset 20", "UTF-8"),
    ("nan", _bin([(b"ab", [1, 2, 3]), (b"cd", [4, np.nan, 6])]), "byte offset 26", "not finite"),
    ("too_few", _bin([(b"ab", [1, 2, 3]), (b"cd", [4, 5, 6])], header="3 3\n") + b"x",
     "line 1", "announces 3 vectors"),
    ("header_huge", _bin([(b"ab", [1, 2, 3])], header="1000000000000 300\n"), "line 1",
     "announces 1000000000000 vectors of 300 dims"),
]


@pytest.mark.parametrize("name,data,where,what", BIN_ERRORS, ids=[t[0] for t in BIN_ERRORS])
def test_binary_errors(tmp_path, name, data, where, what):
    p = tmp_path / f"{name}.bin"
    p.write_bytes(data)
    with pytest.raises(ValueError) as ei:
        fe.load_vectors(p, format="word2vec_binary")
    msg = str(ei.value)
    assert str(p) in msg and where in msg and what in msg, msg


def test_binary_truncated_everywhere(tmp_path):
    """Every prefix of a valid binary file: either an error or the leading vectors."""
    words = ["ab", "c\u00e9", "d"]
    vecs = rand_vecs(3, 4)
    full = write_binary(tmp_path / "full.bin", words, vecs, newline=False).read_bytes()
    p = tmp_path / "cut.bin"
    for k in range(len(full)):
        p.write_bytes(full[:k])
        with pytest.raises(ValueError, match="cut.bin"):
            fe.load_vectors(p, format="word2vec_binary")
    p.write_bytes(full)
    assert fe.load_vectors(p).words == words


HUGE_HEADER_SCRIPT = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    import fastembed as fe
    try:
        fe.load_vectors(sys.argv[1], format=sys.argv[2])
    except ValueError as e:
        print("ValueError:", e)
    except MemoryError:
        print("MemoryError")
""")


@pytest.mark.parametrize("fmt,data", [
    ("auto", b"1000000000000 300\nthe " + b"0.5 " * 300 + b"\n"),
    ("word2vec", b"1000000000000 300\nthe " + b"0.5 " * 300 + b"\n"),
    ("word2vec_binary", b"1000000000000 300\nthe " + b"\0" * 1200),
    ("word2vec", b"2 1000000000000\nthe 1 2\n"),
    ("word2vec_binary", b"2 999999999999999999\nthe \0\0\0\0"),
])
def test_lying_header_does_not_allocate(tmp_path, fmt, data):
    p = tmp_path / "liar.vec"
    p.write_bytes(data)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", HUGE_HEADER_SCRIPT, str(p), fmt],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ValueError:"), r.stdout + r.stderr
    assert "liar.vec, line 1" in r.stdout and "announces" in r.stdout


def test_bad_arguments(tmp_path):
    p = write_text(tmp_path / "v.txt", ["a"], np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="format"):
        fe.load_vectors(p, format="csv")
    with pytest.raises(TypeError, match="dtype"):
        fe.load_vectors(p, dtype="int32")
    with pytest.raises(ValueError, match="limit"):
        fe.load_vectors(p, limit=-1)
    with pytest.raises(TypeError, match="limit"):
        fe.load_vectors(p, limit=1.5)
    with pytest.raises(FileNotFoundError):
        fe.load_vectors(tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError):
        fe.load_vectors(tmp_path)
