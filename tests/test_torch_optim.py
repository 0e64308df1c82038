"""fastembed.torch.optim against torch.optim and written-out lazy numpy references."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastembed.torch.optim as fo  # noqa: E402
from fastembed.torch import clip_grad_norm_  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

V, D = 40, 8
DTYPES = [torch.float32, torch.float64]


def tight(dtype):
    """A few ulps: where our formula is torch's term for term, results still differ in the
    last bit now and then, because torch's vectorized CPU kernels (Sleef) do not round
    sqrt correctly and fuse some multiply-adds; ours round each operation (IEEE)."""
    return dict(rtol=1e-6, atol=1e-7) if dtype == torch.float32 else \
        dict(rtol=1e-14, atol=1e-15)


def sparse_grads(dtype, steps, seed=0, v=V, d=D, batch=12):
    """Per step the (uncoalesced, with duplicate ids) gradient nn.Embedding(sparse=True)
    makes for a random batch; some rows are never touched."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.nn.Embedding(v, d, sparse=True, dtype=dtype)
    out = []
    for _ in range(steps):
        ids = torch.randint(0, v // 2, (batch,), generator=gen)  # rows v//2.. never touched
        ids[3] = ids[0]  # a duplicate for sure
        w = torch.randn(batch, d, generator=gen, dtype=dtype)
        emb.zero_grad()
        (emb(ids) * w).sum().backward()
        g = emb.weight.grad
        assert g.is_sparse and not g.is_coalesced()
        out.append(g.clone())
    return out


def init_weight(dtype, seed=1, shape=(V, D)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def run(opt_cls, w0, grads, **kw):
    p = torch.nn.Parameter(w0.clone())
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach(), opt


# -- equal to torch.optim where torch has the same semantics ----------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_adam_equals_torch(dtype):
    grads = sparse_grads(dtype, 5)
    w0 = init_weight(dtype)
    kw = dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    ours, o1 = run(fo.SparseAdam, w0, grads, **kw)
    ref, o2 = run(torch.optim.SparseAdam, w0, grads, **kw)
    torch.testing.assert_close(ours, ref, **tight(dtype))
    s1, s2 = next(iter(o1.state.values())), next(iter(o2.state.values()))
    assert s1["step"] == s2["step"] == 5
    torch.testing.assert_close(s1["exp_avg"], s2["exp_avg"], **tight(dtype))
    torch.testing.assert_close(s1["exp_avg_sq"], s2["exp_avg_sq"], **tight(dtype))
    assert torch.equal(ours[V // 2:], w0[V // 2:])  # lazy: untouched rows unchanged


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_sparse_equals_torch(dtype):
    grads = sparse_grads(dtype, 5)
    w0 = init_weight(dtype)
    kw = dict(lr=0.3, lr_decay=0.1, initial_accumulator_value=0.2, eps=1e-3)
    ours, o1 = run(fo.Adagrad, w0, grads, **kw)
    ref, o2 = run(torch.optim.Adagrad, w0, grads, **kw)
    tol = tight(dtype)
    torch.testing.assert_close(ours, ref, **tol)
    s1, s2 = next(iter(o1.state.values())), next(iter(o2.state.values()))
    assert torch.equal(s1["step"], s2["step"])
    torch.testing.assert_close(s1["sum"], s2["sum"], **tol)
    assert torch.equal(ours[V // 2:], w0[V // 2:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_sparse_equals_torch(dtype):
    grads = sparse_grads(dtype, 4)
    w0 = init_weight(dtype)
    ours, _ = run(fo.SGD, w0, grads, lr=0.1)
    ref, _ = run(torch.optim.SGD, w0, grads, lr=0.1)
    # torch adds each duplicate separately (with an FMA); ours sums duplicates first.
    tol = tight(dtype)
    torch.testing.assert_close(ours, ref, **tol)
    assert not torch.equal(ours, w0)


DENSE_CASES = [
    (fo.Adam, torch.optim.Adam, dict(lr=0.01)),
    (fo.Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.7, 0.9), eps=1e-5, weight_decay=0.1)),
    (fo.Adam, torch.optim.Adam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)),
    (fo.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (fo.AdamW, torch.optim.AdamW, dict(lr=0.03, weight_decay=0.3, betas=(0.5, 0.8))),
    (fo.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                           initial_accumulator_value=0.3)),
    (fo.SGD, torch.optim.SGD, dict(lr=0.1)),
    (fo.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05)),
    (fo.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours_cls,torch_cls,kw", DENSE_CASES)
def test_dense_bit_equal_torch(ours_cls, torch_cls, kw, dtype):
    gen = torch.Generator().manual_seed(3)
    w0 = init_weight(dtype, shape=(5, 7))
    b0 = init_weight(dtype, seed=2, shape=(7,))
    ps = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    qs = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    o1, o2 = ours_cls(ps, **kw), torch_cls(qs, foreach=False, **kw)
    for _ in range(4):
        gs = [torch.randn(5, 7, generator=gen, dtype=dtype),
              torch.randn(7, generator=gen, dtype=dtype)]
        for p, q, g in zip(ps, qs, gs):
            p.grad, q.grad = g.clone(), g.clone()
        o1.step()
        o2.step()
    for p, q in zip(ps, qs):
        assert torch.equal(p, q)
        assert not torch.equal(p, w0 if p.dim() == 2 else b0)
    sd1, sd2 = o1.state_dict()["state"], o2.state_dict()["state"]
    assert sd1.keys() == sd2.keys()
    for i in sd1:
        assert sd1[i].keys() == sd2[i].keys()
        for k in sd1[i]:
            assert torch.equal(torch.as_tensor(sd1[i][k]), torch.as_tensor(sd2[i][k])), k


# -- lazy numpy references where torch has none ----------------------------------------

def coalesced(g):
    c = g.coalesce()
    return c._indices()[0].numpy(), c._values().numpy()


def lazy_adam_ref(w0, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    """Adam applied to the touched rows only, torch's _single_tensor_adam term for term."""
    w = w0.numpy().copy()
    T = w.dtype.type
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        idx, gv = coalesced(g)
        wr = w[idx]
        if wd != 0 and not decoupled:
            gv = gv + T(wd) * wr
        if wd != 0 and decoupled:
            wr = wr * T(1 - lr * wd)
        mr = m[idx] + T(1 - b1) * (gv - m[idx])
        vr = v[idx] * T(b2) + (T(1 - b2) * gv) * gv
        m[idx], v[idx] = mr, vr
        step_size = lr / (1 - b1 ** t)
        bias2_sqrt = (1 - b2 ** t) ** 0.5
        w[idx] = wr + T(-step_size) * (mr / (np.sqrt(vr) / T(bias2_sqrt) + T(eps)))
    return w, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw", [
    (fo.Adam, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4)),
    (fo.Adam, dict(lr=0.05, weight_decay=0.2)),
    (fo.AdamW, dict(lr=0.05, weight_decay=0.3)),
])
def test_adam_sparse_lazy_reference(cls, kw, dtype):
    grads = sparse_grads(dtype, 5)
    w0 = init_weight(dtype)
    ours, opt = run(cls, w0, grads, **kw)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    wd = kw.get("weight_decay", 0.01 if cls is fo.AdamW else 0.0)
    w, m, v = lazy_adam_ref(w0, grads, kw["lr"], b1, b2, kw.get("eps", 1e-8), wd,
                            decoupled=cls is fo.AdamW)
    np.testing.assert_array_equal(ours.numpy(), w)
    st = opt.state[opt.param_groups[0]["params"][0]]
    np.testing.assert_array_equal(st["exp_avg"].numpy(), m)
    np.testing.assert_array_equal(st["exp_avg_sq"].numpy(), v)
    assert float(st["step"]) == 5.0 and st["step"].dtype == torch.float32
    assert torch.equal(ours[V // 2:], w0[V // 2:])


def lazy_sgd_ref(w0, grads, lr, momentum, dampening, nesterov, wd):
    w = w0.numpy().copy()
    T = w.dtype.type
    buf = np.zeros_like(w)
    for t, g in enumerate(grads):
        idx, gv = coalesced(g)
        if wd:
            gv = gv + T(wd) * w[idx]
        if t == 0:
            b = gv.copy()  # torch's first step: the buffer is a clone of the gradient
        else:
            b = T(momentum) * buf[idx] + T(1 - dampening) * gv
        buf[idx] = b
        step = gv + T(momentum) * b if nesterov else b
        w[idx] = w[idx] + T(-lr) * step
    return w, buf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(momentum=0.9),
    dict(momentum=0.7, dampening=0.3, weight_decay=0.1),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.5, nesterov=True, weight_decay=0.2),
])
def test_sgd_momentum_sparse_lazy_reference(kw, dtype):
    grads = sparse_grads(dtype, 5)
    w0 = init_weight(dtype)
    ours, opt = run(fo.SGD, w0, grads, lr=0.1, **kw)
    w, buf = lazy_sgd_ref(w0, grads, 0.1, kw["momentum"], kw.get("dampening", 0.0),
                          kw.get("nesterov", False), kw.get("weight_decay", 0.0))
    np.testing.assert_array_equal(ours.numpy(), w)
    st = opt.state[opt.param_groups[0]["params"][0]]
    np.testing.assert_array_equal(st["momentum_buffer"].numpy(), buf)
    assert torch.equal(ours[V // 2:], w0[V // 2:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_adam_dense_gradient_is_every_row(dtype):
    # torch refuses dense gradients; ours applies the same formula to every row, which is
    # torch's result for a sparse gradient naming every row.
    gen = torch.Generator().manual_seed(5)
    w0 = init_weight(dtype)
    gs = [torch.randn(V, D, generator=gen, dtype=dtype) for _ in range(3)]
    ours, _ = run(fo.SparseAdam, w0, gs, lr=0.02)
    ref, _ = run(torch.optim.SparseAdam, w0, [g.to_sparse(1) for g in gs], lr=0.02)
    torch.testing.assert_close(ours, ref, **tight(dtype))


# -- mixed groups, schedulers, state_dict ----------------------------------------------

class Model(torch.nn.Module):
    def __init__(self, dtype, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(V, D, sparse=True, dtype=dtype)
        self.lin = torch.nn.Linear(D, 1, dtype=dtype)

    def forward(self, ids):
        return self.lin(self.emb(ids)).sum()


def batches(n, seed=7):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (16,), generator=gen) for _ in range(n)]


def train(model, opt, data, sched=None):
    for ids in data:
        opt.zero_grad()
        model(ids).backward()
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours_cls,torch_cls,kw", [
    (fo.Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    (fo.SGD, torch.optim.SGD, dict(lr=0.05)),
])
def test_mixed_sparse_dense_group_equals_torch(ours_cls, torch_cls, kw, dtype):
    m1, m2 = Model(dtype), Model(dtype)
    data = batches(4)
    train(m1, ours_cls(m1.parameters(), **kw), data)
    train(m2, torch_cls(m2.parameters(), foreach=False, **kw), data)
    torch.testing.assert_close(m1.emb.weight, m2.emb.weight, **tight(dtype))
    # The dense parameters see the same gradients as torch's; the embedding's few-ulp
    # differences reach them through the forward pass of later steps.
    torch.testing.assert_close(m1.lin.weight, m2.lin.weight, **tight(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_adam_group_is_sparse_lazy_plus_torch_dense(dtype):
    m1, m2 = Model(dtype), Model(dtype)
    data = batches(4)
    train(m1, fo.Adam(m1.parameters(), lr=0.01), data)
    # The same in two optimizers: ours on the embedding alone, torch's on the Linear.
    o_sparse = fo.Adam(m2.emb.parameters(), lr=0.01)
    o_dense = torch.optim.Adam(m2.lin.parameters(), lr=0.01, foreach=False)
    for ids in data:
        m2.zero_grad()
        m2(ids).backward()
        o_sparse.step()
        o_dense.step()
    assert torch.equal(m1.emb.weight, m2.emb.weight)
    assert torch.equal(m1.lin.weight, m2.lin.weight)
    assert torch.equal(m1.lin.bias, m2.lin.bias)


@pytest.mark.parametrize("cls,kw", [
    (fo.SparseAdam, dict(lr=0.01)), (fo.Adam, dict(lr=0.01, weight_decay=0.1)),
    (fo.AdamW, dict(lr=0.01)), (fo.Adagrad, dict(lr=0.1, lr_decay=0.1)),
    (fo.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
])
def test_state_dict_round_trip_weights_only(cls, kw):
    dtype = torch.float32
    data = batches(6)
    if cls is fo.SparseAdam:  # SparseAdam for the embedding, as torch users write it
        make = lambda m: cls(m.parameters(), **kw)  # noqa: E731
    else:
        make = lambda m: cls(m.parameters(), **kw)  # noqa: E731
    full = Model(dtype)
    train(full, make(full), data)

    first = Model(dtype)
    opt = make(first)
    train(first, opt, data[:3])
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    second = Model(dtype, seed=99)
    second.load_state_dict(ck["model"])
    opt2 = make(second)
    opt2.load_state_dict(ck["opt"])
    train(second, opt2, data[3:])
    for a, b in zip(full.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_adam_state_dict_loads_into_torch_adam():
    # Same keys and types as torch's: a checkpoint moves between the two.
    m1, m2 = Model(torch.float32), Model(torch.float32)
    m1.emb.weight.requires_grad_(False)
    m2.emb.weight.requires_grad_(False)
    data = batches(4)
    o1 = fo.Adam([m1.lin.weight, m1.lin.bias], lr=0.01)
    train(m1, o1, data[:2])
    o2 = torch.optim.Adam([m2.lin.weight, m2.lin.bias], lr=0.01, foreach=False)
    buf = io.BytesIO()
    torch.save([m1.state_dict(), o1.state_dict()], buf)  # a copy: load_state_dict aliases
    buf.seek(0)
    msd, osd = torch.load(buf, weights_only=True)
    m2.load_state_dict(msd)
    o2.load_state_dict(osd)
    train(m1, o1, data[2:])
    train(m2, o2, data[2:])
    assert torch.equal(m1.lin.weight, m2.lin.weight)


def test_step_lr_scheduler_changes_lr():
    dtype = torch.float64
    m1, m2 = Model(dtype), Model(dtype)
    data = batches(6)
    o1 = fo.SGD(m1.parameters(), lr=0.5)
    o2 = torch.optim.SGD(m2.parameters(), lr=0.5, foreach=False)
    s1 = torch.optim.lr_scheduler.StepLR(o1, step_size=2, gamma=0.1)
    s2 = torch.optim.lr_scheduler.StepLR(o2, step_size=2, gamma=0.1)
    train(m1, o1, data, s1)
    train(m2, o2, data, s2)
    assert o1.param_groups[0]["lr"] == pytest.approx(0.5e-3)
    torch.testing.assert_close(m1.emb.weight, m2.emb.weight, rtol=1e-14, atol=1e-15)
    # ... and the lr matters: without the scheduler the result differs.
    m3 = Model(dtype)
    train(m3, fo.SGD(m3.parameters(), lr=0.5), data)
    assert not torch.allclose(m1.emb.weight, m3.emb.weight)


def test_empty_sparse_gradient_counts_a_step():
    w0 = init_weight(torch.float32)
    g = torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.int64),
                                torch.zeros((0, D)), (V, D))
    ours, opt = run(fo.SparseAdam, w0, [g])
    ref, opt2 = run(torch.optim.SparseAdam, w0, [g])
    assert torch.equal(ours, w0) and torch.equal(ref, w0)
    assert next(iter(opt.state.values()))["step"] == 1 == next(iter(opt2.state.values()))["step"]


# -- clip_grad_norm_ --------------------------------------------------------------------

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_mixed(norm_type, max_norm):
    dtype = torch.float64
    g_sparse = sparse_grads(dtype, 1)[0]
    p1 = torch.nn.Parameter(init_weight(dtype))
    p2 = torch.nn.Parameter(init_weight(dtype, shape=(3, 4)))
    p3 = torch.nn.Parameter(init_weight(dtype, shape=(2,)))  # no gradient
    p1.grad = g_sparse.clone()
    p2.grad = torch.randn(3, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))
    dense = [p1.grad.to_dense().numpy().ravel(), p2.grad.numpy().ravel().copy()]
    flat = np.concatenate(dense)
    want = np.abs(flat).max() if norm_type == math.inf else \
        (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    total = clip_grad_norm_([p1, p2, p3], max_norm, norm_type)
    assert total.item() == pytest.approx(want, rel=1e-12)
    coef = min(1.0, max_norm / (want + 1e-6))
    np.testing.assert_allclose(p1.grad.to_dense().numpy().ravel(), dense[0] * coef,
                               rtol=1e-12)
    np.testing.assert_allclose(p2.grad.numpy().ravel(), dense[1] * coef, rtol=1e-12)
    assert p3.grad is None
    if max_norm < 1:
        assert not np.allclose(p2.grad.numpy().ravel(), dense[1])


def test_clip_grad_norm_dense_equals_torch():
    gen = torch.Generator().manual_seed(2)
    ps = [torch.nn.Parameter(torch.zeros(4, 5)) for _ in range(2)]
    qs = [torch.nn.Parameter(torch.zeros(4, 5)) for _ in range(2)]
    for p, q in zip(ps, qs):
        p.grad = torch.randn(4, 5, generator=gen)
        q.grad = p.grad.clone()
    t1 = clip_grad_norm_(ps, 0.3)
    t2 = torch.nn.utils.clip_grad_norm_(qs, 0.3)
    torch.testing.assert_close(t1, t2)
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.grad, q.grad)


# -- bad inputs: clear errors, nothing changed -------------------------------------------

def snapshot(opt, params):
    return ([p.detach().clone() for p in params],
            {id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v)
                     for k, v in opt.state[p].items()} for p in params if p in opt.state})


def assert_unchanged(before, opt, params):
    ws, states = before
    for w, p in zip(ws, params):
        assert torch.equal(w, p.detach())
    for p in params:
        old = states.get(id(p), {})
        new = dict(opt.state[p]) if p in opt.state else {}
        assert old.keys() == new.keys()
        for k in old:
            assert torch.equal(torch.as_tensor(old[k]), torch.as_tensor(new[k])), k


def bad_grad(kind, dtype=torch.float32):
    if kind == "id too large":
        return torch.sparse_coo_tensor(torch.tensor([[1, V]]), torch.ones(2, D, dtype=dtype),
                                       (V, D), check_invariants=False), IndexError
    if kind == "negative id":
        return torch.sparse_coo_tensor(torch.tensor([[-1, 2]]), torch.ones(2, D, dtype=dtype),
                                       (V, D), check_invariants=False), IndexError
    if kind == "dtype":
        return torch.sparse_coo_tensor(torch.tensor([[1, 2]]),
                                       torch.ones(2, D, dtype=torch.float64),
                                       (V, D)), TypeError
    if kind == "shape":
        return torch.sparse_coo_tensor(torch.tensor([[1, 2]]), torch.ones(2, D + 1),
                                       (V, D + 1)), ValueError
    if kind == "dense shape":
        return torch.ones(V, D + 1), ValueError
    if kind == "dense dtype":
        return torch.ones(V, D, dtype=torch.float64), TypeError
    if kind == "sparse_dim 2":
        return torch.ones(V, D).to_sparse(2), ValueError
    raise AssertionError(kind)


def set_grad(p, g):
    """p.grad = g, also for a g torch's setter refuses (another shape or dtype): such
    gradients arrive through `p.grad.data = ...` or a parameter whose data changed."""
    try:
        p.grad = g
    except RuntimeError:
        if g.layout == torch.sparse_coo:
            p.grad = torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.int64),
                                             torch.zeros(0, *p.shape[1:], dtype=p.dtype),
                                             p.shape)
        else:
            p.grad = torch.zeros_like(p)
        p.grad.data = g
    assert p.grad.shape == g.shape and p.grad.dtype == g.dtype


BAD = ["id too large", "negative id", "dtype", "shape", "dense shape", "dense dtype",
       "sparse_dim 2"]


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("cls,kw", [
    (fo.SparseAdam, {}), (fo.Adam, {}), (fo.AdamW, {}), (fo.Adagrad, {}),
    (fo.SGD, dict(lr=0.1, momentum=0.9)), (fo.SGD, dict(lr=0.1)),
])
def test_bad_gradient_changes_nothing(cls, kw, kind):
    good = sparse_grads(torch.float32, 2)
    p1 = torch.nn.Parameter(init_weight(torch.float32))
    p2 = torch.nn.Parameter(init_weight(torch.float32, seed=3))
    dense = torch.nn.Parameter(init_weight(torch.float32, seed=4, shape=(3,)))
    params = [p1, dense, p2]
    opt = cls(params, **kw)
    p1.grad, p2.grad, dense.grad = good[0], good[1], torch.ones(3)
    opt.step()
    before = snapshot(opt, params)
    p1.grad = good[1].clone()
    dense.grad = torch.ones(3)
    bad, exc = bad_grad(kind)
    set_grad(p2, bad)  # the LAST parameter is bad: p1's update must not run
    with pytest.raises(exc):
        opt.step()
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("cls,kw", [(fo.SparseAdam, {}), (fo.SGD, dict(lr=0.1))])
def test_bad_ids_message_names_the_id(cls, kw):
    p = torch.nn.Parameter(init_weight(torch.float32))
    opt = cls([p], **kw)
    p.grad, _ = bad_grad("id too large")
    with pytest.raises(IndexError, match=rf"\[1\] = {V} is out of range .* {V} rows"):
        opt.step()
    assert len(opt.state.get(p, {})) == 0
    assert torch.equal(p.detach(), init_weight(torch.float32))


@pytest.mark.parametrize("cls,kw", [(fo.Adam, {}), (fo.SGD, dict(lr=0.1))])
def test_ctrl_c_during_a_step_arrives_after_the_whole_step(cls, kw, monkeypatch):
    import signal
    from fastembed.torch import _native

    grads = sparse_grads(torch.float32, 1)
    ps = [torch.nn.Parameter(init_weight(torch.float32, seed=s)) for s in (1, 2)]
    qs = [torch.nn.Parameter(init_weight(torch.float32, seed=s)) for s in (1, 2)]
    ref = cls(qs, **kw)
    for q in qs:
        q.grad = grads[0].clone()
    ref.step()
    opt = cls(ps, **kw)
    for p in ps:
        p.grad = grads[0].clone()
    calls = []

    def interrupting(real):
        def f(*a, **k):
            if not calls:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first native write
            calls.append(1)
            return real(*a, **k)
        return f

    monkeypatch.setattr(_native, "apply", interrupting(_native.apply))
    monkeypatch.setattr(_native, "scatter", interrupting(_native.scatter))
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    assert len(calls) == 2  # both parameters were updated before the interrupt arrived
    for p, q in zip(ps, qs):
        assert torch.equal(p, q)


def test_non_contiguous_parameter_refused():
    leaf = torch.nn.Parameter(torch.zeros(V, D).t().contiguous().t())
    assert not leaf.is_contiguous()
    opt = fo.SGD([leaf], lr=0.1)
    leaf.grad = torch.ones(V, D).t().contiguous().t()
    with pytest.raises(ValueError, match="contiguous"):
        opt.step()
    assert torch.equal(leaf.detach(), torch.zeros(V, D))


def test_half_parameter_with_sparse_grad_refused():
    p = torch.nn.Parameter(torch.zeros(V, D, dtype=torch.float16))
    opt = fo.Adam([p])
    p.grad = torch.sparse_coo_tensor(torch.tensor([[1]]), torch.ones(1, D, dtype=torch.float16),
                                     (V, D))
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.step()
    assert len(opt.state[p]) == 0


def test_bad_hyperparameter_in_a_group_changes_nothing():
    g = sparse_grads(torch.float32, 1)[0]
    p1 = torch.nn.Parameter(init_weight(torch.float32))
    p2 = torch.nn.Parameter(init_weight(torch.float32, seed=5))
    opt = fo.Adam([{"params": [p1]}, {"params": [p2]}], lr=0.01)
    p1.grad, p2.grad = g.clone(), g.clone()
    opt.param_groups[1]["lr"] = float("nan")
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert torch.equal(p1.detach(), init_weight(torch.float32))
    assert len(opt.state) == 0 or all(len(s) == 0 for s in opt.state.values())
    opt.param_groups[1]["amsgrad"] = True
    opt.param_groups[1]["lr"] = 0.01
    with pytest.raises(ValueError, match="amsgrad"):
        opt.step()


@pytest.mark.parametrize("cls,kw", [
    (fo.Adam, dict(amsgrad=True)), (fo.Adam, dict(maximize=True)),
    (fo.Adam, dict(foreach=True)), (fo.Adam, dict(capturable=True)),
    (fo.Adam, dict(differentiable=True)), (fo.Adam, dict(fused=True)),
    (fo.AdamW, dict(amsgrad=True)), (fo.SparseAdam, dict(maximize=True)),
    (fo.Adagrad, dict(maximize=True)), (fo.Adagrad, dict(fused=True)),
    (fo.SGD, dict(maximize=True)), (fo.SGD, dict(foreach=True)),
    (fo.SGD, dict(differentiable=True)),
])
def test_unsupported_arguments_raise_at_construction(cls, kw):
    p = torch.nn.Parameter(torch.zeros(3))
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"{name}=True.*torch.optim.{cls.__name__}"):
        cls([p], **kw)


def test_defaults_and_types_are_torchs():
    p = torch.nn.Parameter(torch.zeros(3))
    for ours, theirs in [(fo.SparseAdam, torch.optim.SparseAdam), (fo.Adam, torch.optim.Adam),
                         (fo.AdamW, torch.optim.AdamW), (fo.Adagrad, torch.optim.Adagrad),
                         (fo.SGD, torch.optim.SGD)]:
        o1, o2 = ours([p]), theirs([p])
        assert isinstance(o1, torch.optim.Optimizer)
        assert o1.defaults == o2.defaults, ours.__name__


@pytest.mark.parametrize("cls,kw", [
    (fo.SparseAdam, {}), (fo.AdamW, dict(weight_decay=0.1)), (fo.Adagrad, {}),
    (fo.SGD, dict(lr=0.1)), (fo.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
])
def test_same_bits_for_any_thread_count(cls, kw):
    import fastembed as fe

    grads = sparse_grads(torch.float32, 3, v=6000, d=64, batch=4000)  # split across threads
    w0 = init_weight(torch.float32, shape=(6000, 64))
    before = fe.get_num_threads()
    try:
        out = []
        for n in (1, 4):
            fe.set_num_threads(n)
            out.append(run(cls, w0, grads, **kw)[0])
    finally:
        fe.set_num_threads(before)
    assert torch.equal(out[0], out[1])
