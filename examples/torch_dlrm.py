#!/usr/bin/env python3
"""A DLRM-style recommendation model in PyTorch on fastembed's embedding tables.

    dense features (13) -> bottom MLP 13-64-64 --------------------------\\
    8 categorical features -> 8 x fastembed.torch.EmbeddingBag(sum, sparse) -> concat (576)
                                                                 -> top MLP 576-256-1 -> click?

The tables get sparse gradients and go to ``fastembed.torch.optim.SparseAdam`` (one fused
native pass over the touched rows); the MLPs to ``fastembed.torch.optim.Adam``.  The
click data is generated: ids are Zipf-distributed (a few hot rows, a long tail) and the
label depends on a hidden per-row effect in every table plus a linear function of the
dense features, so the loss can fall well below log(2).

    python examples/torch_dlrm.py                       # about 10 s on 2 cores
    python examples/torch_dlrm.py --backend torch       # torch.nn + torch.optim, to compare
    python examples/torch_dlrm.py --rows 1000 --steps 20 --batch 64   # tiny

Prints the mean loss of every ``--log-every`` steps, then the first and last.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

TABLES = 8
DENSE = 13
DIM = 64


def make_batch(rng, effects, dense_w, rows, batch, bag):
    """One batch of (dense, ids per table, offsets, labels), with Zipf ids."""
    dense = rng.standard_normal((batch, DENSE)).astype(np.float32)
    ids, logit = [], dense @ dense_w
    for t in range(TABLES):
        # Zipf ranks, then a fixed scramble so the hot rows are spread over the table.
        ranks = (rng.zipf(1.2, size=batch * bag) - 1) % rows
        tid = (ranks * 2654435761 + 97 * t) % rows
        ids.append(tid.astype(np.int64))
        logit += effects[t][tid].reshape(batch, bag).mean(axis=1)
    labels = (rng.random(batch) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    offsets = np.arange(0, batch * bag, bag, dtype=np.int64)
    return (torch.from_numpy(dense), [torch.from_numpy(i) for i in ids],
            torch.from_numpy(offsets), torch.from_numpy(labels))


def mlp(sizes, last_relu=True):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if last_relu or i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class DLRM(torch.nn.Module):
    def __init__(self, bag_cls, rows):
        super().__init__()
        self.bottom = mlp([DENSE, 64, DIM])
        self.tables = torch.nn.ModuleList(
            bag_cls(rows, DIM, mode="sum", sparse=True) for _ in range(TABLES))
        for t in self.tables:
            torch.nn.init.uniform_(t.weight, -0.05, 0.05)
        self.top = mlp([DIM * (TABLES + 1), 256, 1], last_relu=False)

    def forward(self, dense, ids, offsets):
        parts = [self.bottom(dense)] + [t(i, offsets) for t, i in zip(self.tables, ids)]
        return self.top(torch.cat(parts, dim=1)).squeeze(1)


def build(backend, rows, lr):
    if backend == "fastembed":
        import fastembed.torch as fet
        from fastembed.torch.optim import Adam, SparseAdam
        model = DLRM(fet.EmbeddingBag, rows)
    else:
        from torch.optim import Adam, SparseAdam
        model = DLRM(torch.nn.EmbeddingBag, rows)
    sparse = [p for t in model.tables for p in t.parameters()]
    dense = list(model.bottom.parameters()) + list(model.top.parameters())
    return model, [SparseAdam(sparse, lr=lr), Adam(dense, lr=lr)]


def train(backend="fastembed", rows=100_000, batch=512, bag=20, steps=100, lr=0.01,
          log_every=25, seed=0, quiet=False):
    """Train and return the list of per-step losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    effects = [rng.standard_normal(rows).astype(np.float32) * 2 for _ in range(TABLES)]
    dense_w = rng.standard_normal(DENSE).astype(np.float32) * 0.5
    model, optimizers = build(backend, rows, lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        dense, ids, offsets, labels = make_batch(rng, effects, dense_w, rows, batch, bag)
        for opt in optimizers:
            opt.zero_grad()
        loss = loss_fn(model(dense, ids, offsets), labels)
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(loss.item())
        if not quiet and step % log_every == 0:
            print(f"step {step:4d}  loss {np.mean(losses[-log_every:]):.4f}  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["fastembed", "torch"], default="fastembed")
    p.add_argument("--rows", type=int, default=100_000, help="rows per table")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--bag", type=int, default=20, help="ids per bag")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (fastembed's pool keeps its default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    losses = train(a.backend, a.rows, a.batch, a.bag, a.steps, a.lr, a.log_every)
    k = max(1, min(a.log_every, len(losses) // 4))
    print(f"first {k} steps: loss {np.mean(losses[:k]):.4f}; "
          f"last {k} steps: loss {np.mean(losses[-k:]):.4f}")


if __name__ == "__main__":
    main()
