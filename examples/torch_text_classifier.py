#!/usr/bin/env python3
"""A fastText-style text classifier in PyTorch on a fastembed embedding table.

    text -> word ids + hashed word bigrams -> fastembed.torch.EmbeddingBag(mean, sparse)
         -> Linear -> class

The data is real English, offline: the docstrings of a few packages of Python's standard
library, each labelled with the package it comes from (asyncio, email, logging, ...).
Words are numbered with ``fastembed.Tokenizer``; every pair of neighbouring words is
hashed into one of ``--buckets`` extra rows of the same table (fastText's bigrams).  The
table trains with ``fastembed.torch.optim.SparseAdam``, the head with ``Adam``.

    python examples/torch_text_classifier.py                  # about 15 s on 2 cores
    python examples/torch_text_classifier.py --backend torch  # torch.nn + torch.optim
    python examples/torch_text_classifier.py --epochs 2 --buckets 1000 --docs 300  # tiny

Prints the training loss of each epoch and the held-out accuracy at the end.
"""
from __future__ import annotations

import argparse
import ast
import os
import sysconfig
import time

import numpy as np
import torch

import fastembed as fe

PACKAGES = ["asyncio", "email", "logging", "xml", "importlib", "tkinter"]


def load_docstrings(limit=None):
    """(texts, labels): every docstring of the packages above, labelled by package."""
    std = sysconfig.get_paths()["stdlib"]
    texts, labels = [], []
    for label, pkg in enumerate(PACKAGES):
        for dirpath, dirnames, filenames in os.walk(os.path.join(std, pkg)):
            dirnames[:] = sorted(d for d in dirnames if "test" not in d)
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                try:
                    with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                        tree = ast.parse(f.read())
                except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                    continue
                for node in ast.walk(tree):
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                         ast.AsyncFunctionDef)):
                        doc = ast.get_docstring(node)
                        if doc and len(doc.split()) >= 3:
                            texts.append(doc)
                            labels.append(label)
    order = np.random.default_rng(0).permutation(len(texts))
    if limit:
        order = order[:limit]
    return [texts[i] for i in order], np.array(labels)[order]


def featurize(sequences, num_words, buckets):
    """Word ids and hashed bigram ids of every document, as (ids, starts) in CSR form."""
    lengths = np.array([len(s) for s in sequences], np.int64)
    words = np.fromiter((w for s in sequences for w in s), np.int64, int(lengths.sum()))
    doc = np.repeat(np.arange(len(sequences)), lengths)
    same = doc[:-1] == doc[1:]
    bigrams = num_words + (words[:-1] * 1_000_003 + words[1:]) % buckets
    ids = np.concatenate([words, bigrams[same]])
    owner = np.concatenate([doc, doc[:-1][same]])
    order = np.argsort(owner, kind="stable")
    starts = np.zeros(len(sequences) + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=len(sequences)), out=starts[1:])
    return ids[order], starts


def batch_of(ids, starts, docs):
    """(flat ids, offsets) of the documents `docs`."""
    lo, hi = starts[docs], starts[docs + 1]
    lengths = hi - lo
    offsets = np.zeros(len(docs), np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    pos = np.repeat(lo - offsets, lengths) + np.arange(int(lengths.sum()))
    return torch.from_numpy(ids[pos]), torch.from_numpy(offsets)


class FastText(torch.nn.Module):
    def __init__(self, bag_cls, rows, dim, classes):
        super().__init__()
        self.bag = bag_cls(rows, dim, mode="mean", sparse=True)
        torch.nn.init.uniform_(self.bag.weight, -1 / dim, 1 / dim)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


def train(backend="fastembed", epochs=5, dim=64, num_words=20000, buckets=200_000,
          batch=64, lr=0.02, docs=None, seed=0, quiet=False):
    """Train; return (per-epoch mean losses, held-out accuracy)."""
    torch.manual_seed(seed)
    texts, labels = load_docstrings(docs)
    split = len(texts) * 4 // 5
    tok = fe.Tokenizer(num_words=num_words)
    tok.fit_on_texts(texts[:split])
    ids, starts = featurize(tok.texts_to_sequences(texts), num_words, buckets)
    if backend == "fastembed":
        import fastembed.torch as fet
        from fastembed.torch.optim import Adam, SparseAdam
        model = FastText(fet.EmbeddingBag, num_words + buckets, dim, len(PACKAGES))
    else:
        from torch.optim import Adam, SparseAdam
        model = FastText(torch.nn.EmbeddingBag, num_words + buckets, dim, len(PACKAGES))
    optimizers = [SparseAdam(model.bag.parameters(), lr=lr),
                  Adam(model.head.parameters(), lr=lr)]
    y = torch.from_numpy(labels)
    rng = np.random.default_rng(seed)
    history, t0 = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses = []
        order = rng.permutation(split)
        for i in range(0, split, batch):
            docs_b = order[i:i + batch]
            b_ids, b_off = batch_of(ids, starts, docs_b)
            for opt in optimizers:
                opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(b_ids, b_off), y[docs_b])
            loss.backward()
            for opt in optimizers:
                opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        if not quiet:
            print(f"epoch {epoch}  loss {history[-1]:.4f}  ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
    with torch.no_grad():
        test = np.arange(split, len(texts))
        pred = model(*batch_of(ids, starts, test)).argmax(dim=1)
        accuracy = float((pred == y[test]).double().mean()) if len(test) else 0.0
    return history, accuracy


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["fastembed", "torch"], default="fastembed")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--num-words", type=int, default=20000)
    p.add_argument("--buckets", type=int, default=200_000, help="rows for hashed bigrams")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--docs", type=int, default=None, help="use only this many documents")
    a = p.parse_args(argv)
    history, accuracy = train(a.backend, a.epochs, a.dim, a.num_words, a.buckets, a.batch,
                              a.lr, a.docs)
    print(f"loss {history[0]:.4f} -> {history[-1]:.4f}; held-out accuracy {accuracy:.3f} "
          f"({len(PACKAGES)} classes)")


if __name__ == "__main__":
    main()
