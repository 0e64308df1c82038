#!/usr/bin/env python3
"""Keras' "Using pre-trained word embeddings" workflow, with fastembed.

    Tokenizer -> pad_sequences -> load_vectors -> build_embedding_matrix
      -> frozen Embedding.from_pretrained -> pooled features -> small numpy classifier

Inputs: a word-vectors file (GloVe text, word2vec text or binary, fastText .vec; the
format is detected) and a labelled text file with one ``label<TAB>text`` per line.
Without arguments, small ones are generated in a temporary folder (vectors in which each
topic's words lie near a topic direction, and texts mixing filler with topic words), so
the script runs anywhere:

    python examples/pretrained_embeddings.py
    python examples/pretrained_embeddings.py glove.6B.100d.txt news.tsv --num-words 20000

As in the Keras example, words without a pretrained vector get zero rows and row 0
(padding) is zero; the embedding stays frozen, so the pooled features are computed once
and only the dense head is trained (Adam, fastembed.optimizers).  Prints the coverage
("found N words (M misses)"), the loss per epoch and the validation accuracy.
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

log = logging.getLogger("pretrained_embeddings")

TOPICS = {
    "sports": "match team goal player coach season league score win stadium fans referee",
    "science": "experiment theory data cell energy physics research study laboratory atom",
    "food": "recipe dinner taste kitchen chef bread cheese sauce flavour spicy bake menu",
    "travel": "flight hotel beach trip passport museum city tour island train journey",
}
FILLER = ("the a an of and to in on for with it this that is was are be at by from very "
          "really quite new old big small good bad today yesterday we they i you").split()


def make_synthetic(folder: str, dim: int = 50, n_texts: int = 2000, seed: int = 0):
    """Write ``vectors.txt`` (GloVe format) and ``texts.tsv``; return their paths.

    Topic words are a topic direction plus noise; filler words are noise.  Two topic words
    per topic are left out of the vectors file, so the coverage is not 100 %.
    """
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    vec_path = os.path.join(folder, "vectors.txt")
    with open(vec_path, "w", encoding="utf-8") as f:
        for name in names:
            centre = rng.normal(0, 1, dim)
            for w in TOPICS[name].split()[:-2]:
                v = centre + rng.normal(0, 0.6, dim)
                f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")
        for w in FILLER + [f"rare{i}" for i in range(200)]:
            v = rng.normal(0, 1, dim)
            f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")
    txt_path = os.path.join(folder, "texts.tsv")
    with open(txt_path, "w", encoding="utf-8") as f:
        for _ in range(n_texts):
            label = names[rng.integers(len(names))]
            words = list(rng.choice(FILLER, size=int(rng.integers(6, 16))))
            topic = TOPICS[label].split()
            for pos in rng.integers(0, len(words), size=int(rng.integers(1, 3))):
                words[pos] = str(rng.choice(topic))
            f.write(f"{label}\t{' '.join(words)}\n")
    return vec_path, txt_path


def read_tsv(path: str):
    """(labels, texts); a line without a TAB raises ValueError naming the line."""
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
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


def pooled_features(emb: fe.Embedding, ids: np.ndarray, batch: int = 2048) -> np.ndarray:
    """[masked mean | max] of the frozen embeddings of each padded sequence."""
    out = []
    for s in range(0, len(ids), batch):
        x = ids[s:s + batch]
        e = emb(x)                                    # (B, L, D)
        mask = (x != 0)[..., None]
        n = np.maximum(mask.sum(axis=1), 1)
        mean = (e * mask).sum(axis=1) / n
        mx = np.where(mask, e, -np.inf).max(axis=1)
        mx[~np.isfinite(mx)] = 0.0                    # an all-padding text
        out.append(np.concatenate([mean, mx], axis=1))
    return np.concatenate(out).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Head:
    """Dense(hidden, relu) -> Dense(classes, softmax), trained with fastembed's Adam."""

    def __init__(self, n_in: int, hidden: int, classes: int, lr: float, seed: int):
        rng = np.random.default_rng(seed)
        lim1, lim2 = np.sqrt(6 / (n_in + hidden)), np.sqrt(6 / (hidden + classes))
        self.w1 = rng.uniform(-lim1, lim1, (n_in, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = rng.uniform(-lim2, lim2, (hidden, classes)).astype(np.float32)
        self.b2 = np.zeros(classes, np.float32)
        self.opt = fe.optimizers.Adam(learning_rate=lr)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (np.maximum(x @ self.w1 + self.b1, 0) @ self.w2 + self.b2).argmax(axis=1)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        h = np.maximum(x @ self.w1 + self.b1, 0)
        p = softmax(h @ self.w2 + self.b2)
        rows = np.arange(len(y))
        loss = float(-np.log(np.maximum(p[rows, y], 1e-12)).sum())
        p[rows, y] -= 1.0
        p /= len(y)
        dh = (p @ self.w2.T) * (h > 0)
        self.opt.apply_gradients([(h.T @ p, self.w2), (p.sum(axis=0), self.b2),
                                  (x.T @ dh, self.w1), (dh.sum(axis=0), self.b1)])
        return loss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Classify 'label<TAB>text' lines with frozen pretrained word vectors "
                    "(the Keras pretrained-embeddings workflow). Without arguments, small "
                    "synthetic files are generated so the example runs anywhere.")
    parser.add_argument("vectors", nargs="?", help="word vectors (GloVe / word2vec / .vec)")
    parser.add_argument("texts", nargs="?", help="UTF-8 file, one 'label<TAB>text' per line")
    parser.add_argument("--num-words", type=int, default=20000, help="Keras MAX_NUM_WORDS")
    parser.add_argument("--maxlen", type=int, default=1000, help="MAX_SEQUENCE_LENGTH")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N vectors")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if (args.vectors is None) != (args.texts is None):
        parser.error("give both a vectors file and a texts file, or neither")
    if not 0.0 < args.validation_split < 1.0:
        parser.error("--validation-split must be in (0, 1)")

    with tempfile.TemporaryDirectory() as tmp:
        vec_path, txt_path = args.vectors, args.texts
        if vec_path is None:
            vec_path, txt_path = make_synthetic(tmp, seed=args.seed)
            log.info("no files given: generated %s and %s", vec_path, txt_path)
        labels, texts = read_tsv(txt_path)
        t0 = time.perf_counter()
        vectors = fe.load_vectors(vec_path, limit=args.limit)
        log.info("found %d word vectors of %d dims (%s format) in %.2f s", len(vectors),
                 vectors.dim, vectors.format, time.perf_counter() - t0)

    # The Keras pipeline: Tokenizer -> sequences -> pre-padded to MAX_SEQUENCE_LENGTH.
    tokenizer = fe.Tokenizer(num_words=args.num_words)
    tokenizer.fit_on_texts(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    word_index = tokenizer.word_index
    data = fe.pad_sequences(sequences, maxlen=min(args.maxlen, max(map(len, sequences)) or 1))
    log.info("found %d unique tokens; data shape %s", len(word_index), data.shape)

    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels], dtype=np.int64)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    n_val = max(1, int(round(len(y) * args.validation_split)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) == 0:
        parser.error("not enough examples for a train/validation split")

    # Row i = the vector of the word with index i; zeros for misses and for padding.
    num_words = min(args.num_words, len(word_index) + 1)
    matrix = fe.build_embedding_matrix(word_index, vectors, num_words=num_words)
    found, missing = fe.embedding_coverage(word_index, vectors, num_words=num_words)
    log.info("found %d words (%d misses); embedding matrix %s", found, missing, matrix.shape)
    embedding = fe.Embedding.from_pretrained(matrix)  # frozen, as trainable=False in Keras
    assert not embedding.trainable

    feats = pooled_features(embedding, data)
    x_train, y_train = feats[train_idx], y[train_idx]
    x_val, y_val = feats[val_idx], y[val_idx]
    head = Head(feats.shape[1], args.hidden, len(names), args.lr, args.seed)
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(y_train))
        total = 0.0
        for s in range(0, len(perm), args.batch_size):
            sel = perm[s:s + args.batch_size]
            total += head.train_step(x_train[sel], y_train[sel])
        log.info("epoch %d/%d: loss %.4f, val accuracy %.3f", epoch, args.epochs,
                 total / len(perm), float((head.predict(x_val) == y_val).mean()))
    acc = float((head.predict(x_val) == y_val).mean())
    print(f"validation accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
