"""Fuzz target: fastembed.ops (gather, scatter_add, coalesce, embedding_bag).

Bytes decode to an op and its arguments: table dtype, shape and memory layout; id dtype,
shape, layout and values (valid ids mixed with -1, rows, INT64_MIN/MAX, 2**31, 2**63...);
values, out, offsets, per-sample weights, mode, scale.  Every call must either

- succeed with a result equal to a numpy reference (bit for bit for gather, scatter_add
  and coalesce; to float tolerance for embedding_bag), and write nothing but its output
  (scatter_add's target, gather's out), or
- raise IndexError, TypeError or ValueError and leave every array argument byte-identical.

Tables, values and weights may hold NaN, +-Inf and -0.0 (results then follow numpy: NaN
propagates through sums and max pooling from any position), and `out` / `values` may be
views into the memory of the table / target: a call whose output's memory span meets an
input's must be refused with ValueError (np.may_share_memory is the oracle).
New decoding steps come after the old ones (bytes past the end read as 0, which turns
them off), so the seeds keep their meaning.

Inputs that are plainly valid (a C-contiguous float table, integer ids in range, values
of the right dtype and shape) must succeed.  Anything else (another exception type, a
wrong result, a write on failure, a crash, a sanitizer report) is a finding.

Run: python tests/fuzz/fuzz_ops.py [libFuzzer flags] [corpus dirs]  (needs atheris);
the corpus is also replayed without atheris by tests/fuzz/test_fuzz_corpus.py.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bytes import ByteReader, fuzz_main  # noqa: E402

ALLOWED = (IndexError, TypeError, ValueError)
I64_MIN, I64_MAX = -2**63, 2**63 - 1
fe = None  # imported in main() (instrumented) or by load()


def load():
    global fe
    if fe is None:
        import fastembed

        fe = fastembed
    return fe


class Finding(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Finding(msg)


# -- input decoding ---------------------------------------------------------------------------

def _wrap_int(v: int, dtype) -> np.ndarray:
    """v reduced modulo 2**bits into `dtype` (as a C cast would), as a 0-d array."""
    dt = np.dtype(dtype)
    bits = dt.itemsize * 8
    v &= (1 << bits) - 1
    if dt.kind == "i" and v >= 1 << (bits - 1):
        v -= 1 << bits
    return np.array(v, dtype=dt)


def _id_value(r: ByteReader, rows: int) -> int:
    k = r.u8() % 10
    if k < 6 and rows > 0:
        return r.int_in(0, rows - 1)
    if k < 8:
        return r.pick([rows, rows + 1, -1, -2, I64_MIN, I64_MAX, 2**31, -2**31, 2**31 - 1,
                       2**32, 2**63, 2**64 - 1, 0, 1])
    return int.from_bytes(r.take(8), "little", signed=True)


ID_DTYPES = ["i8", "i8", "i8", "i4", "i4", "i2", "i1", "u1", "u2", "u4", "u8", ">i8", ">i4",
             "bool", "f8", "f4", "object", "U2", "list"]


def make_ids(r: ByteReader, rows: int, nd=None, max_size=24):
    if nd is None:
        nd = r.int_in(0, 3)
    shape = tuple(r.int_in(0, 4) for _ in range(nd))
    while int(np.prod(shape, dtype=np.int64)) > max_size:
        shape = shape[:-1]
    n = int(np.prod(shape, dtype=np.int64))
    raw = [_id_value(r, rows) for _ in range(n)]
    kind = r.pick(ID_DTYPES)
    if kind == "list":
        # Python ints (possibly beyond int64) in nested lists.
        if n == 0:
            return [], raw, (0,)  # an empty nested list has lost its shape
        arr = np.array(raw, dtype=object).reshape(shape)
        return arr.tolist() if nd else raw[0], raw, shape
    if kind == "object":
        return np.array(raw, dtype=object).reshape(shape), raw, shape
    if kind == "U2":
        return np.array([str(v)[:2] for v in raw], dtype="U2").reshape(shape), raw, shape
    if kind == "bool":
        return np.array([v & 1 for v in raw], dtype=bool).reshape(shape), raw, shape
    if kind in ("f8", "f4"):
        return np.array([float(v) for v in raw], dtype=kind).reshape(shape), raw, shape
    dt = np.dtype(kind)
    vals = [int(_wrap_int(v, dt.newbyteorder("="))) for v in raw]
    arr = np.array(vals, dtype=dt.newbyteorder("=")).astype(dt).reshape(shape)
    arr = _layout(r, arr)
    return arr, vals, shape


def _layout(r: ByteReader, arr: np.ndarray) -> np.ndarray:
    """The same values in another memory layout (never changes the values)."""
    how = r.u8() % 8
    if how == 5 and arr.ndim >= 1:  # every other element of a bigger buffer
        big = np.zeros((arr.shape[0] * 2,) + arr.shape[1:], dtype=arr.dtype)
        big[::2] = arr
        return big[::2]
    if how == 6 and arr.ndim >= 2:
        return np.asfortranarray(arr)
    if how == 7:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


TABLE_DTYPES = ["f4", "f4", "f4", "f8", "f8", "f2", "i4", "i8", "bool", ">f4"]


def make_table(r: ByteReader):
    rows, dim = r.int_in(0, 10), r.int_in(0, 6)
    kind = r.pick(TABLE_DTYPES)
    base = ((np.arange(rows * dim) * 5) % 11 - 5).reshape(rows, dim)
    t = base.astype(kind)
    how = r.u8() % 10
    if how == 6:
        big = np.zeros((rows * 2, dim), dtype=t.dtype)
        big[::2] = t
        t = big[::2]
    elif how == 7:
        big = np.zeros((rows, dim * 2), dtype=t.dtype)
        big[:, ::2] = t
        t = big[:, ::2]
    elif how == 8:
        t = np.asfortranarray(t)
    elif how == 9:
        t = t.copy()
        t.flags.writeable = False
    elif how == 5 and t.dtype.itemsize > 1:  # misaligned
        buf = np.zeros(t.nbytes + 1, np.uint8)
        u = np.frombuffer(buf.data, dtype=t.dtype, count=t.size, offset=1).reshape(t.shape)
        u[...] = t
        t = u
    return t, rows, dim


def make_values(r: ByteReader, shape, dtype):
    how = r.u8() % 12
    if how == 0:
        shape = shape[:-1]
    elif how == 1:
        shape = (shape[0] + 1,) + tuple(shape[1:]) if shape else (1,)
    elif how == 2:
        dtype = r.pick(["f4", "f8", "i4", "f2"])
    elif how == 3:
        shape = tuple(shape[:-1]) + (shape[-1] + 1,)
    n = int(np.prod(shape, dtype=np.int64))
    base = np.array([r.int_in(-4, 4) for _ in range(min(n, 64))] + [0] * max(0, n - 64))
    v = base.reshape(shape).astype(dtype if np.dtype(dtype).kind in "fiub" else "f4")
    if how == 4:
        return v.tolist()
    return _layout(r, v)


def plain_table(t) -> bool:
    # float16 tables are valid for every op since the half-precision kernels.
    return (isinstance(t, np.ndarray) and t.dtype in (np.float16, np.float32, np.float64)
            and t.ndim == 2
            and t.dtype.isnative and t.flags.c_contiguous and t.flags.aligned)


def int_ids(ids) -> bool:
    return isinstance(ids, np.ndarray) and ids.dtype.kind in "iu"


def ids_ok_kind(ids) -> bool:
    """Ids a successful call may have been given: integer arrays or Python ints."""
    if isinstance(ids, np.ndarray):
        return ids.dtype.kind in "iu"
    return True


def ids_in_range(vals, rows) -> bool:
    return all(0 <= v < rows for v in vals)


SPECIALS = [np.nan, np.inf, -np.inf, -0.0]


def sprinkle(r: ByteReader, *arrays) -> None:
    """In place: NaN, +-Inf or -0.0 into a few elements of writeable float arrays."""
    k = r.u8() % 4
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size
                and a.flags.writeable):
            continue
        for _ in range(k):
            a[np.unravel_index(r.int_in(0, a.size - 1), a.shape)] = r.pick(SPECIALS)


def same(a, b) -> bool:
    """Bit for bit, except that any two NaNs match (their payloads depend on operand order)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    ua = np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")
    ub = np.ascontiguousarray(b).view(f"u{b.dtype.itemsize}")
    return bool(np.all((ua == ub) | (np.isnan(a) & np.isnan(b))))


def window_into(r: ByteReader, base, shape):
    """A C-contiguous view of `shape` at a byte-chosen element offset of `base`'s memory, or
    None when it does not fit."""
    if not (isinstance(base, np.ndarray) and base.flags.c_contiguous):
        return None
    n = int(np.prod(shape, dtype=np.int64))
    flat = base.reshape(-1)
    if n > flat.size:
        return None
    off = r.int_in(0, flat.size - n)
    return flat[off:off + n].reshape(shape)


# -- snapshots --------------------------------------------------------------------------------

def snapshot(*objs):
    return [(o, o.tobytes()) for o in objs if isinstance(o, np.ndarray)]


def unchanged(snap, except_=()):
    for o, b in snap:
        if any(o is e for e in except_):
            continue
        check(o.tobytes() == b, f"an argument was modified ({o.dtype}, {o.shape})")


# -- the ops ----------------------------------------------------------------------------------

def do_gather(r):
    t, rows, dim = make_table(r)
    ids, vals, shape = make_ids(r, rows)
    out = None
    if r.u8() % 4 == 0:
        odt = t.dtype if r.boolean() else r.pick(["f4", "f8", "i4"])
        oshape = shape + (dim,) if r.u8() % 4 else shape + (dim + 1,)
        out = np.full(oshape, 9, dtype=odt)
        out = _layout(r, out)
    sprinkle(r, t)
    if out is None and r.u8() % 3 == 1 and t.base is not None:
        out = window_into(r, t.base, shape + (dim,))  # may overlap the table's span
    shares = out is not None and np.may_share_memory(out, t)
    snap = snapshot(t, ids, out)
    try:
        got = fe.ops.gather(t, ids, out=out)
    except ALLOWED as exc:
        unchanged(snap)
        plain_out = out is None or (out.dtype == t.dtype and out.shape == shape + (dim,)
                                    and out.flags.c_contiguous and out.flags.writeable
                                    and not shares)
        check(not (plain_table(t) and int_ids(ids) and ids_in_range(vals, rows) and plain_out),
              f"valid gather refused: {exc!r}")
        return
    check(isinstance(t, np.ndarray) and t.dtype.kind == "f", "gather accepted a bad table")
    check(ids_ok_kind(ids), f"gather accepted ids of dtype {getattr(ids, 'dtype', None)}")
    check(ids_in_range(vals, rows), f"gather accepted out-of-range ids {vals}")
    ref = np.asarray(t)[np.asarray(vals, dtype=np.int64).reshape(shape)]
    check(got.shape == shape + (dim,) and got.dtype == t.dtype, "gather: wrong shape/dtype")
    check(not shares, "gather wrote into an out= overlapping the table")
    check(got.tobytes() == np.ascontiguousarray(ref).tobytes(), "gather: wrong values")
    if out is not None:
        check(got is out, "gather: out= was not returned")
    unchanged(snap, except_=(out,))


def do_scatter(r):
    t, rows, dim = make_table(r)
    ids, vals, shape = make_ids(r, rows)
    values = make_values(r, shape + (dim,), t.dtype if t.dtype.kind == "f" else "f4")
    scale = r.pick([1.0, -1.0, 0.5, 2.0, 0.0])
    sprinkle(r, t, values)
    if r.u8() % 3 == 1 and plain_table(t) and t.flags.writeable:
        # The target in the middle of a buffer, values a window anywhere in it.
        vshape = shape + (dim,)
        nv = int(np.prod(vshape, dtype=np.int64))
        buf = np.zeros(t.size + 2 * nv + 2, t.dtype)
        buf[nv + 1:nv + 1 + t.size] = t.reshape(-1)
        t = buf[nv + 1:nv + 1 + t.size].reshape(t.shape)
        w = window_into(r, buf, vshape)
        values = w if w is not None else values
    shares = isinstance(values, np.ndarray) and np.may_share_memory(values, t)
    snap = snapshot(t, ids, values)
    before = np.array(t, copy=True)
    values_before = np.array(values, copy=True) if isinstance(values, np.ndarray) else values
    try:
        fe.ops.scatter_add(t, ids, values, scale)
    except ALLOWED as exc:
        unchanged(snap)
        vplain = (isinstance(values, np.ndarray) and values.dtype == t.dtype
                  and values.shape == shape + (dim,) and not shares)
        check(not (plain_table(t) and t.flags.writeable and int_ids(ids)
                   and ids_in_range(vals, rows) and vplain),
              f"valid scatter_add refused: {exc!r}")
        return
    check(plain_table(t) and t.flags.writeable, "scatter_add wrote into a bad target")
    check(ids_ok_kind(ids), f"scatter_add accepted ids of dtype {getattr(ids, 'dtype', None)}")
    check(ids_in_range(vals, rows), f"scatter_add accepted out-of-range ids {vals}")
    check(not shares, "scatter_add accepted values overlapping the target")
    v = np.asarray(values_before)
    check(v.dtype == t.dtype or isinstance(values, list),
          f"scatter_add accepted {v.dtype} values for a {t.dtype} target")
    ref = before.copy()
    idx = np.asarray(vals, dtype=np.int64).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        if t.dtype == np.float16:
            # Half targets: each touched row summed in float32, rounded once (issue 14).
            acc = before.astype(np.float32)
            np.add.at(acc, idx, np.float32(scale) * v.astype(np.float32))
            touched = np.unique(idx)
            ref[touched] = acc[touched].astype(np.float16)
        else:
            np.add.at(ref, idx, t.dtype.type(scale) * v.astype(t.dtype))
    check(same(t, ref), "scatter_add: wrong result")
    unchanged(snap, except_=(t,))


def do_coalesce(r):
    ids, vals, shape = make_ids(r, rows=1 << 40, nd=r.int_in(0, 2))
    dim = r.int_in(0, 4)
    values = make_values(r, shape + (dim,), r.pick(["f4", "f8"]))
    sprinkle(r, values)
    snap = snapshot(ids, values)
    try:
        uniq, summed = fe.ops.coalesce(ids, values)
    except ALLOWED as exc:
        unchanged(snap)
        vplain = (isinstance(values, np.ndarray) and values.dtype in (np.float32, np.float64)
                  and values.shape == shape + (dim,))
        check(not (int_ids(ids) and all(0 <= v <= I64_MAX for v in vals) and vplain),
              f"valid coalesce refused: {exc!r}")
        return
    check(all(0 <= v <= I64_MAX for v in vals), f"coalesce accepted ids {vals}")
    check(ids_ok_kind(ids), f"coalesce accepted ids of dtype {getattr(ids, 'dtype', None)}")
    flat = np.asarray(vals, dtype=np.int64)
    u, inv = np.unique(flat, return_inverse=True)
    v = np.asarray(values)
    check(v.ndim == len(shape) + 1 and v.shape[:-1] == shape,
          f"coalesce accepted values of shape {v.shape} for ids of shape {shape}")
    dim = v.shape[-1]  # coalesce takes the row width from the values
    v = v.reshape(int(np.prod(shape, dtype=np.int64)), dim)
    ref = np.zeros((u.size, dim), dtype=v.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        np.add.at(ref, inv.reshape(-1), v)
    check(uniq.dtype == np.int64 and np.array_equal(uniq, u), "coalesce: wrong ids")
    check(summed.dtype == v.dtype and same(summed, ref), "coalesce: wrong sums")
    unchanged(snap)


def _bag_reference(t, flat_ids, starts, n, mode, w, mask_zero):
    t64 = np.asarray(t, dtype=np.float64)
    dim = t64.shape[1]
    out = np.zeros((len(starts), dim))
    for b, s in enumerate(starts):
        e = starts[b + 1] if b + 1 < len(starts) else n
        ids = np.asarray(flat_ids[s:e], dtype=np.int64)
        ww = np.ones(len(ids)) if w is None else np.asarray(w[s:e], dtype=np.float64)
        keep = ids != 0 if mask_zero else np.ones(len(ids), bool)
        ids, ww = ids[keep], ww[keep]
        if ids.size == 0:
            continue
        rows = t64[ids]
        if mode == "max":
            out[b] = rows.max(axis=0)
        elif mode == "sum":
            out[b] = (ww[:, None] * rows).sum(axis=0)
        else:
            tot = ww.sum()
            out[b] = 0 if tot == 0 else (ww[:, None] * rows).sum(axis=0) / tot
    return out


def do_bag(r):
    t, rows, dim = make_table(r)
    form = r.u8() % 3
    offsets = None
    if form == 0:  # 2-D bags
        ids, vals, shape = make_ids(r, rows, nd=2)
    else:  # 1-D ids and offsets
        ids, vals, shape = make_ids(r, rows, nd=1)
        n = shape[0] if shape else 0
        nb = r.int_in(0, 5)
        how = r.u8() % 6
        if how < 4:
            offs = sorted([0] + [r.int_in(0, n) for _ in range(max(0, nb - 1))])[:max(nb, 1)]
        else:
            offs = [_id_value(r, n + 1) for _ in range(nb)]
        odt = r.pick(["i8", "i8", "i4", "u8", "f8", "i2"])
        offsets = np.array([int(_wrap_int(o, odt)) if odt != "f8" else float(o) for o in offs],
                           dtype=odt)
        if r.u8() % 5 == 0:
            offsets = offsets.tolist()
    mode = r.pick(["sum", "sum", "mean", "mean", "max", "avg", 3])
    w = None
    if r.u8() % 3 == 0:
        w = make_values(r, shape + (1,), t.dtype if t.dtype.kind == "f" else "f4")
        if isinstance(w, np.ndarray) and w.ndim and w.shape[-1] == 1:
            w = w[..., 0]
    mask_zero = r.boolean()
    sprinkle(r, t, w)
    snap = snapshot(t, ids, offsets, w)
    try:
        got = fe.ops.embedding_bag(t, ids, offsets=offsets, mode=mode, per_sample_weights=w,
                                   mask_zero=mask_zero)
    except NotImplementedError:
        return
    except ALLOWED:
        unchanged(snap)
        return
    check(isinstance(t, np.ndarray) and t.dtype.kind == "f", "embedding_bag accepted a bad table")
    check(ids_ok_kind(ids), f"bag accepted ids of dtype {getattr(ids, 'dtype', None)}")
    check(ids_in_range(vals, rows), f"bag accepted out-of-range ids {vals}")
    check(mode in ("sum", "mean", "max"), f"bag accepted mode {mode!r}")
    check(w is None or mode != "max", "bag accepted per_sample_weights with mode='max'")
    flat = np.asarray(vals, dtype=np.int64)
    if offsets is None:
        B, L = shape
        starts = [b * L for b in range(B)]
        n = B * L
    else:
        starts = [int(o) for o in np.asarray(offsets).reshape(-1)]
        n = flat.size
        check(not starts or starts[0] == 0, f"bag accepted offsets {starts}")
        check(all(a <= b for a, b in zip(starts, starts[1:])), f"bag accepted offsets {starts}")
        check(all(0 <= s <= n for s in starts), f"bag accepted offsets {starts}")
    wf = None if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    check(wf is None or (np.shape(w) == np.shape(ids) and wf.size == flat.size),
          f"bag accepted per_sample_weights of shape {np.shape(w)} for ids {np.shape(ids)}")
    with np.errstate(invalid="ignore", over="ignore"):
        ref = _bag_reference(t, flat, starts, n, mode, wf, mask_zero)
    # Half tables pool into float32 (issue 14).
    out_dt = np.float32 if t.dtype == np.float16 else t.dtype
    check(got.shape == (len(starts), dim) and got.dtype == out_dt, "bag: wrong shape/dtype")
    tol = 1e-12 if t.dtype == np.float64 else 1e-5
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.allclose(got, ref, rtol=tol, atol=tol * 10, equal_nan=True)
    check(ok, f"bag: wrong values {got} vs {ref}")
    unchanged(snap)


OPS = ["do_gather", "do_scatter", "do_coalesce", "do_bag"]  # by name: see main()


def TestOneInput(data: bytes) -> None:
    load()
    r = ByteReader(data)
    globals()[OPS[r.u8() % len(OPS)]](r)


def main():
    fuzz_main(globals(), load)


if __name__ == "__main__":
    main()
