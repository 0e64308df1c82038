"""fe.optimizers against torch and against the Keras formulas written in numpy.

References:
- lazy Adam: torch.optim.SparseAdam(eps=1e-7) step for step (uncoalesced grads);
- Adagrad: torch.optim.Adagrad(initial_accumulator_value=0.1, eps=1e-7) with sparse grads
  (torch puts eps outside the root, Keras inside: equal to float32 precision);
- SGD: torch SGD (sparse grads without momentum, dense grads with momentum / nesterov);
- lazy=False and dense variables: the Keras formulas in float64 numpy below.
"""
from __future__ import annotations

import json
import math
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastembed as fe
from fastembed.optimizers import SGD, Adagrad, Adam

EPS = 1e-7
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")


def _torch():
    return pytest.importorskip("torch")


def sparse_grad(rng, V, D, K, dtype=np.float32, hot=None):
    """K ids with duplicates (a few hot rows drawn often), unsorted."""
    ids = rng.integers(0, V if hot is None else hot, size=K)
    vals = rng.standard_normal((K, D)).astype(dtype)
    return fe.SparseGradient(ids, vals, (V, D))


def make_emb(rng, V, D, dtype=np.float32):
    w = rng.standard_normal((V, D)).astype(dtype)
    return fe.Embedding(V, D, weights=[w], dtype=dtype)


def torch_sparse(t, g):
    return t.sparse_coo_tensor(t.from_numpy(g.indices.copy())[None],
                               t.from_numpy(g.values.copy()), g.dense_shape,
                               check_invariants=True)


def summed(g):
    """Dense (V, D) float64 sum of a sparse gradient (duplicates added)."""
    out = np.zeros(g.dense_shape, np.float64)
    np.add.at(out, g.indices, g.values.astype(np.float64))
    return out


def touched(g):
    mask = np.zeros(g.dense_shape[0], bool)
    mask[g.indices] = True
    return mask


# ---------------------------------------------------------------------- numpy (Keras)

class KerasRef:
    """The DESIGN.md formulas in float64, dense or lazy (rows of the gradient only)."""

    def __init__(self, kind, w, lazy, **hp):
        self.kind, self.w, self.lazy, self.hp = kind, w.astype(np.float64), lazy, hp
        self.s0 = np.full_like(self.w, hp.get("init", 0.0))
        self.s1 = np.zeros_like(self.w)
        self.t = 0

    def step(self, g, mask=None):
        """g: dense float64 gradient; mask: the rows to update (None = all)."""
        hp = self.hp
        rows = slice(None) if mask is None or not self.lazy else mask
        w, s0, s1, g = self.w[rows], self.s0[rows], self.s1[rows], g[rows]
        self.t += 1
        if self.kind == "sgd":
            mom = hp.get("momentum", 0.0)
            if mom == 0.0:
                w = w - hp["lr"] * g
            else:
                s0 = mom * s0 - hp["lr"] * g
                w = w + (mom * s0 - hp["lr"] * g if hp.get("nesterov") else s0)
        elif self.kind == "adagrad":
            s0 = s0 + g * g
            w = w - hp["lr"] * g / np.sqrt(s0 + hp["eps"])
        else:
            b1, b2 = hp["b1"], hp["b2"]
            s0 = b1 * s0 + (1 - b1) * g
            s1 = b2 * s1 + (1 - b2) * g * g
            alpha = hp["lr"] * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
            w = w - alpha * s0 / (np.sqrt(s1) + hp["eps"])
        self.w[rows], self.s0[rows], self.s1[rows] = w, s0, s1


# ------------------------------------------------------------------------- vs torch

# Each case: the optimizers on both sides, the run (seed, table, gradients per step) and
# the checks after every step: the table and the named slots against torch's state, each
# with its own tolerance.
TORCH_CASES = {
    "lazy_adam_vs_sparse_adam": dict(
        seed=1, V=300, D=16, K=200, steps=6, hot=lambda step: 120 if step % 2 else None,
        ours=lambda: Adam(learning_rate=0.01),
        theirs=lambda torch, p: torch.optim.SparseAdam([p], lr=0.01, eps=EPS),
        table_tol=dict(rtol=1e-5, atol=1e-6),
        slots=[("m", "exp_avg", dict(rtol=1e-5, atol=1e-7)),
               ("v", "exp_avg_sq", dict(rtol=1e-5, atol=1e-9))],
        after=lambda opt, emb: opt.get_step(emb) == 6),
    "adagrad_vs_sparse_adagrad": dict(
        seed=2, V=200, D=8, K=150, steps=5, hot=lambda step: 60,
        ours=lambda: Adagrad(learning_rate=0.05),
        theirs=lambda torch, p: torch.optim.Adagrad([p], lr=0.05,
                                                    initial_accumulator_value=0.1, eps=EPS),
        table_tol=dict(rtol=1e-5, atol=1e-6),
        slots=[("accumulator", "sum", dict(rtol=1e-5))],
        after=None),
    "sgd_vs_sparse_sgd": dict(
        seed=3, V=100, D=4, K=80, steps=4, hot=lambda step: 30,
        ours=lambda: SGD(learning_rate=0.1),
        theirs=lambda torch, p: torch.optim.SGD([p], lr=0.1),
        table_tol=dict(rtol=1e-6, atol=1e-6),
        slots=[],
        after=lambda opt, emb: opt.variables == [emb] and opt.get_config()["momentum"] == 0.0),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_sparse_step_equals_torch(case):
    c = TORCH_CASES[case]
    torch = _torch()
    rng = np.random.default_rng(c["seed"])
    V, D = c["V"], c["D"]
    emb = make_emb(rng, V, D)
    p = torch.nn.Parameter(torch.from_numpy(emb.embeddings.copy()))
    topt = c["theirs"](torch, p)
    opt = c["ours"]()
    for step in range(c["steps"]):
        g = sparse_grad(rng, V, D, c["K"], hot=c["hot"](step))
        opt.apply_gradients([(g, emb)])
        p.grad = torch_sparse(torch, g)
        topt.step()
        np.testing.assert_allclose(emb.embeddings, p.detach().numpy(), **c["table_tol"])
        for ours, theirs, tol in c["slots"]:
            np.testing.assert_allclose(opt.get_slot(emb, ours), topt.state[p][theirs].numpy(),
                                       **tol)
    if c["after"] is not None:
        assert c["after"](opt, emb)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_dense_equals_torch(nesterov):
    """Dense Keras momentum (v = m*v - lr*g) equals torch's (buf = m*buf + g) for constant lr."""
    torch = _torch()
    rng = np.random.default_rng(4)
    V, D = 50, 6
    emb = make_emb(rng, V, D)
    p = torch.nn.Parameter(torch.from_numpy(emb.embeddings.copy()))
    topt = torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=nesterov)
    opt = SGD(learning_rate=0.05, momentum=0.9, nesterov=nesterov, lazy=False)
    for _ in range(5):
        g = sparse_grad(rng, V, D, 30)
        opt.apply_gradients([(g, emb)])  # sparse grad, dense semantics
        p.grad = torch.from_numpy(g.to_dense())
        topt.step()
        np.testing.assert_allclose(emb.embeddings, p.detach().numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- vs the Keras formulas

CASES = [
    ("adam", lambda lazy: Adam(0.02, 0.8, 0.99, 1e-6, lazy=lazy),
     dict(lr=0.02, b1=0.8, b2=0.99, eps=1e-6)),
    ("adagrad", lambda lazy: Adagrad(0.1, 0.2, 1e-6), dict(lr=0.1, init=0.2, eps=1e-6)),
    ("sgd", lambda lazy: SGD(0.1, lazy=lazy), dict(lr=0.1)),
    ("sgd", lambda lazy: SGD(0.1, momentum=0.7, lazy=lazy), dict(lr=0.1, momentum=0.7)),
    ("sgd", lambda lazy: SGD(0.1, momentum=0.7, nesterov=True, lazy=lazy),
     dict(lr=0.1, momentum=0.7, nesterov=True)),
]
CASE_IDS = ["adam", "adagrad", "sgd", "momentum", "nesterov"]


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sparse_updates_equal_keras_formulas(case, lazy):
    kind, make, hp = case
    rng = np.random.default_rng(5)
    V, D = 64, 5
    emb = make_emb(rng, V, D, dtype=np.float64)
    ref = KerasRef(kind, emb.embeddings, lazy, **hp)
    opt = make(lazy)
    for _ in range(5):
        g = sparse_grad(rng, V, D, 40, dtype=np.float64, hot=40)
        opt.apply_gradients([(g, emb)])
        ref.step(summed(g), touched(g))
        np.testing.assert_allclose(emb.embeddings, ref.w, rtol=1e-12, atol=1e-13)
        if kind != "sgd" or hp.get("momentum"):
            first = {"adam": "m", "adagrad": "accumulator", "sgd": "momentum"}[kind]
            np.testing.assert_allclose(opt.get_slot(emb, first), ref.s0, rtol=1e-12,
                                       atol=1e-13)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5)])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dense_variables_equal_keras_formulas(case, shape):
    kind, make, hp = case
    rng = np.random.default_rng(6)
    w = rng.standard_normal(shape)
    ref = KerasRef(kind, w, False, **hp)
    opt = make(True)
    for _ in range(4):
        g = rng.standard_normal(shape)
        opt.apply_gradients([(g, w)])
        ref.step(g)
        np.testing.assert_allclose(w, ref.w, rtol=1e-12, atol=1e-13)


def test_dense_gradient_for_an_embedding_is_a_dense_update():
    rng = np.random.default_rng(7)
    emb = make_emb(rng, 20, 3)
    ref = KerasRef("adam", emb.embeddings, False, lr=0.01, b1=0.9, b2=0.999, eps=EPS)
    opt = Adam(0.01)
    for _ in range(3):
        g = rng.standard_normal((20, 3)).astype(np.float32)
        opt.apply_gradients([(g, emb)])
        ref.step(g.astype(np.float64))
    np.testing.assert_allclose(emb.embeddings, ref.w, rtol=1e-5, atol=1e-6)


def test_lazy_leaves_rows_without_gradient_untouched_bitwise():
    rng = np.random.default_rng(8)
    V, D = 500, 8
    for opt in (Adam(0.01), SGD(0.1, momentum=0.9), Adagrad(0.1), SGD(0.1)):
        emb = make_emb(rng, V, D)
        opt.apply_gradients([(sparse_grad(rng, V, D, 300), emb)])  # state everywhere
        before_w = emb.embeddings.copy()
        before_s = {k: v.copy() for k, v in opt.get_state()["arrays"].items()}
        g = sparse_grad(rng, V, D, 50, hot=100)
        opt.apply_gradients([(g, emb)])
        off = ~touched(g)
        assert emb.embeddings[off].tobytes() == before_w[off].tobytes()
        assert not np.array_equal(emb.embeddings[~off], before_w[~off])
        for k, v in opt.get_state()["arrays"].items():
            assert v[off].tobytes() == before_s[k][off].tobytes(), (type(opt).__name__, k)


def test_lazy_false_decays_every_row():
    rng = np.random.default_rng(9)
    emb = make_emb(rng, 40, 4)
    opt = Adam(0.01, lazy=False)
    opt.apply_gradients([(sparse_grad(rng, 40, 4, 40), emb)])
    m0 = opt.get_slot(emb, "m").copy()
    w0 = emb.embeddings.copy()
    g = fe.SparseGradient([3], np.ones((1, 4), np.float32), (40, 4))
    opt.apply_gradients([(g, emb)])
    rows = np.setdiff1d(np.arange(40), [3])
    nz = rows[np.any(m0[rows] != 0, axis=1)]
    np.testing.assert_allclose(opt.get_slot(emb, "m")[nz], np.float32(0.9) * m0[nz], rtol=1e-6)
    assert np.all(emb.embeddings[nz] != w0[nz])


def test_frozen_embedding_never_changes():
    rng = np.random.default_rng(10)
    emb = make_emb(rng, 30, 4)
    emb.trainable = False
    before = emb.embeddings.copy()
    w = rng.standard_normal(5)
    w0 = w.copy()
    opt = Adam(0.1)
    gw = rng.standard_normal(5)
    opt.apply_gradients([(sparse_grad(rng, 30, 4, 10), emb), (gw, w)])
    assert emb.embeddings.tobytes() == before.tobytes()
    assert opt.variables == [w] and not np.array_equal(w, w0)
    frozen = fe.Embedding.from_pretrained(before)
    opt.apply_gradients([(np.ones((30, 4), np.float32), frozen)])
    assert frozen.embeddings.tobytes() == before.tobytes()


def test_empty_gradient_changes_nothing():
    rng = np.random.default_rng(11)
    emb = make_emb(rng, 10, 3)
    opt = Adam(0.1)
    opt.apply_gradients([(sparse_grad(rng, 10, 3, 4), emb)])
    before = emb.embeddings.copy()
    state = opt.get_state()
    empty = fe.SparseGradient(np.zeros(0, np.int64), np.zeros((0, 3), np.float32), (10, 3))
    opt.apply_gradients([(empty, emb)])
    assert emb.embeddings.tobytes() == before.tobytes()
    assert opt.get_step(emb) == 1
    other = make_emb(rng, 10, 3)
    opt.apply_gradients([(empty, other)])
    assert opt.variables == [emb]
    assert_same_state(state, opt.get_state())


# ------------------------------------------------------------------------------ errors

def assert_same_state(a, b):
    assert a["config"] == b["config"]
    assert sorted(a["arrays"]) == sorted(b["arrays"])
    for k in a["arrays"]:
        assert a["arrays"][k].tobytes() == b["arrays"][k].tobytes(), k


def _bad_ids(rng):
    g = sparse_grad(rng, 20, 3, 6)
    g.indices = g.indices.copy()
    g.indices[4] = 20  # after construction: the optimizer must check again
    return g, IndexError, r"indices\[4\] = 20"


def _negative_ids(rng):
    g = sparse_grad(rng, 20, 3, 6)
    g.indices = g.indices.copy()
    g.indices[-1] = -1
    return g, IndexError, r"indices\[5\] = -1"


def _bad_shape(rng):
    return sparse_grad(rng, 21, 3, 6), ValueError, "dense_shape"


def _bad_dtype(rng):
    g = sparse_grad(rng, 20, 3, 6)
    g.values = g.values.astype(np.float64)
    return g, TypeError, "float32"


def _bad_dense_shape(rng):
    return np.ones((20, 4), np.float32), ValueError, "shape"


def _bad_dense_dtype(rng):
    return np.ones((20, 3), np.float64), TypeError, "dtype"


def _bad_values_shape(rng):
    g = sparse_grad(rng, 20, 3, 6)
    g.values = g.values[:5]
    return g, ValueError, "values"


@pytest.mark.parametrize("make_bad", [_bad_ids, _negative_ids, _bad_shape, _bad_dtype,
                                      _bad_dense_shape, _bad_dense_dtype, _bad_values_shape])
@pytest.mark.parametrize("make_opt", [lambda: Adam(0.1), lambda: Adagrad(0.1),
                                      lambda: SGD(0.1, momentum=0.5)],
                         ids=["adam", "adagrad", "momentum"])
def test_errors_leave_everything_unchanged(make_opt, make_bad):
    rng = np.random.default_rng(12)
    emb, emb2 = make_emb(rng, 20, 3), make_emb(rng, 20, 3)
    head = rng.standard_normal((3, 2)).astype(np.float32)
    opt = make_opt()
    opt.apply_gradients([(sparse_grad(rng, 20, 3, 5), emb),
                         (rng.standard_normal((3, 2)).astype(np.float32), head)])
    snap = [emb.embeddings.copy(), emb2.embeddings.copy(), head.copy()]
    state = opt.get_state()
    bad, exc, match = make_bad(rng)
    good = sparse_grad(rng, 20, 3, 5)
    # The bad pair comes last: the good pairs before it must not have been applied.
    with pytest.raises(exc, match=match):
        opt.apply_gradients([(good, emb), (np.ones((3, 2), np.float32), head),
                             (good, emb2), (bad, emb2)])
    for a, b in zip(snap, [emb.embeddings, emb2.embeddings, head]):
        assert a.tobytes() == b.tobytes()
    assert_same_state(state, opt.get_state())
    assert opt.get_step(emb) == 1 and opt.get_step(emb2) == 0


def test_read_only_table_refused(tmp_path):
    rng = np.random.default_rng(13)
    emb = make_emb(rng, 20, 3)
    emb.save(tmp_path / "m")
    ro = fe.Embedding.load(tmp_path / "m", mmap_mode="r")
    ro.trainable = True
    before = np.array(ro.embeddings)
    opt = Adam(0.1)
    with pytest.raises(ValueError, match="read-only"):
        opt.apply_gradients([(sparse_grad(rng, 20, 3, 5), emb), (sparse_grad(rng, 20, 3, 5), ro)])
    assert np.array_equal(np.asarray(ro.embeddings), before)
    assert opt.variables == [] and opt.get_step(emb) == 0
    w = np.zeros(4)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.apply_gradients([(np.ones(4), w)])
    strided = np.zeros((4, 4))[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        opt.apply_gradients([(np.ones((4, 2)), strided)])


def test_bad_arguments():
    with pytest.raises(ValueError):
        Adam(learning_rate=0)
    with pytest.raises(ValueError):
        Adam(beta_1=1.0)
    with pytest.raises(ValueError):
        SGD(momentum=-0.1)
    with pytest.raises(ValueError):
        Adagrad(initial_accumulator_value=-1)
    with pytest.raises(TypeError, match="Embedding"):
        Adam().apply_gradients([(np.ones(3), [1.0, 2.0, 3.0])])
    with pytest.raises(TypeError, match="pairs"):
        Adam().apply_gradients([np.ones(3)])
    with pytest.raises(TypeError, match="float"):
        Adam().apply_gradients([(np.ones(3), np.zeros(3, np.int64))])


# ---------------------------------------------------- determinism, state, pickling

def _train(opt, emb, head, grads):
    for g, gh in grads:
        opt.apply_gradients([(g, emb), (gh, head)])


def _grads(seed, V, D, n=3, K=6000):
    rng = np.random.default_rng(seed)
    return [(sparse_grad(rng, V, D, K, hot=V // 3), rng.standard_normal((D, 3)).astype(np.float32))
            for _ in range(n)]


@pytest.mark.parametrize("make_opt", [lambda: Adam(0.01), lambda: Adam(0.01, lazy=False),
                                      lambda: Adagrad(0.1), lambda: SGD(0.1, momentum=0.9),
                                      lambda: SGD(0.1, momentum=0.9, lazy=False)],
                         ids=["adam", "adam-dense", "adagrad", "momentum", "momentum-dense"])
def test_deterministic_for_any_thread_count(make_opt, threads):
    V, D = 20000, 64
    grads = _grads(14, V, D)
    results = []
    for n in (1, 2):
        threads(n)
        rng = np.random.default_rng(15)
        emb = make_emb(rng, V, D)
        head = rng.standard_normal((D, 3)).astype(np.float32)
        opt = make_opt()
        _train(opt, emb, head, grads)
        results.append((emb.embeddings.tobytes(), head.tobytes(),
                        [a.tobytes() for a in opt.get_state()["arrays"].values()]))
    assert results[0] == results[1]


@pytest.mark.parametrize("make_opt", [lambda: Adam(0.01), lambda: Adagrad(0.1),
                                      lambda: SGD(0.1, momentum=0.9, nesterov=True)])
def test_state_round_trip_continues_identically(make_opt):
    V, D = 100, 8
    grads = _grads(16, V, D, n=6, K=50)
    rng = np.random.default_rng(17)
    emb = make_emb(rng, V, D)
    head = rng.standard_normal((D, 3)).astype(np.float32)
    opt = make_opt()
    _train(opt, emb, head, grads[:3])
    state = opt.get_state()
    json.dumps(state["config"])
    emb2 = fe.Embedding(V, D, weights=[emb.embeddings.copy()])
    head2 = head.copy()
    opt2 = type(opt).from_config(opt.get_config())
    opt2.set_state(state, variables=[emb2, head2])
    _train(opt, emb, head, grads[3:])
    _train(opt2, emb2, head2, grads[3:])
    assert emb.embeddings.tobytes() == emb2.embeddings.tobytes()
    assert head.tobytes() == head2.tobytes()
    assert_same_state(opt.get_state(), opt2.get_state())
    with pytest.raises(ValueError):
        type(opt).from_config(opt.get_config()).set_state(state, variables=[emb2])


def test_pickle_keeps_the_pairing():
    V, D = 60, 4
    grads = _grads(18, V, D, n=4, K=30)
    rng = np.random.default_rng(19)
    emb = make_emb(rng, V, D)
    head = rng.standard_normal((D, 3)).astype(np.float32)
    opt = Adam(0.05)
    _train(opt, emb, head, grads[:2])
    opt2, emb2, head2 = pickle.loads(pickle.dumps((opt, emb, head)))
    assert opt2.variables[0] is emb2 and opt2.variables[1] is head2
    _train(opt, emb, head, grads[2:])
    _train(opt2, emb2, head2, grads[2:])
    assert emb.embeddings.tobytes() == emb2.embeddings.tobytes()
    assert head.tobytes() == head2.tobytes()
    assert opt2.get_step(emb2) == 4 and len(opt2.variables) == 2


def test_config_round_trip():
    for opt in (SGD(0.2, momentum=0.5, nesterov=True, lazy=False), Adagrad(0.3, 0.5, 1e-5),
                Adam(0.004, 0.8, 0.95, 1e-6, lazy=False)):
        cfg = opt.get_config()
        again = type(opt).from_config(cfg)
        assert again.get_config() == cfg
        spec = {"class_name": type(opt).__name__, "config": cfg}
        assert fe.optimizers.get(spec).get_config() == cfg
    assert Adam().get_config() == {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                   "beta_2": 0.999, "epsilon": 1e-7, "lazy": True}
    assert SGD().learning_rate == 0.01 and Adagrad().initial_accumulator_value == 0.1


def test_concurrent_calls_are_serialized():
    """Two Python threads on one optimizer: the result equals some sequential order; with
    disjoint variables every order gives the same answer."""
    V, D = 3000, 32
    ga, gb = _grads(20, V, D, n=8, K=2000), _grads(21, V, D, n=8, K=2000)
    rng = np.random.default_rng(22)
    embs = [make_emb(rng, V, D) for _ in range(2)]
    heads = [rng.standard_normal((D, 3)).astype(np.float32) for _ in range(2)]
    ref = [(fe.Embedding(V, D, weights=[e.embeddings.copy()]), h.copy())
           for e, h in zip(embs, heads)]
    opt = Adam(0.01)
    ts = [threading.Thread(target=_train, args=(opt, embs[i], heads[i], g))
          for i, g in enumerate((ga, gb))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ref_opt = Adam(0.01)
    for (e, h), g in zip(ref, (ga, gb)):
        _train(ref_opt, e, h, g)
    for i in range(2):
        assert embs[i].embeddings.tobytes() == ref[i][0].embeddings.tobytes()
        assert heads[i].tobytes() == ref[i][1].tobytes()
        assert opt.get_step(embs[i]) == 8


@settings(max_examples=min(25, settings.default.max_examples))
@given(ids=st.lists(st.integers(0, 15), min_size=1, max_size=60),
       kind=st.sampled_from(["sgd", "adagrad", "adam"]))
def test_duplicates_are_summed_first(ids, kind):
    """Heavily duplicated ids equal the update with the rows summed per id (float64)."""
    rng = np.random.default_rng(len(ids))
    V, D = 16, 3
    emb = make_emb(rng, V, D, dtype=np.float64)
    g = fe.SparseGradient(ids, rng.standard_normal((len(ids), D)), (V, D))
    hp = {"sgd": dict(lr=0.1), "adagrad": dict(lr=0.1, init=0.1, eps=EPS),
          "adam": dict(lr=0.1, b1=0.9, b2=0.999, eps=EPS)}[kind]
    ref = KerasRef(kind, emb.embeddings, True, **hp)
    opt = {"sgd": SGD(0.1), "adagrad": Adagrad(0.1), "adam": Adam(0.1)}[kind]
    opt.apply_gradients([(g, emb)])
    ref.step(summed(g), touched(g))
    np.testing.assert_allclose(emb.embeddings, ref.w, rtol=1e-12, atol=1e-12)
    if kind == "sgd":
        w = make_emb(np.random.default_rng(len(ids)), V, D, dtype=np.float64).embeddings
        np.add.at(w, g.indices, -0.1 * g.values)
        np.testing.assert_allclose(emb.embeddings, w, rtol=1e-12, atol=1e-12)


def test_memory_mapped_r_plus_table_is_updated_in_the_file(tmp_path):
    rng = np.random.default_rng(23)
    emb = make_emb(rng, 50, 4)
    emb.save(tmp_path / "m")
    mm = fe.Embedding.load(tmp_path / "m", mmap_mode="r+")
    mm.trainable = True
    g = sparse_grad(rng, 50, 4, 10)
    ref = fe.Embedding(50, 4, weights=[emb.embeddings.copy()])
    for opt, var in ((Adam(0.1), mm), (Adam(0.1), ref)):
        opt.apply_gradients([(g, var)])
    if hasattr(mm.embeddings, "flush"):
        mm.embeddings.flush()
    del mm
    again = fe.Embedding.load(tmp_path / "m")
    assert again.embeddings.tobytes() == ref.embeddings.tobytes()


def test_set_state_errors_are_value_errors_and_config_is_restored():
    emb = fe.Embedding(6, 3, seed=1)
    opt = fe.optimizers.Adam(learning_rate=0.05, beta_1=0.8)
    g = fe.SparseGradient([1, 4], np.ones((2, 3), np.float32), (6, 3))
    opt.apply_gradients([(g, emb)])
    state = opt.get_state()
    other = fe.optimizers.Adam(learning_rate=0.5)
    other.set_state(state, [emb])
    assert other.learning_rate == 0.05 and other.beta_1 == 0.8
    np.testing.assert_array_equal(other.get_slot(emb, "m"), opt.get_slot(emb, "m"))
    broken = {"config": state["config"], "arrays": {}}
    with pytest.raises(ValueError, match="does not fit"):
        fe.optimizers.Adam().set_state(broken, [emb])
    with pytest.raises(ValueError):
        fe.optimizers.Adam().set_state({"config": state["config"], "arrays": state["arrays"]},
                                       ["not a variable"])
