"""DistributedDataParallel (gloo) over fastembed.torch modules with sparse gradients.

Two processes on 127.0.0.1, each with half of every batch, must end with the weights of
one process trained on the whole batches (DDP averages the gradients; the loss is a mean,
so the halves' mean gradient is the whole batch's).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
fet = pytest.importorskip("fastembed.torch")

STEPS = 3

WORKER = r'''
import os, sys
import torch
import torch.distributed as dist
sys.path.insert(0, os.environ["FE_TEST_DIR"])
from test_torch_ddp import make_model, make_batches, train

rank = int(os.environ["RANK"])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + os.environ["FE_PORT"],
                        rank=rank, world_size=2)
model = torch.nn.parallel.DistributedDataParallel(make_model())
grads = train(model, make_batches(rank))
torch.save({"state": model.module.state_dict(), "grads": grads}, os.environ["FE_OUT"])
dist.destroy_process_group()
'''


def make_model():
    torch.manual_seed(0)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = fet.EmbeddingBag(40, 8, mode="mean", sparse=True)
            self.emb = fet.Embedding(30, 8, sparse=True)
            self.head = torch.nn.Linear(16, 1)

        def forward(self, ids, offsets, tokens):
            return self.head(torch.cat([self.bag(ids, offsets), self.emb(tokens).sum(1)],
                                       dim=1)).squeeze(1)

    return Model().double()


def make_batches(part=None):
    """STEPS batches of 8 bags (ids with offsets), 8 token rows and 8 targets; `part` 0
    or 1 keeps one half of each batch."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        lengths = torch.randint(0, 5, (8,), generator=g)
        ids = torch.randint(0, 40, (int(lengths.sum()),), generator=g)
        tokens = torch.randint(0, 30, (8, 3), generator=g)
        y = torch.randn(8, generator=g, dtype=torch.float64)
        if part is not None:
            lo = int(lengths[:4].sum())
            keep = slice(0, 4) if part == 0 else slice(4, 8)
            ids = ids[:lo] if part == 0 else ids[lo:]
            lengths, tokens, y = lengths[keep], tokens[keep], y[keep]
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        out.append((ids, offsets, tokens, y))
    return out


def train(model, batches):
    """Sparse SGD on the tables, Adam on the head; returns the dense grads of each step."""
    inner = getattr(model, "module", model)
    sgd = torch.optim.SGD([inner.bag.weight, inner.emb.weight], lr=0.5)
    adam = torch.optim.Adam(inner.head.parameters(), lr=0.01)
    grads = []
    for ids, offsets, tokens, y in batches:
        sgd.zero_grad()
        adam.zero_grad()
        loss = torch.nn.functional.mse_loss(model(ids, offsets, tokens), y)
        loss.backward()
        assert inner.bag.weight.grad.is_sparse and inner.emb.weight.grad.is_sparse
        grads.append([p.grad.to_dense().clone() for p in inner.parameters()])
        sgd.step()
        adam.step()
    return grads


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_one_on_the_whole_batch(tmp_path):
    single = make_model()
    want_grads = train(single, make_batches())
    env = dict(os.environ, FE_PORT=str(_free_port()), FE_TEST_DIR=os.path.dirname(__file__),
               OMP_NUM_THREADS="1")
    procs = []
    for rank in range(2):
        e = dict(env, RANK=str(rank), FE_OUT=str(tmp_path / f"rank{rank}.pt"))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for step, (gs, ws) in enumerate(zip(got["grads"], want_grads)):
            for g, w in zip(gs, ws):
                torch.testing.assert_close(g, w, msg=f"rank {rank} step {step}")
        for name, value in single.state_dict().items():
            torch.testing.assert_close(got["state"][name], value, msg=name)
