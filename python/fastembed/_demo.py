"""``python -m fastembed demo``: the seed walkthrough, then a short training run."""
from __future__ import annotations

import argparse
from typing import Any, List, Optional

import numpy as np
import numpy.typing as npt

from .layers import Embedding, EmbeddingBag
from .optimizers import Adam
from .sequence import pad_sequences
from .text import Tokenizer

DESCRIPTION = """\
The seed example, then a small classifier trained in a few seconds.

Part 1 encodes two phrases with Tokenizer(order="appearance", index_from=0), which
numbers words by first appearance from 0 as the article the example comes from does
(the default, Keras', numbers them by frequency from 1 and keeps 0 for padding),
builds Embedding(7, 2, input_length=5) and looks the second phrase up.

Part 2 trains EmbeddingBag(mean) + a numpy softmax head with fastembed's Adam on 48
built-in labelled reviews and prints, per epoch, the training loss and the accuracy on
the training reviews and on 12 held-out (validation) reviews."""

PHRASES = ["Hope to see you soon", "Nice to see you again"]

# A tiny sentiment set written for this demo: 1 = positive, 0 = negative.
REVIEWS = [
    (1, "I loved this film, the acting was wonderful"),
    (1, "a great story with a happy ending"),
    (1, "what a beautiful and moving picture"),
    (1, "the best movie I have seen this year"),
    (1, "brilliant performances and a clever plot"),
    (1, "funny, warm and full of heart"),
    (1, "I enjoyed every minute of it"),
    (1, "a delightful surprise, highly recommended"),
    (1, "excellent music and gorgeous scenery"),
    (1, "the cast is superb and the script is sharp"),
    (1, "a wonderful family film, we all loved it"),
    (1, "smart, touching and very well made"),
    (1, "great fun from start to finish"),
    (1, "an amazing and inspiring true story"),
    (1, "the director did a fantastic job"),
    (1, "lovely characters and a charming tale"),
    (1, "I would happily watch it again"),
    (1, "a masterpiece, simply great"),
    (1, "the jokes are clever and the pace is perfect"),
    (1, "a beautiful film with excellent acting"),
    (1, "I laughed and cried, a real gem"),
    (1, "strong story, great cast, loved it"),
    (1, "pure joy, the best kind of cinema"),
    (1, "an enjoyable and heartwarming evening"),
    (1, "fresh, original and wonderfully acted"),
    (1, "my favourite film of the decade"),
    (1, "a clever, funny and happy movie"),
    (1, "superb direction and a moving score"),
    (1, "highly enjoyable with a great ending"),
    (1, "a brilliant and beautiful experience"),
    (0, "I hated this film, the acting was awful"),
    (0, "a boring story with a terrible ending"),
    (0, "what a dull and pointless picture"),
    (0, "the worst movie I have seen this year"),
    (0, "wooden performances and a stupid plot"),
    (0, "not funny, cold and empty"),
    (0, "I regretted every minute of it"),
    (0, "a painful mess, avoid it"),
    (0, "terrible music and ugly scenery"),
    (0, "the cast is weak and the script is lazy"),
    (0, "an awful family film, we all hated it"),
    (0, "dumb, tedious and badly made"),
    (0, "boring from start to finish"),
    (0, "a silly and annoying fake story"),
    (0, "the director did a poor job"),
    (0, "flat characters and a tired tale"),
    (0, "I would never watch it again"),
    (0, "a disaster, simply bad"),
    (0, "the jokes are stale and the pace is slow"),
    (0, "an ugly film with terrible acting"),
    (0, "I yawned and left early, a real waste"),
    (0, "weak story, bad cast, hated it"),
    (0, "pure pain, the worst kind of cinema"),
    (0, "a dull and depressing evening"),
    (0, "stale, predictable and poorly acted"),
    (0, "my least favourite film of the decade"),
    (0, "a stupid, boring and sad movie"),
    (0, "poor direction and a grating score"),
    (0, "a waste of time with an awful ending"),
    (0, "a bad and forgettable experience"),
]


def walkthrough() -> None:
    print("== the seed example ==")
    print('Tokenizer(order="appearance", index_from=0): words numbered by first appearance\n'
          "from 0 ('Hope' gets 0), as in the article this example comes from. By default, as\n"
          "in Keras, words are numbered by frequency from 1 and 0 is left for padding (part 2).")
    tok = Tokenizer(order="appearance", index_from=0)
    tok.fit_on_texts(PHRASES)
    encoded = tok.texts_to_sequences(PHRASES)
    for phrase, ids in zip(PHRASES, encoded):
        print(f"{phrase!r:26} -> {ids}")
    vocab = len(tok.word_index)
    emb = Embedding(vocab, 2, input_length=5, seed=0)
    print(f"\nEmbedding({vocab}, 2, input_length=5): a {emb.embeddings.shape} table, one row "
          f"per id,\nholding random starting values (nothing is trained in this part):")
    with np.printoptions(precision=4, suppress=True):
        print(emb.get_weights()[0])
        print(f"\n{PHRASES[1]!r} = ids {encoded[1]}, looked up as five 2-d vectors:")
        print(emb(np.array([encoded[1]]))[0])


def softmax(z: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p: npt.NDArray[np.floating[Any]] = e / e.sum(axis=1, keepdims=True)
    return p


def train(epochs: int = 12, dim: int = 8, batch: int = 12, seed: int = 0) -> List[float]:
    """Train EmbeddingBag(mean) + softmax head on REVIEWS (every fifth one held out for
    validation); returns the per-epoch training losses."""
    print("\n== learning an embedding: EmbeddingBag(mean) + softmax, Adam ==")
    held_out = np.arange(len(REVIEWS)) % 5 == 4
    labels = np.array([y for y, _ in REVIEWS])
    texts = [t for _, t in REVIEWS]
    train_texts = [t for t, h in zip(texts, held_out) if not h]
    tok = Tokenizer()  # fitted on the training reviews only: unseen words are dropped
    tok.fit_on_texts(train_texts)
    all_ids = pad_sequences(tok.texts_to_sequences(texts), maxlen=12, padding="post")
    ids, y_train = all_ids[~held_out], labels[~held_out]
    val_ids, y_val = all_ids[held_out], labels[held_out]
    vocab = len(tok.word_index) + 1
    print(f"{len(y_train)} labelled reviews to train on, {len(y_val)} held out; "
          f"{vocab - 1} words, padded to {ids.shape[1]} ids")
    rng = np.random.default_rng(seed)
    bag = EmbeddingBag(vocab, dim, mode="mean", mask_zero=True, seed=seed)
    w = (rng.standard_normal((dim, 2)) * 0.1).astype(np.float32)
    b = np.zeros(2, np.float32)
    opt = Adam(learning_rate=0.05)

    def accuracy(x: npt.NDArray[np.int32], y: npt.NDArray[np.int_]) -> float:
        return float(np.mean((bag(x) @ w + b).argmax(axis=1) == y))

    losses: List[float] = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        order = rng.permutation(len(y_train))
        for s in range(0, len(y_train), batch):
            sel = order[s:s + batch]
            h = bag(ids[sel])
            p = softmax(h @ w + b)
            y = y_train[sel]
            rows = np.arange(len(sel))
            total += float(-np.log(p[rows, y]).sum())
            p[rows, y] -= 1.0
            p /= len(sel)
            opt.apply_gradients([(bag.backward(p @ w.T), bag), (h.T @ p, w), (p.sum(axis=0), b)])
        losses.append(total / len(y_train))
        print(f"epoch {epoch:2d}/{epochs}  loss {losses[-1]:.4f}  "
              f"training accuracy {accuracy(ids, y_train):.2f}  "
              f"validation accuracy {accuracy(val_ids, y_val):.2f}")
    tests = ["a wonderful and clever film", "a boring and awful film"]
    probs = softmax(bag(pad_sequences(tok.texts_to_sequences(tests), maxlen=12,
                                      padding="post")) @ w + b)
    for text, pr in zip(tests, probs):
        print(f"{text!r:32} -> p(positive) = {pr[1]:.2f}")
    return losses


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastembed demo", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    args = parser.parse_args(argv)
    walkthrough()
    train(epochs=args.epochs)
    return 0
