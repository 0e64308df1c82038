"""float16 / bfloat16 tables: exact conversions, bit-exact lookups, float32-accumulated
bags, scatter_add rounded once, layers, training and files (issue 14)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastembed as fe
from fastembed import _core

try:
    import ml_dtypes
except ImportError:  # bfloat16 cases are skipped
    ml_dtypes = None

HALF = ["float16"] + (["bfloat16"] if ml_dtypes is not None else [])


def dt(name):
    return np.dtype(np.float16) if name == "float16" else np.dtype(ml_dtypes.bfloat16)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


def table(name, rows=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, dim)).astype(np.float32).astype(dt(name))


# -- conversions ------------------------------------------------------------------------
def test_f16_to_f32_exhaustive():
    h = np.arange(1 << 16, dtype=np.uint16)
    got = _core._half_to_float(h, False)
    ref = h.view(np.float16).astype(np.float32)
    nan = np.isnan(ref)
    assert nan.sum() == 2 * 1023
    assert np.array_equal(bits(got[~nan]), bits(ref[~nan]))  # zeros, subnormals, inf
    assert np.isnan(got[nan]).all()
    # NaN keeps sign and payload, with the quiet bit set (what F16C gives).
    gb = bits(got[nan])
    hb = h[nan].astype(np.uint32)
    assert np.array_equal(gb >> 31, hb >> 15)
    assert np.array_equal((gb >> 13) & 0x1FF, hb & 0x1FF)
    assert ((gb >> 22) & 1).all()


def edge_floats():
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.996, 65520, -65520, 1e-8,
                         2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 3 * 2 ** -25, 2 ** -14,
                         2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11,
                         3.4e38, 1e-45], dtype=np.float32)
    rng = np.random.default_rng(7)
    scaled = (rng.standard_normal(200_000) * 10.0 ** rng.integers(-9, 7, 200_000))
    raw = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # Exact halfway points between neighbouring halves (ties to even).
    h = np.arange(0, 0x7BFF, 7, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = ((h[:-1] + np.nextafter(h[:-1].astype(np.float16), np.float16(np.inf))
             .astype(np.float64)) / 2).astype(np.float32)
    return np.concatenate([specials, -specials, scaled.astype(np.float32), raw, mids, -mids])


def test_f32_to_f16_rounding_matches_numpy():
    x = edge_floats()
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    got = _core._float_to_half(x, False)
    fin = ~np.isnan(x)
    assert np.array_equal(got[fin], ref[fin])
    assert np.isnan(got[~fin].view(np.float16)).all()


@pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes not installed")
def test_bf16_conversions_match_ml_dtypes():
    h = np.arange(1 << 16, dtype=np.uint16)
    ref = h.view(ml_dtypes.bfloat16).astype(np.float32)
    got = _core._half_to_float(h, True)
    nan = np.isnan(ref)
    assert np.array_equal(bits(got[~nan]), bits(ref[~nan]))
    assert np.isnan(got[nan]).all()
    x = edge_floats()
    with np.errstate(over="ignore", invalid="ignore"):
        ref2 = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    got2 = _core._float_to_half(x, True)
    fin = ~np.isnan(x)
    assert np.array_equal(got2[fin], ref2[fin])
    assert np.isnan(got2[~fin].view(ml_dtypes.bfloat16).astype(np.float32)).all()


# Runs in a child process under both FASTEMBED_CPU settings: every 16-bit pattern through
# the bag kernels (max of a one-row bag is the row itself, -0.0 included) and a gather.
_CHILD = textwrap.dedent("""
    import sys, numpy as np, fastembed as fe
    from fastembed import _core
    kinds = [np.float16]
    try:
        import ml_dtypes; kinds.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    out = {"simd": bool(_core._lowp_simd())}
    for k in kinds:
        name = np.dtype(k).name
        for dim in (16, 64, 8, 7):
            n = (1 << 16) // dim * dim
            t = np.arange(n, dtype=np.uint16).view(k).reshape(-1, dim)
            ids = np.arange(t.shape[0]).reshape(-1, 1)
            mx = fe.ops.embedding_bag(t, ids, mode="max")
            rng = np.random.default_rng(dim)
            fin = np.where(np.isfinite(t.astype(np.float32)), t, k(0))
            bag_ids = rng.integers(0, t.shape[0], (500, 9))
            s = fe.ops.embedding_bag(fin, bag_ids, mode="mean")
            np.save(sys.argv[1] + f"_{name}_{dim}_max.npy", mx)
            np.save(sys.argv[1] + f"_{name}_{dim}_mean.npy", s)
    print(out["simd"])
""")


def test_simd_and_baseline_paths_agree_with_numpy(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    seen = {}
    for mode in ("baseline", ""):
        env = dict(os.environ)
        env.pop("FASTEMBED_CPU", None)
        if mode:
            env["FASTEMBED_CPU"] = mode
        r = subprocess.run([sys.executable, str(script), str(tmp_path / (mode or "auto"))],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        seen[mode] = r.stdout.strip()
    assert seen["baseline"] == "False"
    kinds = [np.float16] + ([ml_dtypes.bfloat16] if ml_dtypes is not None else [])
    for k in kinds:
        name = np.dtype(k).name
        for dim in (16, 64, 8, 7):
            n = (1 << 16) // dim * dim
            t32 = np.arange(n, dtype=np.uint16).view(k).reshape(-1, dim).astype(np.float32)
            for what in ("max", "mean"):
                a = np.load(tmp_path / f"baseline_{name}_{dim}_{what}.npy")
                b = np.load(tmp_path / f"auto_{name}_{dim}_{what}.npy")
                assert np.array_equal(bits(a), bits(b)), (name, dim, what)
            mx = np.load(tmp_path / f"auto_{name}_{dim}_max.npy")
            fin = ~np.isnan(t32)
            assert np.array_equal(bits(mx[fin]), bits(t32[fin]))
            assert np.isnan(mx[~fin]).all()


# -- ops --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("idt", [np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("dim", [16, 64, 5])
def test_gather_is_bit_copy(name, idt, dim):
    t = table(name, dim=dim)
    t[3, 0] = np.nan
    ids = np.random.default_rng(1).integers(0, 250, (7, 11)).astype(idt)
    ids[0, 0] = 3
    got = fe.ops.gather(t, ids)
    assert got.dtype == t.dtype and got.shape == (7, 11, dim)
    assert np.array_equal(bits(got), bits(t[ids.astype(np.int64)]))
    out = np.empty_like(got)
    assert fe.ops.gather(t, ids, out=out) is out
    assert np.array_equal(bits(out), bits(got))


def reference_bag(t, ids, **kw):
    return fe.ops.embedding_bag(t.astype(np.float32), ids, **kw)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("dim", [64, 16, 7])
@pytest.mark.parametrize("mask_zero", [False, True])
def test_bags_equal_float32_reference(name, mode, dim, mask_zero):
    rng = np.random.default_rng(dim)
    t = table(name, rows=200, dim=dim)
    ids = rng.integers(0, 200, (40, 9))
    ids[::5, :3] = 0
    for kw in ({}, {"per_sample_weights": rng.standard_normal(ids.shape).astype(np.float32)}):
        if mode == "max" and kw:
            continue
        got = fe.ops.embedding_bag(t, ids, mode=mode, mask_zero=mask_zero, **kw)
        assert got.dtype == np.float32
        assert np.array_equal(got, reference_bag(t, ids, mode=mode, mask_zero=mask_zero, **kw))
    flat = rng.integers(0, 200, 100)
    offs = np.array([0, 0, 3, 50, 50, 99])
    got = fe.ops.embedding_bag(t, flat, offsets=offs, mode=mode, mask_zero=mask_zero)
    assert np.array_equal(got, reference_bag(t, flat, offsets=offs, mode=mode,
                                             mask_zero=mask_zero))
    assert not got[0].any()  # an empty bag gives zeros


@pytest.mark.parametrize("name", HALF)
def test_bag_nan_inf_rules(name):
    t = table(name, rows=10, dim=16)
    t[2, 3] = np.nan
    t[4, 5] = np.inf
    ids = np.array([[1, 2, 4], [4, 1, 1], [2, 2, 2]])
    for mode in ("sum", "mean", "max"):
        got = fe.ops.embedding_bag(t, ids, mode=mode)
        ref = reference_bag(t, ids, mode=mode)
        assert np.array_equal(got, ref, equal_nan=True)
    mx = fe.ops.embedding_bag(t, ids, mode="max")
    assert np.isnan(mx[0, 3]) and mx[1, 5] == np.inf


@pytest.mark.parametrize("name", HALF)
def test_bags_same_for_any_thread_count(name):
    rng = np.random.default_rng(3)
    t = table(name, rows=5000, dim=64)
    ids = rng.integers(0, 5000, (4000, 20))
    n0 = fe.get_num_threads()
    try:
        fe.set_num_threads(1)
        a = fe.ops.embedding_bag(t, ids, mode="mean")
        fe.set_num_threads(2)
        b = fe.ops.embedding_bag(t, ids, mode="mean")
    finally:
        fe.set_num_threads(n0)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("dim", [16, 3])
@pytest.mark.parametrize("scale", [1.0, -0.37])
def test_scatter_add_rounds_float32_sum_once(name, dim, scale):
    rng = np.random.default_rng(dim)
    t = table(name, rows=50, dim=dim)
    ids = rng.integers(0, 50, (30, 4))  # many duplicates
    vals = rng.standard_normal((30, 4, dim)).astype(np.float32).astype(t.dtype)
    acc = t.astype(np.float32)
    np.add.at(acc, ids, np.float32(scale) * vals.astype(np.float32))
    want = t.copy()
    touched = np.unique(ids)
    want[touched] = acc[touched].astype(t.dtype)
    got = t.copy()
    fe.ops.scatter_add(got, ids, vals, scale)
    assert np.array_equal(bits(got), bits(want))
    # Rounding each addition instead would differ somewhere: the test can fail.
    step = t.copy()
    for i, v in zip(ids.reshape(-1), vals.reshape(-1, dim)):
        step[i] = (step[i].astype(np.float32) + np.float32(scale) * v.astype(np.float32)).astype(t.dtype)
    assert not np.array_equal(bits(step), bits(want))


# -- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", HALF)
def test_error_catalogue(name):
    t = table(name, rows=10, dim=4)
    before = t.copy()
    with pytest.raises(IndexError, match=r"ids\[1\] = 10 is out of range for a table of 10 rows"):
        fe.ops.gather(t, [1, 10])
    with pytest.raises(IndexError, match="-1 is out of range"):
        fe.ops.embedding_bag(t, [[0, -1]])
    with pytest.raises(IndexError, match="out of range"):
        fe.ops.scatter_add(t, [0, 10], np.ones((2, 4), t.dtype))
    assert np.array_equal(bits(t), bits(before))  # nothing written
    with pytest.raises(TypeError, match="must have the target's dtype"):
        fe.ops.scatter_add(t, [0], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"ids.shape \+ \(dim,\)"):
        fe.ops.scatter_add(t, [0], np.ones((1, 3), t.dtype))
    with pytest.raises(TypeError, match="out must have dtype"):
        fe.ops.gather(t, [0], out=np.empty((1, 4), np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        fe.ops.gather(t, [0], out=np.empty((2, 4), t.dtype))
    with pytest.raises(TypeError, match="per_sample_weights must be float32"):
        fe.ops.embedding_bag(t, [[0, 1]], per_sample_weights=np.ones((1, 2)))
    with pytest.raises(TypeError, match="float ids"):
        fe.ops.gather(t, np.array([0.0]))
    with pytest.raises(ValueError, match="2-D"):
        fe.ops.gather(t.reshape(10, 2, 2), [0])
    with pytest.raises(ValueError, match="offsets"):
        fe.ops.embedding_bag(t, [0, 1], offsets=[1])
    ro = t.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fe.ops.scatter_add(ro, [0], np.ones((1, 4), t.dtype))
    with pytest.raises(ValueError, match="rows must be contiguous"):
        fe.ops.gather(np.asfortranarray(table(name, 10, 4)), [0])
    with pytest.raises(ValueError, match="overlap"):
        fe.ops.scatter_add(t, [0], t[1:2])


def test_bfloat16_without_ml_dtypes_is_refused_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(TypeError, match="ml_dtypes"):
        fe.Embedding(4, 2, dtype="bfloat16")


def test_import_does_not_load_torch_or_ml_dtypes():
    code = "import sys, fastembed; print('torch' in sys.modules, 'ml_dtypes' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "False"], r.stderr


# -- layers and training ----------------------------------------------------------------
@pytest.mark.parametrize("name", HALF)
def test_layer_forward_backward(name):
    e = fe.Embedding(50, 16, dtype=name, seed=1)
    assert e.embeddings.dtype == dt(name)
    ids = np.random.default_rng(0).integers(0, 50, (6, 5))
    out = e(ids)
    assert out.dtype == dt(name) and np.array_equal(bits(out), bits(e.embeddings[ids]))
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    sg = e.backward(g)
    ref = np.zeros((50, 16), np.float32)
    np.add.at(ref, ids, g)
    assert sg.values.dtype == dt(name)  # DESIGN: values in the table's dtype
    assert np.array_equal(bits(sg.values), bits(ref[sg.indices].astype(dt(name))))
    b = fe.EmbeddingBag(50, 16, mode="mean", dtype=name, seed=1)
    o = b(ids)
    assert o.dtype == np.float32
    assert np.array_equal(o, reference_bag(b.embeddings, ids, mode="mean"))
    sgb = b.backward(np.ones_like(o))
    assert sgb.values.dtype == dt(name)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("make", [
    lambda: fe.optimizers.SGD(0.1), lambda: fe.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: fe.optimizers.Adagrad(0.1), lambda: fe.optimizers.Adam(0.01),
    lambda: fe.optimizers.Adam(0.01, lazy=False), lambda: fe.optimizers.SGD(0.1, lazy=False,
                                                                           momentum=0.5)])
def test_training_float32_state_rounds_rows(name, make):
    rng = np.random.default_rng(5)
    e = fe.Embedding(40, 16, dtype=name, seed=2)
    ref = e.embeddings.astype(np.float32)
    opt, ropt = make(), make()
    for step in range(3):
        ids = rng.integers(0, 40, (8, 3))
        e(ids)
        sg = e.backward(rng.standard_normal((8, 3, 16)).astype(np.float32))
        opt.apply_gradients([(sg, e)])
        # The float32 reference: same gradient and optimizer on the float32 table, then
        # rounded; the half table must equal it after every step.
        ropt.apply_gradients([(fe.SparseGradient(sg.indices, sg.values.astype(np.float32),
                                                 sg.dense_shape), ref)])
        ref[...] = ref.astype(e.embeddings.dtype).astype(np.float32)  # same variable
        assert np.array_equal(bits(e.embeddings), bits(ref.astype(e.embeddings.dtype)))
    for name_ in opt._needs_slots():
        assert opt.get_slot(e, name_).dtype == np.float32
    state = opt.get_state()
    opt2 = make()
    opt2.set_state(state, [e])
    for name_ in opt._needs_slots():
        assert opt2.get_slot(e, name_).dtype == np.float32


@pytest.mark.parametrize("name", HALF)
def test_training_errors_change_nothing(name):
    e = fe.Embedding(10, 4, dtype=name)
    before = e.embeddings.copy()
    opt = fe.optimizers.Adam()
    with pytest.raises(TypeError, match="dtype"):
        opt.apply_gradients([(fe.SparseGradient([1], np.ones((1, 4), np.float32), (10, 4)), e)])
    with pytest.raises(TypeError, match="dtype"):
        opt.apply_gradients([(np.ones((10, 4), np.float32), e)])
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([(np.ones((9, 4), e.dtype), e)])
    assert np.array_equal(bits(e.embeddings), bits(before)) and opt.get_step(e) == 0


@pytest.mark.parametrize("name", HALF)
def test_save_load(tmp_path, name):
    e = fe.EmbeddingBag(30, 8, mode="sum", dtype=name, seed=3)
    e.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["dtype"] == name
    stored = np.load(tmp_path / "m" / "embeddings.npy")
    assert stored.dtype == (np.float16 if name == "float16" else np.uint16)
    for mm in (None, "r"):
        e2 = fe.Embedding.load(tmp_path / "m", mmap_mode=mm)
        assert isinstance(e2, fe.EmbeddingBag) and e2.embeddings.dtype == dt(name)
        assert np.array_equal(bits(np.asarray(e2.embeddings)), bits(e.embeddings))
        assert np.array_equal(e2([[1, 2]]), e([[1, 2]]))
    ro = fe.Embedding.load(tmp_path / "m", mmap_mode="r")
    with pytest.raises(ValueError, match="read-only"):
        fe.optimizers.SGD().apply_gradients([(np.ones((30, 8), e.dtype), ro)])
