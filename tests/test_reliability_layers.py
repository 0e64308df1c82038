"""Reliability of the layers and optimizers (issue 15): every stateful call is all or
nothing (errors and Ctrl-C included), threads sharing a layer get their own gradients,
mistakes fail early with a message that says what to do, and callbacks inside the
caller's objects cannot break the state.
"""
from __future__ import annotations

import copy
import os
import pickle
import sys
import threading

import numpy as np
import pytest

import fastembed as fe
from fastembed import optimizers as O
from sigint_harness import run_interrupted

OPTIMIZERS = {
    "sgd_momentum": "O.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)",
    "adagrad": "O.Adagrad(learning_rate=0.05)",
    "adam_lazy": "O.Adam(learning_rate=0.01)",
    "adam_dense": "O.Adam(learning_rate=0.01, lazy=False)",
}


def _state(opt, *arrays):
    """Everything an optimizer step changes, as bytes (bit-for-bit comparisons)."""
    st = opt.get_state()
    return ([a.tobytes() for a in arrays], repr(st["config"]),
            {k: v.tobytes() for k, v in sorted(st["arrays"].items())})


# ------------------------------------------------------------------ item 1: Ctrl-C

# The child loops over whole steps until SIGINT; k counts the calls that returned.  The
# state must then be exactly that of k or k + 1 complete steps (the interrupted call
# either changed nothing or finished), replayed on a fresh copy from the same start.
_STEP_SETUP = """
from fastembed import optimizers as O
V, D, STEPS = 30000, 32, 6
def make():
    emb = fe.Embedding(V, D, seed=1)
    head = np.random.default_rng(2).standard_normal((256, 64)).astype(np.float32)
    return emb, head
rng = np.random.default_rng(3)
GRADS = []
for _ in range(STEPS):
    ids = rng.integers(0, V, size=12000)  # duplicates: the coalesce runs too
    GRADS.append((fe.SparseGradient(ids, rng.standard_normal((ids.size, D)).astype(np.float32),
                                    (V, D)),
                  rng.standard_normal((256, 64)).astype(np.float32)))
def step(opt, emb, head, i):
    g, gh = GRADS[i % STEPS]
    opt.apply_gradients([(g, emb), (gh, head)])
def whole(opt, emb, head):
    st = opt.get_state()
    return (emb.embeddings.tobytes(), head.tobytes(), repr(st["config"]),
            {k: v.tobytes() for k, v in sorted(st["arrays"].items())})
emb, head = make()
opt = __OPT__
k = 0
"""

_STEP_CALL = """
global k
while True:
    step(opt, emb, head, k)
    k += 1
"""

_STEP_CHECK = """
got = whole(opt, emb, head)
emb2, head2 = make()
opt2 = __OPT__
for i in range(k):
    step(opt2, emb2, head2, i)
matches = []
if whole(opt2, emb2, head2) == got:
    matches.append(k)
step(opt2, emb2, head2, k)
if whole(opt2, emb2, head2) == got:
    matches.append(k + 1)
assert outcome == "interrupted", outcome
assert matches, f"after {k} returned calls the state is neither {k} nor {k + 1} whole steps"
"""


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_interrupted_apply_gradients_leaves_whole_steps(name):
    opt = OPTIMIZERS[name]
    for delay in (0.05, 0.25, 0.5):
        run_interrupted(_STEP_SETUP.replace("__OPT__", opt), _STEP_CALL,
                        _STEP_CHECK.replace("__OPT__", opt), delay=delay)


_RESTORE_SETUP = """
from fastembed import optimizers as O
V, D = 20000, 32
emb = fe.Embedding(V, D, seed=1)
opt = O.Adam(learning_rate=0.01)
rng = np.random.default_rng(0)
tables, states = [], []
for lr in (0.01, 0.02):
    opt.learning_rate = lr
    g = fe.SparseGradient(rng.integers(0, V, 5000), rng.standard_normal((5000, D)).astype(np.float32), (V, D))
    opt.apply_gradients([(g, emb)])
    tables.append(emb.get_weights()[0])
    states.append(opt.get_state())
def whole():
    st = opt.get_state()
    return (emb.embeddings.tobytes(), repr(st["config"]),
            {k: v.tobytes() for k, v in sorted(st["arrays"].items())})
wholes = []
for t, s in zip(tables, states):
    emb.set_weights([t]); opt.set_state(s); wholes.append(whole())
"""

_RESTORE_CALL = """
i = 0
while True:
    emb.set_weights([tables[i % 2]])
    opt.set_state(states[i % 2])
    i += 1
"""

_RESTORE_CHECK = """
assert outcome == "interrupted"
got = whole()
# the table and the optimizer are each restored whole (they may be one restore apart)
assert got[0] in (wholes[0][0], wholes[1][0]), "the table is a mix of two set_weights"
assert got[1:] in (wholes[0][1:], wholes[1][1:]), "the optimizer is a mix of two states"
"""


def test_interrupted_set_weights_and_set_state_restore_whole():
    for delay in (0.1, 0.4):
        run_interrupted(_RESTORE_SETUP, _RESTORE_CALL, _RESTORE_CHECK, delay=delay)


_SAVE_SETUP = """
import os
path = os.path.join(__TMP__, "layer")
os.makedirs(__TMP__, exist_ok=True)
emb = fe.Embedding(4, 3, seed=0)
emb.save(path)
emb = fe.Embedding.load(path, mmap_mode="r+")
big = fe.Embedding(400000, 16, seed=1)
"""

_SAVE_CALL = """
while True:
    emb.save(path)
    big.save(path + "-big")
"""

_SAVE_CHECK = """
assert outcome == "interrupted"
for p in (path, path + "-big"):
    for leftover in (p + ".fe-new", p + ".fe-old"):
        assert not os.path.exists(leftover), f"{leftover} was left behind"
np.testing.assert_array_equal(fe.Embedding.load(path + "-big").embeddings, big.embeddings)
# the r+ map follows the file at `path`: an update through the layer reaches the file
assert os.path.abspath(emb.embeddings.filename) == os.path.abspath(os.path.join(path, "embeddings.npy"))
emb.embeddings[1] = 7.0
emb.embeddings.flush()
assert np.all(fe.Embedding.load(path).embeddings[1] == 7.0)
"""


def test_interrupted_save_leaves_one_whole_copy(tmp_path):
    for delay in (0.1, 0.3):
        run_interrupted(_SAVE_SETUP.replace("__TMP__", repr(str(tmp_path / str(delay)))), _SAVE_CALL,
                        _SAVE_CHECK, delay=delay)


# ------------------------------------------- item 1: a failing call changes nothing

V, D = 50, 4


def _sparse(ids, dim=D, rows=V, dtype=np.float32, seed=0):
    ids = np.asarray(ids)
    vals = np.random.default_rng(seed).standard_normal((ids.size, dim)).astype(dtype)
    return fe.SparseGradient(ids, vals, (rows, dim))


def _bad_second_pairs():
    """(label, build) -> build(emb, head) gives the bad pair and the expected exception."""
    def bad_index(emb, head):
        g = _sparse([1, 2])
        g.indices[1] = V  # changed after the SparseGradient checked it
        return (g, emb), IndexError

    def bad_dtype(emb, head):
        return (np.ones((V, D), np.float64), emb), TypeError

    def bad_shape(emb, head):
        return (np.ones((V + 1, D), np.float32), emb), ValueError

    def bad_dense_shape(emb, head):
        return (_sparse([1], rows=V + 1), emb), ValueError

    def not_a_pair(emb, head):
        return np.ones((2, D), np.float32), TypeError

    def triple(emb, head):
        return (_sparse([1]), emb, None), TypeError

    def read_only(emb, head):
        w = np.zeros((3, 3), np.float32)
        w.flags.writeable = False
        return (np.ones((3, 3), np.float32), w), ValueError

    def strided(emb, head):
        return (np.ones((3, 2), np.float32), np.zeros((3, 4), np.float32)[:, ::2]), ValueError

    def unknown_variable(emb, head):
        return (np.ones(3, np.float32), [0.0, 0.0, 0.0]), TypeError

    def float_dense_shape(emb, head):
        g = _sparse([1])
        g.dense_shape = (float(V), float(D))
        return (g, emb), TypeError

    def ragged_values(emb, head):
        class Duck:  # a duck-typed sparse gradient holding lists
            indices = [1, 2]
            values = [[1.0] * D, [1.0]]
            dense_shape = (V, D)
        return (Duck(), emb), ValueError

    return {f.__name__: f for f in (bad_index, bad_dtype, bad_shape, bad_dense_shape,
                                    not_a_pair, triple, read_only, strided, unknown_variable,
                                    float_dense_shape, ragged_values)}


BAD_SECOND = _bad_second_pairs()
OPT_FACTORIES = {
    "sgd": lambda: O.SGD(learning_rate=0.1),
    "sgd_momentum": lambda: O.SGD(learning_rate=0.1, momentum=0.9),
    "adagrad": lambda: O.Adagrad(learning_rate=0.1),
    "adam_lazy": lambda: O.Adam(learning_rate=0.1),
    "adam_dense": lambda: O.Adam(learning_rate=0.1, lazy=False),
}


@pytest.mark.parametrize("opt_name", sorted(OPT_FACTORIES))
@pytest.mark.parametrize("bad", sorted(BAD_SECOND))
@pytest.mark.parametrize("with_state", [False, True])
def test_bad_second_pair_changes_nothing(opt_name, bad, with_state):
    opt = OPT_FACTORIES[opt_name]()
    emb = fe.Embedding(V, D, seed=0)
    head = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    if with_state:
        opt.apply_gradients([(_sparse([3, 4]), emb), (np.ones((6, 3), np.float32), head)])
    fresh = fe.Embedding(V, D, seed=5)  # a variable this optimizer has never seen
    pair, exc = BAD_SECOND[bad](emb, head)
    before = _state(opt, emb.embeddings, head, fresh.embeddings)
    steps = (opt.get_step(emb), opt.get_step(head), opt.get_step(fresh), opt.iterations)
    with pytest.raises(exc) as info:
        opt.apply_gradients([(np.full((6, 3), 0.5, np.float32), head),
                             (_sparse([1, 1, 7]), fresh), pair])
    assert "item 2" in str(info.value) or "variable 2" in str(info.value), str(info.value)
    assert _state(opt, emb.embeddings, head, fresh.embeddings) == before
    assert (opt.get_step(emb), opt.get_step(head), opt.get_step(fresh),
            opt.iterations) == steps
    assert opt.variables == ([emb, head] if with_state else [])


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adagrad", "adam_lazy", "adam_dense"])
def test_table_replaced_after_state_was_made_changes_nothing(opt_name):
    # The previous code found this inside the native update of the second pair, after
    # the first pair had been written.
    opt = OPT_FACTORIES[opt_name]()
    emb = fe.Embedding(V, D, seed=0)
    head = np.zeros((3, 3), np.float32)
    opt.apply_gradients([(_sparse([1]), emb), (np.ones((3, 3), np.float32), head)])
    emb.embeddings = np.zeros((V + 5, D), np.float32)
    before = _state(opt, emb.embeddings, head)
    with pytest.raises(ValueError, match="changed"):
        opt.apply_gradients([(np.ones((3, 3), np.float32), head),
                             (_sparse([1], rows=V + 5), emb)])
    assert _state(opt, emb.embeddings, head) == before


@pytest.mark.parametrize("attr,value,exc", [
    ("learning_rate", "0.1", TypeError), ("learning_rate", -1.0, ValueError),
    ("learning_rate", None, TypeError), ("beta_1", 1.5, ValueError),
    ("lazy", "False", TypeError), ("epsilon", float("nan"), ValueError)])
def test_reassigned_hyperparameters_are_checked_before_any_write(attr, value, exc):
    emb = fe.Embedding(V, D, seed=0)
    head = np.zeros((3, 3), np.float32)
    opt = O.Adam()
    opt.apply_gradients([(_sparse([1]), emb)])
    tables, _, slots = _state(opt, emb.embeddings, head)
    setattr(opt, attr, value)
    with pytest.raises(exc, match=attr):
        opt.apply_gradients([(np.ones((3, 3), np.float32), head), (_sparse([2]), emb)])
    after = _state(opt, emb.embeddings, head)
    assert (after[0], after[2]) == (tables, slots)
    assert opt.variables == [emb] and opt.get_step(emb) == 1


def test_momentum_switched_on_later_starts_from_zero():
    # The previous code failed in the middle of such a call (KeyError on the missing slot,
    # after the first pair had been written).
    emb = fe.Embedding(V, D, seed=0)
    head = np.ones((3, 3), np.float32)
    opt = O.SGD(learning_rate=0.1)
    opt.apply_gradients([(_sparse([1]), emb)])
    opt.momentum = 0.5
    w0, h0 = emb.get_weights()[0], head.copy()
    g = _sparse([2, 2, 5])
    opt.apply_gradients([(np.ones((3, 3), np.float32), head), (g, emb)])
    np.testing.assert_allclose(head, h0 - 0.1, rtol=1e-6)
    np.testing.assert_allclose(emb.embeddings, w0 - 0.1 * g.to_dense(), rtol=1e-6)
    np.testing.assert_allclose(opt.get_slot(emb, "momentum"), -0.1 * g.to_dense(), rtol=1e-6)
    assert opt.get_step(emb) == 2
    # get_state / set_state round-trip this mixed history
    st = opt.get_state()
    opt.momentum = 0.0
    opt.set_state(st)
    assert opt.momentum == 0.5


def test_same_variable_twice_in_one_call_is_two_steps():
    a, b = fe.Embedding(V, D, seed=0), fe.Embedding(V, D, seed=0)
    g1, g2 = _sparse([1, 2], seed=1), _sparse([2, 3], seed=2)
    o1, o2 = O.Adam(0.1), O.Adam(0.1)
    o1.apply_gradients([(g1, a), (g2, a)])
    o2.apply_gradients([(g1, b)])
    o2.apply_gradients([(g2, b)])
    assert _state(o1, a.embeddings) == _state(o2, b.embeddings)
    assert o1.get_step(a) == 2


def test_set_state_that_does_not_fit_changes_nothing():
    emb, head = fe.Embedding(V, D, seed=0), np.zeros((3, 3), np.float32)
    opt = O.Adam(0.1)
    opt.apply_gradients([(_sparse([1]), emb), (np.ones((3, 3), np.float32), head)])
    good = opt.get_state()
    opt.apply_gradients([(_sparse([2]), emb)])
    before = _state(opt, emb.embeddings, head)
    lr = opt.learning_rate

    def broken(mutate):
        st = copy.deepcopy(good)
        st["config"]["config"]["learning_rate"] = 0.5
        mutate(st)
        return st

    bad_states = [
        broken(lambda st: st["arrays"].__setitem__("1/v", np.zeros((4, 3)))),  # last slot
        broken(lambda st: st["config"]["variables"][1].__setitem__("step", -1)),
        broken(lambda st: st["config"]["variables"][1].__setitem__("step", 1.5)),
        broken(lambda st: st["config"]["variables"][1].__setitem__("slots", ["m"])),
        broken(lambda st: st["arrays"].pop("1/m")),
        broken(lambda st: st["config"]["config"].__setitem__("beta_1", "0.9")),
        broken(lambda st: st["arrays"].__setitem__("1/m", np.array([["a"] * 3] * 3))),
    ]
    for st in bad_states:
        with pytest.raises(ValueError):
            opt.set_state(st)
        assert _state(opt, emb.embeddings, head) == before
        assert opt.learning_rate == lr
    with pytest.raises(ValueError, match="variables"):
        opt.set_state(good, variables=[emb])
    with pytest.raises(ValueError, match="Embedding"):
        opt.set_state(good, variables=[emb, [1.0]])
    assert _state(opt, emb.embeddings, head) == before


def test_interrupt_during_a_failed_write_of_save_removes_the_partial_copy(tmp_path,
                                                                          monkeypatch):
    emb = fe.Embedding(V, D, seed=0)
    emb.save(tmp_path / "m")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    other = fe.Embedding(V, D, seed=9)
    with pytest.raises(KeyboardInterrupt):
        other.save(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["m"]
    np.testing.assert_array_equal(fe.Embedding.load(tmp_path / "m").embeddings, emb.embeddings)
