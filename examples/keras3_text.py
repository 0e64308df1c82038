#!/usr/bin/env python3
"""Keras 3's TextVectorization, without TensorFlow, feeding a fastembed model.

    fe.TextVectorization.adapt(real text) -> int ids -> EmbeddingBag(mean) -> softmax

The text is real and ships with Python: the docstrings of four standard-library
packages (asyncio, email, logging, unittest), one paragraph per example; the task is to
tell which package a paragraph documents.  The layer is adapted on the training
paragraphs exactly as ``keras.layers.TextVectorization`` would be (same vocabulary, same
ids), then an ``EmbeddingBag`` and a softmax head are trained with Adam.  Prints the
loss after each epoch (it falls) and the test accuracy; runs in a few seconds.

    python examples/keras3_text.py [--epochs 6] [--max-tokens 8000]
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys

import numpy as np

import fastembed as fe

PACKAGES = ("asyncio", "email", "logging", "unittest")


def paragraphs(package: str) -> list:
    """Docstring paragraphs of a package, its submodules, classes and functions."""
    mod = importlib.import_module(package)
    mods = [mod]
    for info in pkgutil.walk_packages(getattr(mod, "__path__", []), package + "."):
        if ".test" in info.name or "__main__" in info.name:
            continue
        try:
            mods.append(importlib.import_module(info.name))
        except Exception:  # platform-specific modules
            continue
    seen, out = set(), []
    for m in mods:
        objs = [m] + [v for _, v in inspect.getmembers(m)
                      if (inspect.isclass(v) or inspect.isfunction(v))
                      and getattr(v, "__module__", "") == m.__name__]
        objs += [f for c in objs if inspect.isclass(c)
                 for _, f in inspect.getmembers(c, inspect.isfunction)]
        for o in objs:
            doc = inspect.getdoc(o)
            if not doc or id(o) in seen:
                continue
            seen.add(id(o))
            for para in doc.split("\n\n"):
                p = " ".join(para.split())
                if len(p.split()) >= 5:
                    out.append(p)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=8000)
    ap.add_argument("--length", type=int, default=64, help="output_sequence_length")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    texts, labels = [], []
    for k, pkg in enumerate(PACKAGES):
        ps = paragraphs(pkg)
        texts += ps
        labels += [k] * len(ps)
    y = np.array(labels, dtype=np.int64)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(texts))
    n_test = len(texts) // 5
    test, train = order[:n_test], order[n_test:]
    print(f"{len(texts)} paragraphs from {', '.join(PACKAGES)}: "
          f"{len(train)} train / {len(test)} test")

    # Keras 3: keras.layers.TextVectorization(max_tokens=..., output_sequence_length=...)
    vectorize = fe.TextVectorization(max_tokens=args.max_tokens,
                                     output_sequence_length=args.length)
    vectorize.adapt([texts[i] for i in train])
    ids = vectorize(texts)                    # (n, length) int64, 0 = padding
    print(f"vocabulary {vectorize.vocabulary_size()} (first: {vectorize.get_vocabulary()[:6]}), "
          f"ids {ids.shape} {ids.dtype}")

    classes = len(PACKAGES)
    bag = fe.EmbeddingBag(vectorize.vocabulary_size(), args.dim, mode="mean",
                          mask_zero=True, seed=args.seed)
    w = rng.normal(0, 0.1, size=(args.dim, classes)).astype(np.float32)
    b = np.zeros(classes, np.float32)
    opt = fe.optimizers.Adam(learning_rate=args.lr)

    losses = []
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(train)
        total = 0.0
        for s in range(0, len(perm), args.batch_size):
            sel = perm[s:s + args.batch_size]
            h = bag(ids[sel])
            p = softmax(h @ w + b)
            rows = np.arange(len(sel))
            total += float(-np.log(np.maximum(p[rows, y[sel]], 1e-12)).sum())
            p[rows, y[sel]] -= 1.0
            p /= len(sel)
            opt.apply_gradients([(bag.backward(p @ w.T), bag), (h.T @ p, w),
                                 (p.sum(axis=0), b)])
        losses.append(total / len(train))
        print(f"epoch {epoch}: loss {losses[-1]:.4f}")
    acc = float(((bag(ids[test]) @ w + b).argmax(axis=1) == y[test]).mean())
    print(f"test accuracy {acc:.3f} (chance {1 / classes:.2f})")
    return 0 if losses[-1] < losses[0] else 1


if __name__ == "__main__":
    sys.exit(main())
