"""fastembed.torch.optim against torch.optim: one optimizer step on a sparse gradient.

A 1M x 64 float32 table, 40k touched rows drawn with Zipf(1.1) weights, given as the
uncoalesced COO gradient nn.Embedding(sparse=True) produces (rows in batch order, not
sorted), so both sides coalesce.  Groups "torch_sparseadam-step", "torch_adagrad-step",
"torch_sgd-step": ours (SparseAdam / Adagrad / SGD) beside torch's, 1 and 2 threads each
(torch's intra-op threads set alike).  Before timing, the first step of ours is checked
against torch's.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from conftest import FULL, set_threads, torch

V, D, U = 1_000_000, 64, 40_000
pytestmark = [pytest.mark.filterwarnings("ignore:Sparse invariant checks"),
              pytest.mark.skipif(torch is None, reason="torch not installed")]

OPTS = {
    "sparseadam": ("SparseAdam", dict(lr=1e-3)),
    "adagrad": ("Adagrad", dict(lr=1e-2, initial_accumulator_value=0.1)),
    "sgd": ("SGD", dict(lr=1e-2)),
}


@lru_cache(maxsize=1)
def data(seed=0):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((V, D), dtype=np.float32)
    # U distinct rows drawn with Zipf(1.1) weights (Gumbel top-k), in random order.
    logp = -1.1 * np.log(np.arange(1, V + 1, dtype=np.float64))
    idx = np.argpartition(-(logp + rng.gumbel(size=V)), U)[:U].astype(np.int64)
    rng.shuffle(idx)
    g = rng.standard_normal((U, D), dtype=np.float32)
    return table, idx, g


def make_grad(idx, g):
    grad = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(g), (V, D),
                                   check_invariants=False)
    assert not grad.is_coalesced()
    return grad


class Step:
    def __init__(self, lib, opt):
        import fastembed.torch.optim as fo

        table, idx, g = data()
        self.p = torch.nn.Parameter(torch.from_numpy(table.copy()))
        self.grad = make_grad(idx, g)
        name, kw = OPTS[opt]
        cls = getattr(fo if lib == "fastembed" else torch.optim, name)
        self.opt = cls([self.p], **kw)

    def __call__(self):
        self.p.grad = self.grad
        self.opt.step()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lib", ["fastembed", "torch"])
@pytest.mark.parametrize("opt", list(OPTS))
def test_torch_optim_step(benchmark, opt, lib, threads):
    set_threads(threads)
    benchmark.group = f"torch_{opt}-step"
    benchmark.extra_info.update(dict(op=f"torch_{opt}-step", V=V, D=D, U=U, dist="zipf",
                                     method=f"{lib} {OPTS[opt][0]}", threads=threads,
                                     library=lib))
    run = Step(lib, opt)
    run()
    if lib == "fastembed":
        ref = Step("torch", opt)
        ref()
        idx = data()[1]
        np.testing.assert_allclose(run.p.detach().numpy()[idx], ref.p.detach().numpy()[idx],
                                   rtol=1e-5, atol=1e-6)
    benchmark.pedantic(run, rounds=15 if FULL else 8, iterations=1, warmup_rounds=1)
