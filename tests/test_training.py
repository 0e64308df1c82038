"""End-to-end training: EmbeddingBag(mean) + a linear softmax head trained with
fe.optimizers.Adam reaches the accuracy of the same model trained with torch
(nn.EmbeddingBag(sparse=True) + Linear, SparseAdam + Adam) on the same generated task,
from the same initial weights, in the same data order.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastembed as fe

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

V, D, C, L = 400, 16, 3, 12
LR, EPOCHS, BATCH = 0.02, 4, 32


def make_task(seed=0, n=1800):
    """Class c favours its own block of 20 words; the rest of each row is shared filler.
    Rows have 4..L ids, left-padded with 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=n)
    ids = np.zeros((n, L), np.int64)
    lengths = rng.integers(4, L + 1, size=n)
    for i in range(n):  # data generation only, not library code
        k = lengths[i]
        words = rng.integers(C * 20 + 1, V, size=k)
        cues = rng.random(k) < 0.35
        words[cues] = 1 + y[i] * 20 + rng.integers(0, 20, size=cues.sum())
        ids[i, L - k:] = words
    split = int(n * 0.75)
    return (ids[:split], y[:split]), (ids[split:], y[split:])


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def init(seed=1):
    rng = np.random.default_rng(seed)
    emb = rng.uniform(-0.05, 0.05, size=(V, D)).astype(np.float32)
    w = (rng.standard_normal((D, C)) * 0.1).astype(np.float32)
    b = np.zeros(C, np.float32)
    return emb, w, b


def orders(n, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(EPOCHS)]


def train_fastembed(train, test):
    emb0, w0, b0 = init()
    bag = fe.EmbeddingBag(V, D, mode="mean", mask_zero=True, weights=[emb0])
    w, b = w0.copy(), b0.copy()
    opt = fe.optimizers.Adam(LR)
    ids, y = train
    losses = []
    for perm in orders(len(y)):
        total = 0.0
        for s in range(0, len(y), BATCH):
            sel = perm[s:s + BATCH]
            h = bag(ids[sel])
            p = softmax(h @ w + b)
            yb = y[sel]
            total += -np.log(p[np.arange(len(sel)), yb]).sum()
            dz = p
            dz[np.arange(len(sel)), yb] -= 1.0
            dz /= len(sel)
            gw, gb, gh = h.T @ dz, dz.sum(axis=0), dz @ w.T
            opt.apply_gradients([(bag.backward(gh.astype(np.float32)), bag),
                                 (gw.astype(np.float32), w), (gb.astype(np.float32), b)])
        losses.append(total / len(y))
    pred = (bag(test[0]) @ w + b).argmax(axis=1)
    return float((pred == test[1]).mean()), losses


def train_torch(torch, train, test):
    emb0, w0, b0 = init()
    bag = torch.nn.EmbeddingBag(V, D, mode="mean", sparse=True, padding_idx=0)
    lin = torch.nn.Linear(D, C)
    with torch.no_grad():
        bag.weight.copy_(torch.from_numpy(emb0))
        lin.weight.copy_(torch.from_numpy(w0.T.copy()))
        lin.bias.copy_(torch.from_numpy(b0))
    opt_s = torch.optim.SparseAdam(list(bag.parameters()), lr=LR, eps=1e-7)
    opt_d = torch.optim.Adam(list(lin.parameters()), lr=LR, eps=1e-7)
    ids, y = (torch.from_numpy(a) for a in train)
    losses = []
    for perm in orders(len(y)):
        total = 0.0
        for s in range(0, len(y), BATCH):
            sel = torch.from_numpy(perm[s:s + BATCH])
            loss = torch.nn.functional.cross_entropy(lin(bag(ids[sel])), y[sel])
            opt_s.zero_grad()
            opt_d.zero_grad()
            loss.backward()
            opt_s.step()
            opt_d.step()
            total += loss.item() * len(sel)
        losses.append(total / len(y))
    with torch.no_grad():
        pred = lin(bag(torch.from_numpy(test[0]))).argmax(dim=1).numpy()
    return float((pred == test[1]).mean()), losses


def test_fastembed_training_matches_torch():
    torch = pytest.importorskip("torch")
    train, test = make_task()
    acc_fe, loss_fe = train_fastembed(train, test)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny steps: torch's pool only adds overhead here
    try:
        acc_t, loss_t = train_torch(torch, train, test)
    finally:
        torch.set_num_threads(before)
    chance = 1.0 / C
    assert acc_fe > chance + 0.4 and acc_t > chance + 0.4, (acc_fe, acc_t)
    assert abs(acc_fe - acc_t) <= 0.03, (acc_fe, acc_t)
    # Same model, same init, same order: the loss curves agree closely too.
    np.testing.assert_allclose(loss_fe, loss_t, rtol=2e-3)
    assert loss_fe[-1] < loss_fe[0] * 0.6


def test_training_is_deterministic_across_thread_counts(threads):
    train, test = make_task(seed=3, n=600)
    results = []
    for n in (1, 2):
        threads(n)
        results.append(train_fastembed(train, test))
    assert results[0] == results[1]
