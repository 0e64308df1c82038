"""Encode and embed a text corpus in parallel with dask.bag, and check the result.

The tokenizer is fitted once (its vocabulary is global); then every partition of the
corpus is encoded (``texts_to_sequences`` + ``pad_sequences``) and embedded (an
``EmbeddingBag`` mean over the non-padding ids, i.e. one vector per document) on the
workers of a local dask cluster.  The Tokenizer and the EmbeddingBag travel to the
workers by pickling.  The script then does the same in this process alone and checks
that both give the same array, bit for bit, and prints that.

    python examples/dask_encode.py                    # built-in corpus, 2 workers
    python examples/dask_encode.py --docs 20000 --workers 2 --partitions 8
    python examples/dask_encode.py --file corpus.txt  # one document per line
    python examples/dask_encode.py --scheduler processes  # no distributed: dask's pool

Needs dask (``pip install "dask[bag]" distributed``); exits with a message (status 2)
when it is missing.  Exit status 1 means the parallel result differed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import fastembed as fe

WORDS = ("the a of to and in is it that for on was with as at by an be this from or have "
         "not are but they his her she he we you all one there were which their what when "
         "cat dog mat sat ran home river tree stone light dark night day sun moon star sea "
         "road town city house garden window door table chair book page word line song").split()


def builtin_corpus(n_docs: int, seed: int = 0) -> list[str]:
    """A deterministic corpus of `n_docs` short documents with a Zipf-like vocabulary."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    p /= p.sum()
    lengths = rng.integers(0, 30, n_docs)
    total = int(lengths.sum())
    words = [WORDS[w] for w in rng.choice(len(WORDS), size=total, p=p)]
    # About one word in ten is a rarer one, so the vocabulary grows with the corpus.
    for i in np.flatnonzero(rng.random(total) < 0.1):
        words[i] = f"w{rng.zipf(1.3) % 20000}"
    docs, at = [], 0
    for n in lengths:
        docs.append(" ".join(words[at:at + n]).capitalize() + ".")
        at += n
    return docs


def encode_embed(texts, tokenizer, bag, maxlen):
    """Texts -> (ids (n, maxlen) int32, vectors (n, dim)): the per-partition work."""
    texts = list(texts)
    seqs = tokenizer.texts_to_sequences(texts)
    ids = fe.pad_sequences(seqs, maxlen=maxlen, padding="post", truncating="post")
    if len(texts) == 0:
        return ids.reshape(0, maxlen), np.zeros((0, bag.embeddings.shape[1]),
                                               bag.embeddings.dtype)
    return ids, bag(ids)


def _partition(texts, tokenizer, bag, maxlen):
    # dask.bag.map_partitions hands over a list and expects an iterable back: one item
    # (the partition's arrays) per partition keeps them in order.
    return [encode_embed(texts, tokenizer, bag, maxlen)]


def run_dask(docs, tokenizer, bag, maxlen, partitions, scheduler, workers):
    import dask
    import dask.bag as db

    b = db.from_sequence(docs, npartitions=partitions)
    parts = b.map_partitions(_partition, tokenizer, bag, maxlen)
    if scheduler == "distributed":
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            print(f"local cluster: {len(client.scheduler_info()['workers'])} workers")
            results = parts.compute()
    else:
        with dask.config.set(scheduler="processes", num_workers=workers):
            results = parts.compute()
    ids = np.concatenate([r[0] for r in results]) if results else np.zeros((0, maxlen))
    vecs = np.concatenate([r[1] for r in results])
    return ids, vecs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", help="a text file, one document per line (default: built-in)")
    ap.add_argument("--docs", type=int, default=5000, help="built-in corpus size")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--maxlen", type=int, default=24)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--num-words", type=int, default=None)
    ap.add_argument("--scheduler", choices=["distributed", "processes"], default=None,
                    help="default: a distributed LocalCluster when distributed is "
                         "installed, else dask's process pool")
    args = ap.parse_args(argv)

    try:
        import dask.bag  # noqa: F401
    except ImportError:
        print("This example needs dask: pip install \"dask[bag]\" distributed "
              "(dask is optional for fastembed itself).", file=sys.stderr)
        return 2
    scheduler = args.scheduler
    if scheduler is None:
        try:
            import distributed  # noqa: F401
            scheduler = "distributed"
        except ImportError:
            scheduler = "processes"

    if args.file:
        with open(args.file, encoding="utf-8") as f:
            docs = [line.rstrip("\n") for line in f]
    else:
        docs = builtin_corpus(args.docs)
    tokenizer = fe.Tokenizer(num_words=args.num_words, oov_token="<unk>")
    tokenizer.fit_on_texts(docs)
    vocab = (args.num_words or len(tokenizer.word_index) + 1)
    bag = fe.EmbeddingBag(vocab, args.dim, mode="mean", mask_zero=True, seed=0)
    print(f"{len(docs)} documents, vocabulary {len(tokenizer.word_index)} words, "
          f"table {bag.embeddings.shape}, scheduler {scheduler}")

    t0 = time.perf_counter()
    ids_d, vec_d = run_dask(docs, tokenizer, bag, args.maxlen, args.partitions, scheduler,
                            args.workers)
    t1 = time.perf_counter()
    ids_s, vec_s = encode_embed(docs, tokenizer, bag, args.maxlen)
    t2 = time.perf_counter()
    print(f"dask: {t1 - t0:.2f} s ({args.partitions} partitions), "
          f"single process: {t2 - t1:.2f} s")
    same = (ids_d.shape == ids_s.shape and np.array_equal(ids_d, ids_s)
            and vec_d.dtype == vec_s.dtype and vec_d.tobytes() == vec_s.tobytes())
    print(f"ids {ids_s.shape}, vectors {vec_s.shape} {vec_s.dtype}")
    print(f"dask result identical to single process: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
