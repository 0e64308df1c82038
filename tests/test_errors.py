"""Error catalogue for the core ops (DESIGN.md, "Errors").

Each case is (name, make, exception type, message regex), OpInfo style: ``make()``
builds fresh arguments and returns ``(callable, args, kwargs)``.  One parametrised test
runs every case and asserts the exception type, the message, and that every array
argument (and, for memory maps, the file behind it) is byte-identical afterwards: a
failed call writes nothing.

Then the ops' other error tests (messages, positions, every reader of ids) and the
layers' and optimizers' cases, each also checking that nothing was written.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastembed as fe
from fastembed import ops

I64_MAX = int(np.iinfo(np.int64).max)
I64_MIN = int(np.iinfo(np.int64).min)
ROWS, DIM = 6, 3


def table(dtype=np.float32, rows=ROWS, dim=DIM):
    return (np.arange(rows * dim).reshape(rows, dim) / 7 + 1).astype(dtype)


def vals(n, dtype=np.float32, dim=DIM):
    return np.full((n, dim), 0.5, dtype=dtype)


def readonly(a):
    a.flags.writeable = False
    return a


def memmap_r(tmp_path, arr):
    path = tmp_path / "table.npy"
    np.save(path, arr)
    return np.load(path, mmap_mode="r"), path


def snapshot(*arrays):
    return [np.array(a, copy=True).tobytes() for a in arrays]


def unaligned(rows=ROWS, dim=DIM):
    buf = np.zeros(rows * dim * 4 + 1, dtype=np.uint8)
    a = np.frombuffer(buf.data, dtype=np.float32, count=rows * dim, offset=1).reshape(rows, dim)
    return a


# -- the catalogue -------------------------------------------------------------------------
# make(tmp_path) -> (fn, args, kwargs)

BAD_IDS = [
    ("id_eq_rows", [0, ROWS], IndexError, rf"ids\[1\] = {ROWS} is out of range.*{ROWS} rows"),
    ("id_huge", [3, 10**12], IndexError, r"ids\[1\] = 1000000000000 is out of range"),
    ("id_neg1", [-1], IndexError, r"ids\[0\] = -1 is out of range"),
    ("id_int64_max", np.array([1, I64_MAX]), IndexError, rf"ids\[1\] = {I64_MAX}"),
    ("id_int64_min", np.array([I64_MIN, 0]), IndexError, rf"ids\[0\] = {I64_MIN}"),
    ("id_2pow31", np.array([2**31]), IndexError, r"ids\[0\] = 2147483648"),
    ("id_int32_min", np.array([0, -2**31], np.int32), IndexError, r"ids\[1\] = -2147483648"),
    ("id_2d_pos", np.array([[0, 1], [2, 99]]), IndexError, r"ids\[1, 1\] = 99"),
    ("id_uint64_big", np.array([1, 2**64 - 1], np.uint64), IndexError,
     r"ids\[1\] = 18446744073709551615.*int64"),
    ("id_uint64_2pow63", np.array([2**63], np.uint64), IndexError, r"9223372036854775808"),
    ("id_uint8_oob", np.array([200], np.uint8), IndexError, r"ids\[0\] = 200"),
    ("id_int16_neg", np.array([-3], np.int16), IndexError, r"ids\[0\] = -3"),
    ("id_bigendian_oob", np.array([1, 7], ">i8"), IndexError, r"ids\[1\] = 7"),
    ("id_last_of_many", np.r_[np.arange(300_000) % ROWS, ROWS], IndexError,
     r"ids\[300000\] = 6"),
]

BAD_ID_TYPES = [
    ("ids_bool", np.array([True, False]), TypeError, r"bool"),
    ("ids_float", np.array([1.0, 2.0]), TypeError, r"float64"),
    ("ids_float32", np.array([1.0], np.float32), TypeError, r"float32"),
    ("ids_float_list", [1.0], TypeError, r"float"),
    ("ids_str_array", np.array(["a", "b"]), TypeError, r"<U1"),
    ("ids_str", "abc", TypeError, r"str"),
    ("ids_bytes", b"\x01", TypeError, r"bytes"),
    ("ids_object", np.array([1, 2], dtype=object), TypeError, r"object"),
    ("ids_complex", np.array([1 + 0j]), TypeError, r"complex"),
    ("ids_datetime", np.array(["2020-01-01"], "datetime64[D]"), TypeError, r"datetime64"),
]

# Id arrays that cannot be read as an array at all.
BAD_ID_SHAPES = [
    ("ids_ragged", [[0, 1], [2]], ValueError, r"ids"),
]


def _gather_cases():
    cases = []
    for name, ids, exc, rx in BAD_IDS + BAD_ID_TYPES + BAD_ID_SHAPES:
        cases.append((f"gather-{name}", lambda tp, ids=ids: (ops.gather, (table(), ids), {}),
                      exc, rx))
        # With out= given the out array must be untouched too.
        if exc is IndexError and not isinstance(ids, list):
            shape = np.shape(ids) + (DIM,)
            cases.append((f"gather-out-{name}", lambda tp, ids=ids, shape=shape: (
                ops.gather, (table(), ids), {"out": np.full(shape, -3.0, np.float32)}),
                exc, rx))
    cases += [
        ("gather-empty_table", lambda tp: (ops.gather, (np.zeros((0, 3), np.float32), [0]), {}),
         IndexError, r"ids\[0\] = 0 .*empty"),
        ("gather-dim0_still_checked", lambda tp: (ops.gather, (np.zeros((4, 0), np.float32),
                                                               [1, 4]), {}),
         IndexError, r"ids\[1\] = 4"),
        ("gather-table_int", lambda tp: (ops.gather, (table(np.int32), [0]), {}),
         TypeError, r"table.*float32 or float64.*int32"),
        ("gather-table_int64", lambda tp: (ops.gather, (table(np.int64), [0]), {}),
         TypeError, r"int64"),
        # float16 tables are supported (issue 14); other 16-bit dtypes are not.
        ("gather-table_i16", lambda tp: (ops.gather, (table(np.int16), [0]), {}),
         TypeError, r"int16"),
        ("gather-table_bool", lambda tp: (ops.gather, (np.ones((3, 2), bool), [0]), {}),
         TypeError, r"bool"),
        ("gather-table_list", lambda tp: (ops.gather, ([[1.0, 2.0]], [0]), {}),
         TypeError, r"table must be a numpy array.*list"),
        ("gather-table_1d", lambda tp: (ops.gather, (np.ones(4, np.float32), [0]), {}),
         ValueError, r"2-D.*\(4,\)"),
        ("gather-table_3d", lambda tp: (ops.gather, (np.ones((2, 2, 2), np.float32), [0]), {}),
         ValueError, r"2-D"),
        ("gather-table_col_strided", lambda tp: (ops.gather, (table(dim=6)[:, ::2], [0]), {}),
         ValueError, r"contiguous"),
        ("gather-table_fortran", lambda tp: (ops.gather, (np.asfortranarray(table()), [0]), {}),
         ValueError, r"contiguous"),
        ("gather-table_unaligned", lambda tp: (ops.gather, (unaligned(), [0]), {}),
         ValueError, r"aligned"),
        ("gather-out_dtype", lambda tp: (ops.gather, (table(), [1]),
                                         {"out": np.zeros((1, DIM), np.float64)}),
         TypeError, r"out must have the table's dtype float32, got float64"),
        ("gather-out_int", lambda tp: (ops.gather, (table(), [1]),
                                       {"out": np.zeros((1, DIM), np.int32)}),
         TypeError, r"out.*int32"),
        ("gather-out_shape", lambda tp: (ops.gather, (table(), [1]),
                                         {"out": np.zeros((2, DIM), np.float32)}),
         ValueError, r"out must have shape.*\(1, 3\).*\(2, 3\)"),
        ("gather-out_flat", lambda tp: (ops.gather, (table(), [1]),
                                        {"out": np.zeros(DIM, np.float32)}),
         ValueError, r"out must have shape"),
        ("gather-out_readonly", lambda tp: (ops.gather, (table(), [1]),
                                            {"out": readonly(np.zeros((1, DIM), np.float32))}),
         ValueError, r"read-only"),
        ("gather-out_memmap_r", lambda tp: (ops.gather, (table(), [1]),
                                            {"out": memmap_r(tp, np.zeros((1, DIM),
                                                                          np.float32))[0]}),
         ValueError, r"read-only"),
        ("gather-out_noncontig", lambda tp: (ops.gather, (table(), [1, 2]),
                                             {"out": np.zeros((2, 2 * DIM), np.float32)[:, ::2]}),
         ValueError, r"C-contiguous"),
        ("gather-out_fortran", lambda tp: (ops.gather, (table(), np.array([[1, 2], [3, 4]])),
                                           {"out": np.zeros((2, 2, DIM), np.float32, order="F")}),
         ValueError, r"C-contiguous"),
        ("gather-out_list", lambda tp: (ops.gather, (table(), [1]), {"out": [[0.0] * DIM]}),
         TypeError, r"out must be a numpy array"),
        ("gather-out_is_table", lambda tp: (lambda t: (ops.gather, (t, [1]),
                                                       {"out": t[2:3]}))(table()),
         ValueError, r"overlap"),
    ]
    return cases


def _nshape(name, ids):
    """The shape of ids, for building matching values (a guess for unreadable ids)."""
    if name == "ids_ragged":
        return (2,)
    if isinstance(ids, (str, bytes)):
        return (1,)
    return np.shape(ids)


def _scatter_cases():
    cases = []
    for name, ids, exc, rx in BAD_IDS + BAD_ID_TYPES + BAD_ID_SHAPES:
        n = _nshape(name, ids)
        cases.append((f"scatter-{name}", lambda tp, ids=ids, n=n: (
            ops.scatter_add, (table(), ids, np.full(n + (DIM,), 0.5, np.float32)), {}),
            exc, rx))
    cases += [
        ("scatter-target_int", lambda tp: (ops.scatter_add, (table(np.int32), [0], vals(1)), {}),
         TypeError, r"target.*int32"),
        # A float16 target takes float16 values only.
        ("scatter-target_f16", lambda tp: (ops.scatter_add, (table(np.float16), [0], vals(1)),
                                           {}),
         TypeError, r"values must have the target's dtype float16, got float32"),
        ("scatter-target_bigendian", lambda tp: (ops.scatter_add,
                                                 (table().astype(">f4"), [0], vals(1)), {}),
         TypeError, r">f4"),
        ("scatter-target_list", lambda tp: (ops.scatter_add, ([[1.0] * DIM], [0], vals(1)), {}),
         TypeError, r"target must be a numpy array"),
        ("scatter-target_1d", lambda tp: (ops.scatter_add, (np.ones(3, np.float32), [0],
                                                            vals(1)), {}),
         ValueError, r"2-D"),
        ("scatter-values_f64", lambda tp: (ops.scatter_add, (table(), [0], vals(1, np.float64)),
                                           {}),
         TypeError, r"values must have the target's dtype float32, got float64"),
        ("scatter-values_f32_into_f64", lambda tp: (ops.scatter_add,
                                                    (table(np.float64), [0], vals(1)), {}),
         TypeError, r"float64, got float32"),
        ("scatter-values_int", lambda tp: (ops.scatter_add,
                                           (table(), [0], np.ones((1, DIM), np.int32)), {}),
         TypeError, r"int32"),
        ("scatter-values_str", lambda tp: (ops.scatter_add, (table(), [0], "abc"), {}),
         TypeError, r"values"),
        ("scatter-values_no_broadcast", lambda tp: (ops.scatter_add,
                                                    (table(), [0, 1], vals(1)), {}),
         ValueError, r"values must have shape.*\(2, 3\).*\(1, 3\)"),
        ("scatter-values_flat", lambda tp: (ops.scatter_add,
                                            (table(), [0], np.ones(DIM, np.float32)), {}),
         ValueError, r"\(1, 3\).*\(3,\)"),
        ("scatter-values_dim", lambda tp: (ops.scatter_add,
                                           (table(), [0], np.ones((1, DIM + 1), np.float32)), {}),
         ValueError, r"values must have shape"),
        ("scatter-values_2d_ids_flat_values", lambda tp: (
            ops.scatter_add, (table(), np.array([[0, 1]]), vals(2)), {}),
         ValueError, r"\(1, 2, 3\)"),
        ("scatter-values_overlap", lambda tp: (lambda t: (ops.scatter_add, (t, [0], t[1:2]),
                                                          {}))(table()),
         ValueError, r"overlap"),
        ("scatter-target_readonly", lambda tp: (ops.scatter_add,
                                                (readonly(table()), [0], vals(1)), {}),
         ValueError, r"read-only"),
        ("scatter-target_memmap_r", lambda tp: (ops.scatter_add,
                                                (memmap_r(tp, table())[0], [0], vals(1)), {}),
         ValueError, r"read-only"),
        ("scatter-target_row_strided", lambda tp: (ops.scatter_add,
                                                   (table(rows=12)[::2], [0], vals(1)), {}),
         ValueError, r"C-contiguous"),
        ("scatter-target_col_strided", lambda tp: (ops.scatter_add,
                                                   (table(dim=6)[:, ::2], [0], vals(1)), {}),
         ValueError, r"C-contiguous"),
        ("scatter-target_fortran", lambda tp: (ops.scatter_add,
                                               (np.asfortranarray(table()), [0], vals(1)), {}),
         ValueError, r"C-contiguous"),
        ("scatter-target_transposed", lambda tp: (ops.scatter_add,
                                                  (table(rows=DIM, dim=ROWS).T, [0], vals(1)),
                                                  {}),
         ValueError, r"C-contiguous"),
        ("scatter-target_unaligned", lambda tp: (ops.scatter_add, (unaligned(), [0], vals(1)),
                                                 {}),
         ValueError, r"aligned"),
        ("scatter-empty_target", lambda tp: (ops.scatter_add,
                                             (np.zeros((0, DIM), np.float32), [0], vals(1)), {}),
         IndexError, r"empty"),
        ("scatter-scale_str", lambda tp: (ops.scatter_add, (table(), [0], vals(1)),
                                          {"scale": "x"}),
         TypeError, r"scale|incompatible"),
    ]
    return cases


def _coalesce_cases():
    v2 = lambda: vals(2)  # noqa: E731
    cases = [
        ("coalesce-neg", lambda tp: (ops.coalesce, ([1, -1], v2()), {}),
         IndexError, r"ids\[1\] = -1"),
        ("coalesce-int64_min", lambda tp: (ops.coalesce, (np.array([I64_MIN, 0]), v2()), {}),
         IndexError, rf"ids\[0\] = {I64_MIN}"),
        ("coalesce-uint64_big", lambda tp: (ops.coalesce,
                                            (np.array([0, 2**64 - 1], np.uint64), v2()), {}),
         IndexError, r"18446744073709551615"),
        ("coalesce-values_rows", lambda tp: (ops.coalesce, ([1, 1], vals(3)), {}),
         ValueError, r"\(2, 3\).*\(3, 3\)"),
        ("coalesce-values_flat", lambda tp: (ops.coalesce, ([1, 1], np.ones(2, np.float32)), {}),
         ValueError, r"values must have shape"),
        ("coalesce-values_int", lambda tp: (ops.coalesce,
                                            ([1, 1], np.ones((2, DIM), np.int32)), {}),
         TypeError, r"int32"),
        ("coalesce-values_list", lambda tp: (ops.coalesce, ([1, 1], [[1.0], [2.0]]), {}),
         TypeError, r"list"),
    ]
    for name, ids, exc, rx in BAD_ID_TYPES + BAD_ID_SHAPES:
        n = _nshape(name, ids)
        cases.append((f"coalesce-{name}", lambda tp, ids=ids, n=n: (
            ops.coalesce, (ids, np.ones(n + (DIM,), np.float32)), {}), exc, rx))
    return cases


def _bag_cases():
    eb = ops.embedding_bag
    ids1 = lambda: np.array([0, 1, 2, 3])  # noqa: E731
    cases = []
    for name, ids, exc, rx in BAD_IDS + BAD_ID_TYPES:
        if name == "id_last_of_many":
            continue
        arr_ids = np.asarray(ids) if not isinstance(ids, (str, bytes)) else ids
        if isinstance(arr_ids, np.ndarray) and arr_ids.ndim == 1:
            cases.append((f"bag-offsets-{name}", lambda tp, ids=ids: (
                eb, (table(), ids), {"offsets": np.array([0])}), exc, rx))
            # 2-D ids: the position is named in two dimensions.
            cases.append((f"bag-2d-{name}", lambda tp, ids=ids: (
                eb, (table(), np.asarray(ids).reshape(1, -1)), {}), exc,
                r"ids.*out of range" if exc is IndexError else rx))
    cases += [
        ("bag-offsets0_not0", lambda tp: (eb, (table(), ids1()), {"offsets": np.array([1, 2])}),
         ValueError, r"offsets"),
        ("bag-offsets_decreasing", lambda tp: (eb, (table(), ids1()),
                                               {"offsets": np.array([0, 3, 1])}),
         ValueError, r"offsets"),
        ("bag-offsets_past_end", lambda tp: (eb, (table(), ids1()),
                                             {"offsets": np.array([0, 5])}),
         ValueError, r"offsets"),
        ("bag-offsets_middle_past_end", lambda tp: (eb, (table(), ids1()),
                                                    {"offsets": np.array([0, 9, 4])}),
         ValueError, r"offsets"),
        ("bag-offsets_negative", lambda tp: (eb, (table(), ids1()),
                                             {"offsets": np.array([0, -1])}),
         ValueError, r"offsets"),
        ("bag-offsets_int64_min", lambda tp: (eb, (table(), ids1()),
                                              {"offsets": np.array([0, I64_MIN])}),
         ValueError, r"offsets"),
        ("bag-offsets_2d", lambda tp: (eb, (table(), ids1()),
                                       {"offsets": np.array([[0, 2]])}),
         ValueError, r"offsets"),
        ("bag-offsets_float", lambda tp: (eb, (table(), ids1()),
                                          {"offsets": np.array([0.0, 2.0])}),
         TypeError, r"offsets"),
        ("bag-offsets_bool", lambda tp: (eb, (table(), ids1()),
                                         {"offsets": np.array([False, True])}),
         TypeError, r"offsets"),
        ("bag-offsets_with_2d_ids", lambda tp: (eb, (table(), np.array([[0, 1], [2, 3]])),
                                                {"offsets": np.array([0, 1])}),
         ValueError, r"1-D|offsets"),
        ("bag-1d_ids_no_offsets", lambda tp: (eb, (table(), ids1()), {}),
         ValueError, r"2-D|offsets"),
        ("bag-mode_bad", lambda tp: (eb, (table(), np.array([[0, 1]])), {"mode": "median"}),
         ValueError, r"mode"),
        ("bag-table_int", lambda tp: (eb, (table(np.int32), np.array([[0, 1]])), {}),
         TypeError, r"int32"),
        ("bag-table_1d", lambda tp: (eb, (np.ones(3, np.float32), np.array([[0, 1]])), {}),
         ValueError, r"2-D"),
        ("bag-psw_shape", lambda tp: (eb, (table(), np.array([[0, 1]])),
                                      {"per_sample_weights": np.ones(3, np.float32)}),
         ValueError, r"per_sample_weights"),
        ("bag-psw_shape_offsets", lambda tp: (eb, (table(), ids1()),
                                              {"offsets": np.array([0, 2]),
                                               "per_sample_weights": np.ones(3, np.float32)}),
         ValueError, r"per_sample_weights"),
        ("bag-psw_dtype", lambda tp: (eb, (table(), np.array([[0, 1]])),
                                      {"per_sample_weights": np.ones((1, 2), np.int32)}),
         TypeError, r"per_sample_weights|int32"),
        ("bag-psw_max", lambda tp: (eb, (table(), np.array([[0, 1]])),
                                    {"mode": "max",
                                     "per_sample_weights": np.ones((1, 2), np.float32)}),
         ValueError, r"max"),
    ]
    return cases


CASES = _gather_cases() + _scatter_cases() + _coalesce_cases()
BAG_CASES = _bag_cases()


# -- snapshot machinery --------------------------------------------------------------------

def _arrays(args, kwargs):
    found = []
    for v in list(args) + list(kwargs.values()):
        if isinstance(v, np.ndarray):
            found.append(v)
    return found


def _snapshot(arrays, tmp_path):
    snap = [(a, a.tobytes(), a.dtype, a.shape, a.flags.writeable) for a in arrays]
    files = {p: p.read_bytes() for p in tmp_path.glob("*.npy")}
    return snap, files


def _check_unchanged(snapshot):
    snap, files = snapshot
    for a, before, dtype, shape, writeable in snap:
        assert a.dtype == dtype and a.shape == shape and a.flags.writeable == writeable
        assert a.tobytes() == before, "an array argument was modified by a failed call"
    for p, before in files.items():
        assert p.read_bytes() == before, f"{p.name} was modified by a failed call"


def _run_case(make, exc, rx, tmp_path):
    fn, args, kwargs = make(tmp_path)
    snapshot = _snapshot(_arrays(args, kwargs), tmp_path)
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert re.search(rx, str(info.value)), f"{exc.__name__} message {str(info.value)!r} " \
                                           f"does not match {rx!r}"
    _check_unchanged(snapshot)


@pytest.mark.parametrize("name,make,exc,rx", CASES, ids=[c[0] for c in CASES])
def test_error_catalogue(name, make, exc, rx, tmp_path):
    _run_case(make, exc, rx, tmp_path)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("name,make,exc,rx",
                         [c for c in CASES if "last_of_many" in c[0]],
                         ids=[c[0] for c in CASES if "last_of_many" in c[0]])
def test_bad_last_id_with_threads(name, make, exc, rx, nthreads, threads, tmp_path):
    # The big case takes the parallel validation path: still nothing written.
    threads(nthreads)
    _run_case(make, exc, rx, tmp_path)


@pytest.mark.parametrize("name,make,exc,rx", BAG_CASES, ids=[c[0] for c in BAG_CASES])
def test_error_catalogue_embedding_bag(name, make, exc, rx, tmp_path):
    _run_case(make, exc, rx, tmp_path)


# -- injected bad id at a random position --------------------------------------------------

@given(n=st.integers(1, 40), pos=st.data(), bad=st.one_of(
    st.integers(ROWS, I64_MAX), st.integers(I64_MIN, -1)),
    id_dtype=st.sampled_from([np.int32, np.int64]), op=st.sampled_from(["gather", "scatter"]))
def test_injected_bad_id(n, pos, bad, id_dtype, op):
    if id_dtype is np.int32:
        bad = int(np.clip(bad, -2**31, 2**31 - 1))
        if 0 <= bad < ROWS:
            bad = ROWS
    p = pos.draw(st.integers(0, n - 1))
    ids = (np.arange(n) % ROWS).astype(id_dtype)
    ids[p] = bad
    t = table()
    t0 = t.tobytes()
    ids0 = ids.tobytes()
    with pytest.raises(IndexError) as info:
        if op == "gather":
            ops.gather(t, ids, out=np.zeros((n, DIM), np.float32))
        else:
            ops.scatter_add(t, ids, vals(n))
    msg = str(info.value)
    assert f"ids[{p}] = {bad} " in msg
    assert t.tobytes() == t0 and ids.tobytes() == ids0


# -- layers and optimizers -----------------------------------------------------------------

def _embedding():
    return fe.Embedding(ROWS, DIM, seed=0)


@pytest.mark.parametrize("ids,exc,rx", [
    ([[0, ROWS]], IndexError, rf"{ROWS}"),
    ([[-1, 0]], IndexError, r"-1"),
    (np.array([[0, I64_MIN]]), IndexError, rf"{I64_MIN}"),
    (np.array([[0, 2**64 - 1]], np.uint64), IndexError, r"18446744073709551615"),
    (np.array([[True]]), TypeError, r"bool"),
    (np.array([["a"]]), TypeError, r"U1|str"),
    (np.array([[0.5]]), ValueError, r"whole"),
    (np.array([[np.nan]]), ValueError, r"whole|nan"),
])
def test_embedding_call_errors(ids, exc, rx):
    emb = _embedding()
    w0 = emb.embeddings.tobytes()
    ids0 = np.asarray(ids).tobytes()
    with pytest.raises(exc, match=rx):
        emb(ids)
    assert emb.embeddings.tobytes() == w0
    assert np.asarray(ids).tobytes() == ids0


@pytest.mark.parametrize("opt_name", ["SGD", "Adagrad", "Adam"])
@pytest.mark.parametrize("bad", ["grad_shape", "grad_dtype", "sparse_bad_index",
                                 "sparse_dense_shape", "sparse_neg_index", "second_pair_bad"])
def test_optimizer_bad_grads_change_nothing(opt_name, bad):
    from fastembed import optimizers as O

    emb = _embedding()
    opt = getattr(O, opt_name)(learning_rate=0.1)
    good_grad = fe.SparseGradient(np.array([1, 2]), np.ones((2, DIM), np.float32), (ROWS, DIM))
    opt.apply_gradients([(good_grad, emb)])  # creates the state, so it can be compared
    w = np.ones((ROWS, DIM), np.float32)
    state0 = _state_bytes(opt)
    e0 = emb.embeddings.tobytes()
    w0 = w.tobytes()
    if bad == "grad_shape":
        pairs, exc = [(np.ones((ROWS + 1, DIM), np.float32), emb)], ValueError
    elif bad == "grad_dtype":
        pairs, exc = [(np.ones((ROWS, DIM), np.int32), emb)], TypeError
    elif bad in ("sparse_bad_index", "sparse_neg_index"):
        # SparseGradient checks its indices when built; one whose indices were changed
        # afterwards must still be refused by apply_gradients.
        wrong = ROWS if bad == "sparse_bad_index" else -1
        with pytest.raises(IndexError):
            fe.SparseGradient(np.array([0, wrong]), np.ones((2, DIM), np.float32), (ROWS, DIM))
        g = fe.SparseGradient(np.array([0, 1]), np.ones((2, DIM), np.float32), (ROWS, DIM))
        g.indices[1] = wrong
        pairs, exc = [(g, emb)], IndexError
    elif bad == "sparse_dense_shape":
        pairs, exc = [(fe.SparseGradient(np.array([0]), np.ones((1, DIM), np.float32),
                                         (ROWS + 1, DIM)), emb)], ValueError
    else:  # a good pair followed by a bad one: the good one must not be applied either
        g = fe.SparseGradient(np.array([0]), np.ones((1, DIM), np.float32), (ROWS, DIM))
        g.indices[0] = ROWS
        pairs, exc = [(np.ones((ROWS, DIM), np.float32), w), (g, emb)], IndexError
    with pytest.raises(exc):
        opt.apply_gradients(pairs)
    assert emb.embeddings.tobytes() == e0
    assert w.tobytes() == w0
    assert _state_bytes(opt) == state0


def _state_bytes(opt):
    state = opt.get_state()
    out = []

    def walk(x):
        if isinstance(x, np.ndarray):
            out.append(x.tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                out.append(repr(k))
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            out.append(repr(x))

    walk(state)
    return out


def test_embedding_shape_errors_change_nothing():
    emb = _embedding()
    emb2 = fe.Embedding(ROWS, DIM, input_length=3, seed=0)
    w0 = emb2.embeddings.tobytes()
    with pytest.raises(ValueError, match=r"3"):
        emb2(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError):
        emb.set_weights([np.zeros((ROWS + 1, DIM), np.float32)])
    with pytest.raises(ValueError):
        emb.set_weights([np.zeros((ROWS, DIM + 1), np.float32)])
    assert emb2.embeddings.tobytes() == w0


@pytest.mark.parametrize("opt_name", ["SGD", "Adagrad", "Adam"])
def test_readonly_memmapped_embedding_refuses_updates(tmp_path, opt_name):
    from fastembed import optimizers as O

    emb = _embedding()
    emb.save(tmp_path / "emb")
    files = {p: p.read_bytes() for p in (tmp_path / "emb").iterdir()}
    ro = fe.Embedding.load(tmp_path / "emb", mmap_mode="r")
    np.testing.assert_array_equal(ro(np.array([[1, 2]])), emb(np.array([[1, 2]])))
    opt = getattr(O, opt_name)(learning_rate=0.1)
    g = fe.SparseGradient(np.array([1]), np.ones((1, DIM), np.float32), (ROWS, DIM))
    with pytest.raises(ValueError, match=r"read-only|mmap|memory-map|writ"):
        opt.apply_gradients([(g, ro)])
    with pytest.raises(ValueError):
        fe.ops.scatter_add(ro.embeddings, np.array([1]), np.ones((1, DIM), np.float32))
    for p, before in files.items():
        assert p.read_bytes() == before
    assert opt.get_step(ro) == 0


# -- ops: messages, positions and the other arguments, beyond the catalogue's cases ----------

def test_gather_errors_name_id_and_position():
    table = np.zeros((5, 3), np.float32)
    with pytest.raises(IndexError, match=r"ids\[1, 2\] = 5 is out of range for a table of 5 rows"):
        ops.gather(table, [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(IndexError, match=r"ids\[0\] = -1 is out of range"):
        ops.gather(table, [-1])
    with pytest.raises(IndexError, match=r"-9223372036854775808"):
        ops.gather(table, np.array([0, np.iinfo(np.int64).min]))
    with pytest.raises(IndexError, match="18446744073709551615"):
        ops.gather(table, np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(IndexError, match=r"ids\[1\] = 1180591620717411303424 is out of range"):
        ops.gather(table, [0, 2**70])  # Python ints beyond int64: out of range, not a dtype
    with pytest.raises(IndexError, match=r"ids = 9 is out of range"):
        ops.gather(table, 9)
    with pytest.raises(IndexError, match="table is empty"):
        ops.gather(np.zeros((0, 3), np.float32), [0])
    with pytest.raises(IndexError):  # dim 0: ids are still checked
        ops.gather(np.zeros((4, 0), np.float32), [4])


@pytest.mark.parametrize("bad_ids,exc", [
    (np.array([1.0, 2.0]), TypeError),
    (np.array([True, False]), TypeError),
    (np.array(["1"]), TypeError),
    (np.array([1, None], dtype=object), TypeError),
    ("12", TypeError),
])
def test_gather_refuses_bad_id_dtypes(bad_ids, exc):
    table = np.zeros((5, 3), np.float32)
    with pytest.raises(exc, match="ids must be integers"):
        ops.gather(table, bad_ids)


def test_gather_table_and_out_errors():
    ids = np.array([0, 1])
    with pytest.raises(TypeError, match="float32 or float64.*int64"):
        ops.gather(np.zeros((3, 2), np.int64), ids)
    with pytest.raises(TypeError, match="numpy array"):
        ops.gather([[0.0, 1.0]], ids)
    with pytest.raises(ValueError, match=r"2-D.*\(6,\)"):
        ops.gather(np.zeros(6, np.float32), ids)
    with pytest.raises(ValueError, match="contiguous"):
        ops.gather(np.zeros((4, 3), np.float32, order="F"), ids)
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    cases = [
        (np.zeros((2, 2), np.float64), TypeError, "dtype float32"),
        (np.zeros((2, 3), np.float32), ValueError, r"shape ids.shape \+ \(dim,\) = \(2, 2\)"),
        (np.zeros((2, 4), np.float32)[:, ::2], ValueError, "C-contiguous"),
        (np.zeros((2, 2), np.float32).T.copy().T, ValueError, "C-contiguous"),
    ]
    for out, exc, msg in cases:
        before = out.tobytes()
        with pytest.raises(exc, match=msg):
            ops.gather(table, ids, out=out)
        assert out.tobytes() == before
    ro = np.zeros((2, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.gather(table, ids, out=ro)
    # A bad id leaves a given `out` untouched.
    out = np.full((3, 2), 5, np.float32)
    with pytest.raises(IndexError, match=r"ids\[2\] = 3"):
        ops.gather(table, [0, 1, 3], out=out)
    assert (out == 5).all()


def test_scatter_add_errors_write_nothing():
    rng = np.random.default_rng(6)
    target = rng.standard_normal((10, 4)).astype(np.float32)
    ids = np.arange(10)
    ids_bad_last = np.concatenate([np.arange(10), [10]])
    vals = rng.standard_normal((11, 4)).astype(np.float32)
    before = snapshot(target, ids_bad_last, vals)
    with pytest.raises(IndexError, match=r"ids\[10\] = 10 is out of range for a table of 10 rows"):
        ops.scatter_add(target, ids_bad_last, vals)
    assert snapshot(target, ids_bad_last, vals) == before
    with pytest.raises(IndexError, match=r"ids\[3\] = -2"):
        ops.scatter_add(target, [0, 1, 2, -2], vals[:4])
    with pytest.raises(TypeError, match="values must have the target's dtype float32, got float64"):
        ops.scatter_add(target, ids, vals[:10].astype(np.float64))
    with pytest.raises(ValueError, match=r"values must have shape ids.shape \+ \(dim,\) = \(10, 4\)"):
        ops.scatter_add(target, ids, vals[:1])  # no broadcasting
    with pytest.raises(ValueError, match=r"\(2, 5, 4\)"):
        ops.scatter_add(target, ids.reshape(2, 5), vals[:10])  # no reshaping
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.scatter_add(target.astype(np.int32), ids, vals[:10])
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.scatter_add(np.asfortranarray(target), ids, vals[:10])
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.scatter_add(np.zeros((20, 4), np.float32)[::2], ids, vals[:10])
    ro = target.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.scatter_add(ro, ids, vals[:10])
    with pytest.raises(TypeError, match="ids must be integers"):
        ops.scatter_add(target, ids.astype(np.float32), vals[:10])
    with pytest.raises(ValueError, match="overlap"):
        ops.scatter_add(target, [0, 1], target[2:4])
    assert snapshot(target) == before[:1]


def test_coalesce_errors():
    with pytest.raises(IndexError, match=r"ids\[1\] = -3 is negative"):
        ops.coalesce([1, -3], np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.coalesce([1, 2], np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="shape"):
        ops.coalesce([1, 2], np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="ids must be integers"):
        ops.coalesce(np.array([1.0]), np.zeros((1, 2), np.float32))


def test_empty_table_ids_are_index_errors_in_every_reader():
    # Shared layout check: a (0, D) table has no rows to be strided, only no valid ids.
    empty = np.zeros((0, 3), np.float32)
    with pytest.raises(IndexError, match="table is empty"):
        ops.embedding_bag(empty, np.zeros((1, 2), np.int64))
    with pytest.raises(IndexError, match="table is empty"):
        ops.gather(empty, [0])
