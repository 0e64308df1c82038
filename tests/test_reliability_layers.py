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
