"""fastembed.ops.gather / scatter_add / coalesce against numpy and torch (their errors:
test_errors.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastembed as fe
from fastembed import ops

FLOATS = [np.float32, np.float64]
ID_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def zipf_ids(rng, n, rows, a=1.1):
    return (rng.zipf(a, size=n) - 1) % rows


def snapshot(*arrays):
    return [np.array(a, copy=True).tobytes() for a in arrays]


# ---------------------------------------------------------------------------- gather

@st.composite
def gather_case(draw):
    dtype = draw(st.sampled_from(FLOATS))
    rows = draw(st.integers(1, 40))
    dim = draw(st.sampled_from([0, 1, 2, 3, 8, 16, 17, 64, 130]))
    id_dtype = draw(st.sampled_from(ID_DTYPES))
    hi = min(rows - 1, int(np.iinfo(id_dtype).max))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    ids = draw(hnp.arrays(id_dtype, shape, elements=st.integers(0, hi)))
    table = np.arange(rows * dim, dtype=dtype).reshape(rows, dim) * 0.5 - 3
    return table, ids


@given(gather_case())
def test_gather_equals_numpy_take(case):
    table, ids = case
    got = ops.gather(table, ids)
    want = np.take(table, ids.astype(np.int64), axis=0)
    assert got.dtype == table.dtype and got.shape == ids.shape + (table.shape[1],)
    np.testing.assert_array_equal(got, want)


@given(gather_case(), st.booleans())
def test_gather_noncontiguous_ids_and_out(case, transpose):
    table, ids = case
    if transpose and ids.ndim >= 2:
        ids = ids.T  # Fortran-ordered view
    out = np.full(ids.shape + (table.shape[1],), 7, dtype=table.dtype)
    ret = ops.gather(table, ids, out=out)
    assert ret is out
    np.testing.assert_array_equal(out, np.take(table, ids.astype(np.int64), axis=0))


def test_gather_lists_scalars_and_empty():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(ops.gather(table, [[1, 2], [5, 0]]), table[[[1, 2], [5, 0]]])
    np.testing.assert_array_equal(ops.gather(table, 3), table[3])
    np.testing.assert_array_equal(ops.gather(table, np.int64(4)), table[4])
    assert ops.gather(table, []).shape == (0, 2)
    assert ops.gather(table, np.zeros((3, 0), np.int32)).shape == (3, 0, 2)


def test_gather_strided_rows_and_readonly_table():
    big = np.arange(200, dtype=np.float64).reshape(20, 10)
    view = big[::2, 1:5]  # rows 2x apart, inner dimension contiguous
    ids = np.array([0, 9, 3, 3])
    np.testing.assert_array_equal(ops.gather(view, ids), view[ids])
    ro = np.arange(10, dtype=np.float32).reshape(5, 2)
    ro.flags.writeable = False
    np.testing.assert_array_equal(ops.gather(ro, [4, 0]), ro[[4, 0]])


@pytest.mark.parametrize("n,dim", [(300_000, 8), (50_000, 64), (1_000, 130)])
def test_gather_large_parallel(n, dim, threads):
    rng = np.random.default_rng(1)
    table = rng.standard_normal((50_000, dim)).astype(np.float32)
    ids = rng.integers(0, 50_000, size=n)
    threads(2)
    np.testing.assert_array_equal(ops.gather(table, ids), table[ids])
    np.testing.assert_array_equal(ops.gather(table, ids.astype(np.int32)), table[ids])


def test_gather_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    table = rng.standard_normal((1000, 24)).astype(np.float32)
    ids = rng.integers(0, 1000, size=(50, 7))
    want = torch.nn.functional.embedding(torch.from_numpy(ids), torch.from_numpy(table)).numpy()
    np.testing.assert_array_equal(ops.gather(table, ids), want)


# ---------------------------------------------------------------------- scatter_add

@st.composite
def scatter_case(draw):
    dtype = draw(st.sampled_from(FLOATS))
    rows = draw(st.integers(1, 30))
    dim = draw(st.sampled_from([0, 1, 3, 8, 16, 33]))
    id_dtype = draw(st.sampled_from([np.int32, np.int64, np.uint8, np.int16]))
    hi = min(rows - 1, int(np.iinfo(id_dtype).max))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=12))
    ids = draw(hnp.arrays(id_dtype, shape, elements=st.integers(0, hi)))
    vals = draw(hnp.arrays(dtype, ids.shape + (dim,),
                           elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False)))
    scale = draw(st.sampled_from([1.0, -0.5, 0.1, 3.0]))
    target = draw(hnp.arrays(dtype, (rows, dim), elements=st.floats(-10, 10, width=32)))
    return target, ids, vals, scale


@given(scatter_case())
def test_scatter_add_equals_numpy_add_at(case):
    target, ids, vals, scale = case
    want = target.copy()
    np.add.at(want, ids.astype(np.int64), vals * target.dtype.type(scale))
    ids_before, vals_before = snapshot(ids, vals)
    ops.scatter_add(target, ids, vals, scale=scale)
    assert target.tobytes() == want.tobytes()  # bit for bit, duplicates summed in order
    assert snapshot(ids, vals) == [ids_before, vals_before]


def test_scatter_add_matches_torch_index_add():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    target = rng.standard_normal((500, 16)).astype(np.float32)
    ids = zipf_ids(rng, 20_000, 500)
    vals = rng.standard_normal((20_000, 16)).astype(np.float32)
    t = torch.from_numpy(target.copy())
    t.index_add_(0, torch.from_numpy(ids), torch.from_numpy(vals))
    ops.scatter_add(target, ids, vals)
    np.testing.assert_allclose(target, t.numpy(), rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------- coalesce

def coalesce_ref(ids, vals):
    flat = ids.reshape(-1).astype(np.int64)
    uniq, inv = np.unique(flat, return_inverse=True)
    out = np.zeros((uniq.size, vals.shape[-1]), dtype=vals.dtype)
    np.add.at(out, inv, vals.reshape(flat.size, vals.shape[-1]))
    return uniq, out


@st.composite
def coalesce_case(draw):
    dtype = draw(st.sampled_from(FLOATS))
    dim = draw(st.sampled_from([0, 1, 4, 8, 13]))
    id_dtype = draw(st.sampled_from([np.int32, np.int64, np.uint16]))
    spread = draw(st.sampled_from([5, 1000, 2**40]))
    hi = min(spread, int(np.iinfo(id_dtype).max))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=15))
    ids = draw(hnp.arrays(id_dtype, shape, elements=st.integers(0, hi)))
    vals = draw(hnp.arrays(dtype, ids.shape + (dim,), elements=st.floats(-1e3, 1e3, width=32)))
    return ids, vals


@given(coalesce_case())
def test_coalesce_equals_unique_add_at(case):
    ids, vals = case
    uniq, summed = ops.coalesce(ids, vals)
    want_u, want_s = coalesce_ref(ids, vals)
    assert uniq.dtype == np.int64 and summed.dtype == vals.dtype
    np.testing.assert_array_equal(uniq, want_u)
    assert summed.shape == want_s.shape and summed.tobytes() == want_s.tobytes()


def test_coalesce_sparse_id_range_and_zipf():
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 2**50, size=5000)
    ids[::7] = ids[3]
    vals = rng.standard_normal((5000, 6))
    u, s = ops.coalesce(ids, vals)
    wu, ws = coalesce_ref(ids, vals)
    np.testing.assert_array_equal(u, wu)
    assert s.tobytes() == ws.tobytes()
    ids = zipf_ids(rng, 100_000, 10**6)
    vals = rng.standard_normal((100_000, 16)).astype(np.float32)
    u, s = ops.coalesce(ids, vals)
    wu, ws = coalesce_ref(ids, vals)
    np.testing.assert_array_equal(u, wu)
    assert s.tobytes() == ws.tobytes()


def test_coalesce_reused_scratch_across_calls():
    # The plan keeps per-thread scratch between calls; calls that shrink, grow, switch
    # between the dense (id span <= 4n + 2^20) and the sorted (wide span) paths, and fail
    # half-way must not see each other's leftovers.
    rng = np.random.default_rng(11)
    cases = [
        rng.integers(0, 50_000, 200_000),            # dense, large
        np.array([1_048_576, 0], dtype=np.int32),    # sorted path, after a larger call
        rng.integers(0, 300, 7),                     # dense, tiny
        rng.integers(0, 2**40, 3_000),               # sorted, wide span
        zipf_ids(rng, 120_000, 10**6),               # dense, Zipf
        np.array([5, 5, 5]),
    ]
    for ids in cases + cases[::-1]:
        vals = rng.standard_normal((ids.size, 3)).astype(np.float32)
        u, s = ops.coalesce(ids, vals)
        wu, ws = coalesce_ref(ids, vals)
        np.testing.assert_array_equal(u, wu)
        assert s.tobytes() == ws.tobytes()
        with pytest.raises(IndexError):  # a failing call in between changes nothing
            ops.coalesce(np.array([3, -1, 2]), np.ones((3, 3), np.float32))


def test_coalesce_from_concurrent_python_threads():
    import concurrent.futures

    rng = np.random.default_rng(12)
    jobs = []
    for k in range(8):
        ids = zipf_ids(rng, 50_000 + 7_000 * k, 40_000 * (k + 1))
        jobs.append((ids, rng.standard_normal((ids.size, 32)).astype(np.float32)))
    want = [coalesce_ref(i, v) for i, v in jobs]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda job: ops.coalesce(*job), jobs * 3))
    for k, (u, s) in enumerate(got):
        wu, ws = want[k % len(jobs)]
        np.testing.assert_array_equal(u, wu)
        assert s.tobytes() == ws.tobytes()


@pytest.mark.parametrize("dtype", FLOATS)
def test_coalesce_column_split_small_outputs(dtype, threads):
    # Few unique ids, many positions: a small (not cache-line aligned) output summed by
    # two workers that split every row's columns at the memory's cache lines.
    rng = np.random.default_rng(14)
    for dim in (8, 16, 24, 32, 48, 64, 80, 128):
        ids = zipf_ids(rng, 20_000, 300)
        vals = rng.standard_normal((20_000, dim)).astype(dtype)
        wu, ws = coalesce_ref(ids, vals)
        for t in (1, 2):
            threads(t)
            u, s = ops.coalesce(ids, vals)
            np.testing.assert_array_equal(u, wu)
            assert s.tobytes() == ws.tobytes(), (dim, t)


def test_coalesce_output_layout():
    rng = np.random.default_rng(13)
    for n, dim, dtype in [(20, 3, np.float32), (100_000, 64, np.float32), (50_000, 40, np.float64)]:
        ids = rng.integers(0, 10 * n, n)
        u, s = ops.coalesce(ids, rng.standard_normal((n, dim)).astype(dtype))
        assert s.shape == (u.size, dim) and s.dtype == dtype
        assert s.flags.c_contiguous and s.flags.writeable and s.flags.aligned
        if s.nbytes >= 1 << 20:  # large outputs start on a cache line (see zeros_aligned)
            assert s.ctypes.data % 64 == 0
        s[...] = 1.0  # the caller may write it


# ---------------------------------------------------------------------- determinism

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dim", [16, 5, 48, 64])
def test_bit_identical_across_thread_counts(dtype, id_dtype, dim, threads):
    # dim 48 and 64 (whole cache lines) take coalesce's column split, 5 and float32 16
    # its split by row owner.
    rng = np.random.default_rng(5)
    rows, n = 20_000, (400_000 if dim <= 16 else 60_000)
    ids = zipf_ids(rng, n, rows).astype(id_dtype)  # heavy duplicates on the low ids
    vals = rng.standard_normal((n, dim)).astype(dtype)
    base = rng.standard_normal((rows, dim)).astype(dtype)
    results = {}
    for t in (1, 2, 1, 2):
        threads(t)
        target = base.copy()
        ops.scatter_add(target, ids, vals, scale=0.3)
        u, s = ops.coalesce(ids, vals)
        g = ops.gather(base, ids)
        key = (target.tobytes(), u.tobytes(), s.tobytes(), g.tobytes())
        results.setdefault(t, key)
        assert results[t] == key  # repeatable
    assert results[1] == results[2]
    wu, ws = coalesce_ref(ids, vals)
    assert results[1][1] == wu.tobytes() and results[1][2] == ws.tobytes()
    want = base.copy()
    np.add.at(want, ids.astype(np.int64), vals * dtype(0.3))
    assert results[1][0] == want.tobytes()


# ------------------------------------------------------------------- large tables

def test_table_over_2_pow_31_elements(tmp_path):
    dim = 256
    rows = 2**31 // dim + 8  # > 2^31 float32 elements, sparse file: ~no disk
    path = tmp_path / "big.f32"
    table = np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, dim))
    last = np.arange(rows - 3, rows)
    vals = np.arange(3 * dim, dtype=np.float32).reshape(3, dim)
    ops.scatter_add(table, last, vals, scale=2.0)
    np.testing.assert_array_equal(ops.gather(table, last), 2 * vals)
    np.testing.assert_array_equal(ops.gather(table, [rows - 1, 0]),
                                  np.stack([2 * vals[2], np.zeros(dim, np.float32)]))
    table.flush()
    del table
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))
    np.testing.assert_array_equal(ops.gather(ro, [rows - 2]), 2 * vals[1:2])
    with pytest.raises(ValueError, match="read-only"):
        ops.scatter_add(ro, [rows - 1], vals[:1])
    with pytest.raises(IndexError, match=f"= {rows} is out of range for a table of {rows} rows"):
        ops.gather(ro, [rows])


# ------------------------------------------------------------------------ threads

def test_thread_count_api(threads):
    assert fe.get_num_threads() >= 1
    threads(1)
    assert fe.get_num_threads() == 1
    threads(2)
    assert fe.get_num_threads() == 2
    with pytest.raises(ValueError, match=">= 1"):
        fe.set_num_threads(0)


def test_default_thread_count_is_affinity():
    import subprocess
    import sys
    code = "import fastembed as fe, os; print(fe.get_num_threads(), len(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(__file__) + "/..").stdout.split()
    assert out[0] == out[1]
