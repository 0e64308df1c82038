"""One training step of the example model (examples/text_classifier.py).

Group "train-step": EmbeddingBag(mean) over (batch, seq) Zipf ids -> linear softmax head,
cross-entropy, backward, Adam (lazy for the table, dense for the head).
fastembed (native bag forward/backward + fused optimizer, numpy head) beside torch
(nn.EmbeddingBag(sparse=True) + nn.Linear, SparseAdam + Adam).  Both start from the same
weights; after the first step their tables and heads are asserted equal.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import make_ids, set_threads, torch

B, L, V, D, C = 256, 100, 100_000, 64, 4
LR, EPS = 1e-3, 1e-7
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")


@lru_cache(maxsize=1)
def data(seed=0):
    rng = np.random.default_rng(seed)
    table = rng.uniform(-0.05, 0.05, size=(V, D)).astype(np.float32)
    w = (rng.standard_normal((D, C)) * 0.1).astype(np.float32)
    b = np.zeros(C, np.float32)
    ids = make_ids(rng, B * L, V, "zipf").reshape(B, L)
    y = rng.integers(0, C, size=B)
    return table, w, b, ids, y


class FastembedModel:
    def __init__(self, table, w, b, ids, y):
        self.bag = fe.EmbeddingBag(V, D, mode="mean", weights=[table])
        self.w, self.b = w.copy(), b.copy()
        self.opt = fe.optimizers.Adam(LR, epsilon=EPS)
        self.ids, self.y = ids, y
        self.rows = np.arange(B)

    def __call__(self):
        h = self.bag(self.ids)
        z = h @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[self.rows, self.y] -= 1.0
        p /= B
        grad_h = p @ self.w.T
        self.opt.apply_gradients([(self.bag.backward(grad_h), self.bag),
                                  (h.T @ p, self.w), (p.sum(axis=0), self.b)])

    def weights(self):
        return self.bag.embeddings, self.w, self.b


class TorchModel:
    def __init__(self, table, w, b, ids, y):
        self.bag = torch.nn.EmbeddingBag(V, D, mode="mean", sparse=True)
        self.lin = torch.nn.Linear(D, C)
        with torch.no_grad():
            self.bag.weight.copy_(torch.from_numpy(table))
            self.lin.weight.copy_(torch.from_numpy(w.T.copy()))
            self.lin.bias.copy_(torch.from_numpy(b))
        self.opt_s = torch.optim.SparseAdam(list(self.bag.parameters()), lr=LR, eps=EPS)
        self.opt_d = torch.optim.Adam(list(self.lin.parameters()), lr=LR, eps=EPS)
        self.ids, self.y = torch.from_numpy(ids), torch.from_numpy(y)

    def __call__(self):
        loss = torch.nn.functional.cross_entropy(self.lin(self.bag(self.ids)), self.y)
        self.opt_s.zero_grad()
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_s.step()
        self.opt_d.step()

    def weights(self):
        return (self.bag.weight.detach().numpy(), self.lin.weight.detach().numpy().T,
                self.lin.bias.detach().numpy())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", ["fastembed", "torch"])
def test_train_step(benchmark, method, threads):
    if method == "torch" and torch is None:
        pytest.skip("torch not installed")
    set_threads(threads)
    table, w, b, ids, y = data()
    benchmark.group = "train-step"
    benchmark.extra_info.update(dict(op="train-step", B=B, L=L, V=V, D=D, C=C, method=method,
                                     threads=threads, library=method))
    run = (FastembedModel if method == "fastembed" else TorchModel)(table, w, b, ids, y)
    run()
    if torch is not None:
        ref = TorchModel(table, w, b, ids, y) if method == "fastembed" else \
            FastembedModel(table, w, b, ids, y)
        ref()
        ours, theirs = (run, ref) if method == "fastembed" else (ref, run)
        (t1, w1, b1), (t2, _, _) = ours.weights(), theirs.weights()
        np.testing.assert_allclose(t1, t2, rtol=1e-4, atol=1e-6)
        assert not np.array_equal(t1, table)
        # The head: Keras Adam adds eps to sqrt(v), torch Adam to sqrt(v_hat), so tiny
        # gradients step differently; check ours against the Keras formula applied to
        # torch's head gradients instead.
        for mine, start, g in ((w1, w, theirs.lin.weight.grad.numpy().T),
                               (b1, b, theirs.lin.bias.grad.numpy())):
            m, v = (1 - 0.9) * g, (1 - 0.999) * g * g
            want = start - LR * np.sqrt(1 - 0.999) / (1 - 0.9) * m / (np.sqrt(v) + EPS)
            np.testing.assert_allclose(mine, want, rtol=1e-4, atol=1e-6)
    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
