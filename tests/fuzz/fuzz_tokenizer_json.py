"""Fuzz target: fastembed.tokenizer_from_json.

Bytes decode to a JSON text: either the raw bytes (decoded as UTF-8 with replacement),
or a Keras-format tokenizer document assembled from pieces, with fields missing, of the
wrong JSON type, double-encoded or not, holding bad values (negative / huge / bool ids,
non-integer ``index_docs`` keys, inconsistent ``word_index`` / ``index_word``), unknown
keys, and deep nesting.

A third kind of document is a real tokenizer's, with one or two of its cross-field
invariants broken (``word_docs`` naming a word ``word_counts`` lacks, two words sharing
an id, bad counts...).

Accepted outcomes (the contract this target enforces):
- a Tokenizer, which must then be usable: ``get_config()`` and ``to_json()`` work, the
  JSON round-trips to the same config, ``texts_to_sequences`` /
  ``sequences_to_texts`` either work (lists of ints / strings) or raise
  ValueError/TypeError, and it can be fitted further (``fit_on_texts``,
  ``fit_on_sequences``): a fit either succeeds, leaving a consistent tokenizer, or
  raises ValueError/TypeError and changes nothing;
- ValueError: malformed JSON (``json.JSONDecodeError`` is a ValueError), a document that
  is not a Keras tokenizer, a missing field, or a bad field value;
- TypeError: a field whose JSON type is wrong where the constructor checks types.

KeyError, AttributeError, IndexError, RecursionError, OverflowError, a crash or a hang
are findings: every malformed document must surface as ValueError (or TypeError), naming
what is wrong.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bytes import ByteReader, fuzz_main  # noqa: E402

ALLOWED = (ValueError, TypeError)
fe = None


def load():
    global fe
    if fe is None:
        import fastembed

        fe = fastembed
    return fe


WORDS = ["the", "cat", "sat", "", " ", "caf\u00e9", "\u00a0", "a b", "UPPER", "\ud83d\ude00",
         "0", "1", "-", "\x00", "x" * 50]
SCALARS = [None, True, False, 0, 1, -1, 2, 7, 2**31, 2**63, 2**70, 1.5, float("nan"),
           "", "x", "3", [], {}, [1], {"a": 1}]


def _int_like(r: ByteReader):
    return r.pick([0, 1, 2, 3, 4, 5, 6, 1, 2, 3, -1, 2**40, 2**64, True, 1.0, 2.5, "1", None])


def _mapping(r: ByteReader, key_kind: str):
    n = r.int_in(0, 5)
    d = {}
    for i in range(n):
        w = r.pick(WORDS)
        if key_kind == "int":
            k = r.pick([str(i + 1), str(i), "-1", "abc", "1.5", "", "99999999999999999999",
                        str(r.int_in(0, 9))])
            d[k] = w if r.u8() % 4 else _int_like(r)
        else:
            d[w] = _int_like(r) if r.u8() % 5 else r.pick(WORDS)
    return d


def _field(r: ByteReader, kind: str):
    how = r.u8() % 10
    if how == 0:
        return r.pick(SCALARS)
    if kind == "json-str":
        inner = _mapping(r, r.pick(["word", "int"]))
        if how == 1:
            return inner  # not double-encoded
        if how == 2:
            return json.dumps(inner)[:-1]  # broken inner JSON
        if how == 3:
            return json.dumps([inner])
        return json.dumps(inner)
    if kind == "int-or-null":
        return r.pick([None, None, 0, 1, 3, 10, -2, 2**63, True, "5", 2.0])
    if kind == "bool":
        return r.pick([True, False, True, False, 1, 0, "true", None])
    if kind == "str":
        return r.pick(['!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', " ", "", "ab", "\u00a0", None, 3])
    if kind == "str-or-null":
        return r.pick([None, None, "<OOV>", "", "the", 5, ["x"]])
    if kind == "int":
        return r.pick([0, 1, 2, -1, 2**70, 1.5, "2", None])
    return None


FIELDS = [
    ("num_words", "int-or-null"), ("filters", "str"), ("lower", "bool"), ("split", "str"),
    ("char_level", "bool"), ("oov_token", "str-or-null"), ("document_count", "int"),
    ("word_counts", "json-str"), ("word_docs", "json-str"), ("index_docs", "json-str"),
    ("index_word", "json-str"), ("word_index", "json-str"),
]


JSON_FIELDS = ("word_counts", "word_docs", "index_docs", "index_word", "word_index")


def _mutate(r: ByteReader, f: dict) -> None:
    """One break of a cross-field invariant that Keras' own documents always keep."""
    wc, wd, idoc, iw, wi = (f[k] for k in JSON_FIELDS)
    how = r.u8() % 8
    if how == 0:
        wd[r.pick(WORDS) + "~"] = r.int_in(0, 3)  # word_docs names an uncounted word
    elif how == 1 and wd:
        wc.pop(r.pick(sorted(wd)), None)  # ... the same, by dropping the count
    elif how == 2 and len(wi) > 1:
        a, b = r.pick(sorted(wi)), r.pick(sorted(wi))
        wi[a] = wi[b]  # two words share an id
        f["index_word"] = {str(i): w for w, i in wi.items()}
    elif how == 3 and wc:
        wc[r.pick(sorted(wc))] = r.pick([-1, True, 1.5, 2**63, "3", None])
    elif how == 4:
        idoc[r.pick(["-1", "x", "1.5", str(2**63)])] = r.int_in(0, 2)
    elif how == 5 and wd:
        wd[r.pick(sorted(wd))] = r.pick([-1, False, 0.5, 2**64, [1]])
    elif how == 6 and wi:
        w = r.pick(sorted(wi))
        del wi[w]  # index_word keeps the id: no longer the inverse
    # 7: unchanged (a valid document)


def mutated_document(r: ByteReader) -> str:
    """A real tokenizer's document with a few invariants broken (the raw generator
    above rarely assembles a document consistent enough to reach these checks)."""
    tok = fe.Tokenizer(oov_token=r.pick([None, "<OOV>"]), num_words=r.pick([None, 3]),
                       char_level=r.u8() % 4 == 0)
    texts = [" ".join(r.pick(WORDS) for _ in range(r.int_in(0, 4)))
             for _ in range(r.int_in(0, 4))]
    tok.fit_on_texts(texts)
    if r.u8() % 3 == 0:
        tok.fit_on_sequences([[r.int_in(0, 9) for _ in range(r.int_in(0, 3))]])
    config = tok.get_config()
    fields = {k: json.loads(config[k]) for k in JSON_FIELDS}
    for _ in range(r.int_in(0, 2)):
        _mutate(r, fields)
    config.update({k: json.dumps(v) for k, v in fields.items()})
    return json.dumps({"class_name": "Tokenizer", "config": config})


def make_document(r: ByteReader) -> str:
    how = r.u8() % 8
    if how == 0:
        return r.rest().decode("utf-8", errors="replace")
    if how == 1:
        return "[" * r.int_in(1, 100_000) + "]" * r.int_in(0, 3)  # deep nesting
    if how == 7:
        return mutated_document(r)
    config = {}
    for name, kind in FIELDS:
        if r.u8() % 12 == 0:
            continue  # missing
        config[name] = _field(r, kind)
    if r.u8() % 6 == 0:
        config[r.pick(["order", "index_from", "analyzer", "bogus", "__class__"])] = \
            r.pick(SCALARS + ["appearance", "frequency"])
    doc = {"class_name": r.pick(["Tokenizer", "Tokenizer", "Tokenizer", "Other", 3]),
           "config": config}
    k = r.u8() % 10
    if k == 0:
        doc = config  # no wrapper
    elif k == 1:
        doc = {"class_name": "Tokenizer", "config": r.pick(SCALARS)}
    elif k == 2:
        doc = [doc]
    text = json.dumps(doc)
    if r.u8() % 10 == 0:
        text = text[:r.int_in(0, len(text))]  # truncated
    return text


def check_tokenizer(tok):
    assert isinstance(tok, fe.Tokenizer), type(tok)
    cfg = tok.get_config()
    assert isinstance(cfg, dict)
    js = tok.to_json()
    assert isinstance(js, str)
    json.loads(js)
    again = fe.tokenizer_from_json(js)
    # Keras' quirk, kept for parity: with an oov_token that has no index (an unfitted
    # tokenizer), unknown words encode as None and sequences_to_texts raises KeyError.
    oov_missing = tok.oov_token is not None and tok.oov_token not in tok.word_index
    assert again.get_config() == cfg, "to_json / tokenizer_from_json does not round-trip"
    try:
        seqs = tok.texts_to_sequences(["the cat sat on the mat", "", "caf\u00e9 UPPER"])
    except ALLOWED:
        pass
    else:
        assert isinstance(seqs, list) and len(seqs) == 3
        for s in seqs:
            assert all(isinstance(i, int) or (i is None and oov_missing) for i in s), s
    try:
        texts = tok.sequences_to_texts([[1, 2, 3], [], [0, 10**6]])
    except ALLOWED:
        pass
    except KeyError:
        # Keras' quirk again: an OOV token without an index makes sequences_to_texts
        # look up index_word[None].
        assert oov_missing
    else:
        assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
    check_fits(tok)


def state(tok):
    return (list(tok.word_counts.items()), dict(tok.word_docs), dict(tok.index_docs),
            list(tok.word_index.items()), list(tok.index_word.items()), tok.document_count)


def check_fits(tok):
    """A loaded tokenizer can be fitted further; a fit that fails changes nothing."""
    for fit, n in ((lambda: tok.fit_on_texts(["the cat sat", "zebra CAF\u00c9 new", ""]), 3),
                   (lambda: tok.fit_on_sequences([[1, 2, 2], [], [7]]), 3)):
        before = state(tok)
        try:
            fit()
        except ALLOWED:
            assert state(tok) == before, "a failed fit changed the tokenizer"
            continue
        assert tok.document_count == before[-1] + n
        assert tok.index_word == {i: w for w, i in tok.word_index.items()}
        assert all(w in tok.word_index for w in tok.word_docs)
        assert all(w in tok.word_counts for w in tok.word_docs)


def TestOneInput(data: bytes) -> None:
    load()
    r = ByteReader(data)
    text = make_document(r)
    try:
        tok = fe.tokenizer_from_json(text)
    except ALLOWED:
        return
    check_tokenizer(tok)


def main():
    fuzz_main(globals(), load)


if __name__ == "__main__":
    main()
