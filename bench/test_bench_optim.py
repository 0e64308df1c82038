"""One optimizer step on a (V, D) float32 table with U touched rows (Zipf-drawn, unique).

Groups "adam-step", "adagrad-step", "sgd-step": fastembed (lazy Adam, Adagrad, SGD with
fused native passes) beside torch (SparseAdam / Adagrad / SGD given the already coalesced
sparse gradient) and numpy by hand on the touched rows.  Each method's first step is
checked against the numpy update before timing.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

import fastembed as fe
from conftest import FULL, set_threads, torch

V, D, U = 1_000_000, 64, 50_000
LR = {"adam": 1e-3, "adagrad": 1e-2, "sgd": 1e-2}
B1, B2, EPS = 0.9, 0.999, 1e-7
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")


@lru_cache(maxsize=1)
def data(seed=0):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((V, D), dtype=np.float32)
    # U distinct rows drawn with Zipf(1.1) weights (Gumbel top-k), sorted: a coalesced grad.
    logp = -1.1 * np.log(np.arange(1, V + 1, dtype=np.float64))
    keys = logp + rng.gumbel(size=V)
    idx = np.sort(np.argpartition(-keys, U)[:U]).astype(np.int64)
    g = rng.standard_normal((U, D), dtype=np.float32)
    return table, idx, g


class NumpyStep:
    """The update written by hand on the touched rows (fancy indexing)."""

    def __init__(self, opt, table, idx, g):
        self.opt, self.w, self.idx, self.g = opt, table.copy(), idx, g
        self.t = 0
        if opt == "adam":
            self.m = np.zeros_like(table)
            self.v = np.zeros_like(table)
        elif opt == "adagrad":
            self.a = np.full_like(table, 0.1)

    def __call__(self):
        idx, g, lr = self.idx, self.g, np.float32(LR[self.opt])
        if self.opt == "sgd":
            self.w[idx] -= lr * g
        elif self.opt == "adagrad":
            a = self.a[idx] + g * g
            self.a[idx] = a
            self.w[idx] -= lr * g / np.sqrt(a + np.float32(EPS))
        else:
            self.t += 1
            step = np.float32(LR["adam"] * math.sqrt(1 - B2 ** self.t) / (1 - B1 ** self.t))
            m = self.m[idx]
            m += (g - m) * np.float32(1 - B1)
            v = self.v[idx]
            v += (g * g - v) * np.float32(1 - B2)
            self.m[idx] = m
            self.v[idx] = v
            self.w[idx] -= step * (m / (np.sqrt(v) + np.float32(EPS)))

    @property
    def weights(self):
        return self.w


class FastembedStep:
    def __init__(self, opt, table, idx, g):
        self.emb = fe.Embedding(V, D, embeddings_initializer="zeros")
        np.copyto(self.emb.embeddings, table)
        self.grad = fe.SparseGradient(idx, g, (V, D))
        self.opt = {"adam": lambda: fe.optimizers.Adam(LR["adam"], epsilon=EPS),
                    "adagrad": lambda: fe.optimizers.Adagrad(LR["adagrad"], 0.1, EPS),
                    "sgd": lambda: fe.optimizers.SGD(LR["sgd"])}[opt]()

    def __call__(self):
        self.opt.apply_gradients([(self.grad, self.emb)])

    @property
    def weights(self):
        return self.emb.embeddings


class TorchStep:
    def __init__(self, opt, table, idx, g):
        self.p = torch.nn.Parameter(torch.from_numpy(table.copy()))
        grad = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(g),
                                       (V, D), check_invariants=True).coalesce()
        self.grad = grad
        self.opt = {"adam": lambda: torch.optim.SparseAdam([self.p], lr=LR["adam"], eps=EPS),
                    "adagrad": lambda: torch.optim.Adagrad([self.p], lr=LR["adagrad"],
                                                           initial_accumulator_value=0.1,
                                                           eps=EPS),
                    "sgd": lambda: torch.optim.SGD([self.p], lr=LR["sgd"])}[opt]()

    def __call__(self):
        self.p.grad = self.grad
        self.opt.step()

    @property
    def weights(self):
        return self.p.detach().numpy()


METHODS = {"fastembed": FastembedStep, "numpy by hand": NumpyStep, "torch sparse": TorchStep}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("opt", ["adam", "adagrad", "sgd"])
def test_optim_step(benchmark, opt, method, threads):
    if method == "torch sparse" and torch is None:
        pytest.skip("torch not installed")
    if method == "numpy by hand" and threads == 2:
        pytest.skip("numpy is single threaded")
    table, idx, g = data()
    set_threads(threads)
    benchmark.group = f"{opt}-step"
    benchmark.extra_info.update(dict(op=f"{opt}-step", V=V, D=D, U=U, dist="zipf",
                                     method=method, threads=threads,
                                     library=method.split(" ")[0],
                                     bytes=U * D * 4 * {"adam": 7, "adagrad": 5, "sgd": 3}[opt]))
    # Correctness: the first step equals the numpy update.
    ref = NumpyStep(opt, table, idx, g)
    ref()
    run = METHODS[method](opt, table, idx, g)
    run()
    np.testing.assert_allclose(run.weights[idx], ref.weights[idx], rtol=1e-5, atol=1e-6)
    untouched = np.setdiff1d(np.arange(0, V, 997), idx)
    np.testing.assert_array_equal(run.weights[untouched], table[untouched])
    benchmark.pedantic(run, rounds=15 if FULL else 10, iterations=1, warmup_rounds=1)
