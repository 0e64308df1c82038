"""The seed walkthrough (extended by the layers work)."""
from __future__ import annotations

import numpy as np

from . import ops


def main(argv=None) -> int:
    phrases = ["Hope to see you soon", "Nice to see you again"]
    # Numbered by first appearance from 0.
    vocab: dict = {}
    encoded = []
    for p in phrases:
        encoded.append([vocab.setdefault(w.lower(), len(vocab)) for w in p.split()])
    for p, e in zip(phrases, encoded):
        print(f"{p!r:28} -> {e}")
    rng = np.random.default_rng(0)
    table = rng.uniform(-0.05, 0.05, size=(len(vocab), 2)).astype(np.float32)
    print(f"embedding table {table.shape}:\n{table}")
    print("second phrase as five 2-d vectors:")
    print(ops.gather(table, np.array(encoded[1])))
    return 0
