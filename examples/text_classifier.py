#!/usr/bin/env python3
"""Train a bag-of-embeddings text classifier with fastembed.

    Tokenizer -> pad_sequences -> EmbeddingBag(mean) -> softmax head (numpy)

The embedding table is updated with lazy Adam from sparse gradients (only the rows of
the words in each batch move); the small dense head goes through the same optimizer.

Input: a text file with one example per line, ``label<TAB>text`` (UTF-8).  Labels are
any strings.  With no file argument a small synthetic four-topic data set is generated
in a temporary folder, so the script runs anywhere:

    python examples/text_classifier.py                 # synthetic data
    python examples/text_classifier.py reviews.tsv --epochs 10 --dim 64

A progress bar is shown when tqdm is installed, otherwise one log line per epoch.
Prints the test accuracy at the end.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

import fastembed as fe

try:
    from tqdm import tqdm
except ImportError:  # optional
    tqdm = None

log = logging.getLogger("text_classifier")

TOPICS = {
    "sports": "match team goal player coach season league score win stadium fans referee "
              "striker keeper final cup training injury transfer",
    "science": "experiment theory data cell energy physics research study laboratory atom "
               "quantum molecule genome telescope planet evidence hypothesis lab",
    "food": "recipe dinner taste kitchen chef bread cheese sauce flavour spicy bake menu "
            "restaurant soup dessert salad garlic oven",
    "travel": "flight hotel beach trip passport museum city tour island train journey "
              "luggage airport visa guide mountain ferry map",
}
FILLER = ("the a an of and to in on for with it this that is was are be at by from "
          "very really quite new old big small good bad today yesterday we they i you").split()


def make_synthetic(path: str, n: int = 4000, seed: int = 0) -> None:
    """Write `n` lines ``topic<TAB>text``: filler words with a few topic words mixed in."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    vocab = {k: v.split() for k, v in TOPICS.items()}
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            label = names[rng.integers(len(names))]
            length = int(rng.integers(6, 20))
            words = list(rng.choice(FILLER, size=length))
            k = int(rng.integers(1, 4))
            # A little label noise-like overlap: sometimes a word of another topic too.
            for pos, w in zip(rng.integers(0, length, size=k), rng.choice(vocab[label], size=k)):
                words[pos] = w
            if rng.random() < 0.3:
                other = names[rng.integers(len(names))]
                words[int(rng.integers(length))] = str(rng.choice(vocab[other]))
            f.write(f"{label}\t{' '.join(words)}\n")


def read_tsv(path: str):
    """Return (labels, texts); a line without a TAB raises ValueError naming the line."""
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            label, sep, text = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}, line {lineno}: expected 'label<TAB>text', got "
                                 f"{line[:60]!r}")
            labels.append(label)
            texts.append(text)
    if not labels:
        raise ValueError(f"{path}: no examples found")
    return labels, texts


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """EmbeddingBag(mean, mask_zero) followed by a dense softmax layer."""

    def __init__(self, vocab: int, dim: int, classes: int, lr: float, seed: int):
        rng = np.random.default_rng(seed)
        self.bag = fe.EmbeddingBag(vocab, dim, mode="mean", mask_zero=True, seed=seed)
        limit = np.sqrt(6.0 / (dim + classes))  # glorot uniform
        self.w = rng.uniform(-limit, limit, size=(dim, classes)).astype(np.float32)
        self.b = np.zeros(classes, np.float32)
        self.opt = fe.optimizers.Adam(learning_rate=lr)

    def logits(self, ids: np.ndarray) -> np.ndarray:
        return self.bag(ids) @ self.w + self.b

    def train_step(self, ids: np.ndarray, y: np.ndarray) -> float:
        """One Adam step on a batch; returns the batch's summed cross-entropy."""
        h = self.bag(ids)
        p = softmax(h @ self.w + self.b)
        rows = np.arange(len(y))
        loss = float(-np.log(np.maximum(p[rows, y], 1e-12)).sum())
        p[rows, y] -= 1.0
        p /= len(y)
        self.opt.apply_gradients([(self.bag.backward(p @ self.w.T), self.bag),
                                  (h.T @ p, self.w), (p.sum(axis=0), self.b)])
        return loss

    def accuracy(self, ids: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
        correct = 0
        for s in range(0, len(y), batch):
            correct += int((self.logits(ids[s:s + batch]).argmax(axis=1) == y[s:s + batch]).sum())
        return correct / max(1, len(y))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Train EmbeddingBag(mean) + softmax on a 'label<TAB>text' file and print "
                    "the test accuracy. Without FILE, a synthetic four-topic data set is "
                    "generated in a temporary folder so the example runs anywhere.")
    parser.add_argument("file", nargs="?", help="UTF-8 text file, one 'label<TAB>text' per "
                                                "line (default: generated synthetic data)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=32, help="embedding size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument("--maxlen", type=int, default=100, help="ids kept per text")
    parser.add_argument("--num-words", type=int, default=None,
                        help="keep only the most frequent words (Keras num_words)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="native threads")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.threads:
        fe.set_num_threads(args.threads)
    if not 0.0 < args.test_fraction < 1.0:
        parser.error("--test-fraction must be in (0, 1)")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = os.path.join(tmp, "synthetic.tsv")
            make_synthetic(path, seed=args.seed)
            log.info("no file given: generated %s (synthetic four-topic data)", path)
        labels, texts = read_tsv(path)

    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    y_all = np.array([index[label] for label in labels], dtype=np.int64)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(texts))
    n_test = max(1, int(round(len(texts) * args.test_fraction)))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if len(train_idx) == 0:
        parser.error("not enough examples for a train/test split")

    tok = fe.Tokenizer(num_words=args.num_words, oov_token=None)
    tok.fit_on_texts([texts[i] for i in train_idx])
    seqs = tok.texts_to_sequences(texts)
    ids_all = fe.pad_sequences(seqs, maxlen=args.maxlen, padding="post", truncating="post")
    vocab = (args.num_words if args.num_words else len(tok.word_index) + 1)
    x_train, y_train = ids_all[train_idx], y_all[train_idx]
    x_test, y_test = ids_all[test_idx], y_all[test_idx]
    log.info("%d train / %d test examples, %d classes, vocabulary %d, %d ids per text",
             len(y_train), len(y_test), len(names), vocab, ids_all.shape[1])

    model = Classifier(vocab, args.dim, len(names), args.lr, args.seed)
    use_bar = tqdm is not None and not args.no_progress
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(len(y_train))
        starts = range(0, len(perm), args.batch_size)
        bar = tqdm(starts, desc=f"epoch {epoch}/{args.epochs}", unit="batch",
                   leave=True) if use_bar else starts
        total, seen = 0.0, 0
        for s in bar:
            sel = perm[s:s + args.batch_size]
            total += model.train_step(x_train[sel], y_train[sel])
            seen += len(sel)
            if use_bar:
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        if use_bar:
            bar.close()
        else:
            log.info("epoch %d/%d: loss %.4f, train accuracy %.3f (%.2f s)", epoch, args.epochs,
                     total / seen, model.accuracy(x_train, y_train), time.perf_counter() - t0)
    acc = model.accuracy(x_test, y_test)
    print(f"test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
