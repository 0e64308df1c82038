"""fe.Tokenizer beyond keras_preprocessing: fastembed's text extensions and the parts of
the tf-keras Tokenizer that keras_preprocessing 1.1.2 lacks (``analyzer``), with
independently derived values; ``text_to_word_sequence`` against Keras.

The Tokenizer's other tests: test_tokenizer_keras.py (output for output against
keras_preprocessing), test_tokenizer_json.py (tokenizer_from_json's checks of its
document), test_pickle.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastembed as fe

SEED_TEXTS = ["Hope to see you soon", "Nice to see you again"]
KERAS_KEYS = ["num_words", "filters", "lower", "split", "char_level", "oov_token",
              "document_count", "word_counts", "word_docs", "index_docs", "index_word",
              "word_index"]


def test_seed_example():
    tok = fe.Tokenizer(order="appearance", index_from=0)
    tok.fit_on_texts(SEED_TEXTS)
    assert tok.texts_to_sequences(SEED_TEXTS) == [[0, 1, 2, 3, 4], [5, 1, 2, 3, 6]]
    assert tok.word_index == {"hope": 0, "to": 1, "see": 2, "you": 3, "soon": 4,
                              "nice": 5, "again": 6}
    assert tok.index_word[6] == "again"
    assert tok.sequences_to_texts([[5, 1, 2, 3, 6]]) == ["nice to see you again"]
    m = tok.texts_to_matrix(SEED_TEXTS, mode="count")
    assert m.shape == (2, 7)
    assert m.tolist() == [[1, 1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 1, 1]]
    assert dict(tok.index_docs) == {0: 1, 1: 2, 2: 2, 3: 2, 4: 1, 5: 1, 6: 1}


def test_default_numbering_is_keras():
    tok = fe.Tokenizer()
    tok.fit_on_texts(SEED_TEXTS)
    # by count, ties by first appearance, from 1
    assert tok.texts_to_sequences(SEED_TEXTS) == [[4, 1, 2, 3, 5], [6, 1, 2, 3, 7]]


@given(texts=st.lists(st.text(alphabet="abc XYZ,.", max_size=20), max_size=6),
       k=st.integers(0, 4), oov=st.sampled_from([None, "<OOV>"]),
       order=st.sampled_from(["frequency", "appearance"]))
def test_index_from_shifts_everything(texts, k, oov, order):
    base = fe.Tokenizer(oov_token=oov, order=order)
    shifted = fe.Tokenizer(oov_token=oov, order=order, index_from=k)
    base.fit_on_texts(texts)
    shifted.fit_on_texts(texts)
    assert shifted.word_index == {w: i - 1 + k for w, i in base.word_index.items()}
    assert shifted.index_word == {i - 1 + k: w for i, w in base.index_word.items()}
    assert list(shifted.word_counts.items()) == list(base.word_counts.items())
    assert shifted.texts_to_sequences(texts) == [[i - 1 + k for i in s]
                                                 for s in base.texts_to_sequences(texts)]
    if oov is not None and texts:
        assert shifted.word_index[oov] == k
    if order == "appearance":
        words = list(base.word_counts)
        assert list(base.word_index) == ([oov] if oov else []) + words
    if base.word_index:
        mb = base.texts_to_matrix(texts, mode="count")
        ms = shifted.texts_to_matrix(texts, mode="count")
        assert ms.shape[1] == len(shifted.word_index) + k
        # base column i (i >= 1) is shifted column i - 1 + k; the first k are empty
        assert np.array_equal(ms[:, k:], mb[:, 1:])
        assert not ms[:, :k].any()


def test_index_from_with_num_words_and_oov():
    tok = fe.Tokenizer(num_words=6, oov_token="<unk>", index_from=3)
    tok.fit_on_texts(["a a a b b c", "d"])
    assert tok.word_index == {"<unk>": 3, "a": 4, "b": 5, "c": 6, "d": 7}
    # ids < num_words kept, the rest (and unknown words) become the OOV index
    assert tok.texts_to_sequences(["a b c d zz"]) == [[4, 5, 3, 3, 3]]
    assert tok.sequences_to_texts([[4, 5, 6, 0]]) == ["a b <unk> <unk>"]
    assert tok.texts_to_matrix(["a b c"], mode="binary").tolist() == [[0, 0, 0, 1, 1, 1]]


def test_extension_config_and_json():
    tok = fe.Tokenizer()
    tok.fit_on_texts(SEED_TEXTS)
    assert list(tok.get_config()) == KERAS_KEYS
    ext = fe.Tokenizer(order="appearance", index_from=0, oov_token="?")
    ext.fit_on_texts(SEED_TEXTS)
    cfg = ext.get_config()
    assert list(cfg) == KERAS_KEYS + ["order", "index_from"]
    assert cfg["order"] == "appearance" and cfg["index_from"] == 0
    back = fe.tokenizer_from_json(ext.to_json())
    assert back.order == "appearance" and back.index_from == 0
    assert back.word_index == ext.word_index
    assert back.texts_to_sequences(SEED_TEXTS + ["what"]) == \
        ext.texts_to_sequences(SEED_TEXTS + ["what"])
    # refitting a loaded tokenizer keeps the numbering scheme
    back.fit_on_texts(["brand new"])
    ext.fit_on_texts(["brand new"])
    assert back.word_index == ext.word_index
    only_index = fe.Tokenizer(index_from=2)
    assert list(only_index.get_config()) == KERAS_KEYS + ["index_from"]
    assert json.loads(only_index.to_json())["config"]["index_from"] == 2


@pytest.mark.parametrize("kw, exc", [({"order": "random"}, ValueError),
                                     ({"order": None}, ValueError),
                                     ({"index_from": -1}, ValueError),
                                     ({"index_from": 1.5}, TypeError),
                                     ({"index_from": True}, TypeError)])
def test_bad_extension_arguments(kw, exc):
    with pytest.raises(exc):
        fe.Tokenizer(**kw)


def test_analyzer():
    tok = fe.Tokenizer(analyzer=lambda t: t.split("|"))
    tok.fit_on_texts(["A|b|A", "b|c, d"])
    # no lower-casing and no filtering with an analyzer
    assert dict(tok.word_counts) == {"A": 2, "b": 2, "c, d": 1}
    assert tok.word_index == {"A": 1, "b": 2, "c, d": 3}
    assert tok.texts_to_sequences(["A|A|zz|c, d"]) == [[1, 1, 3]]
    # lists are pre-tokenized (lower-cased), the analyzer is not used
    assert tok.texts_to_sequences([["B", "A"]]) == [[2]]
    assert "analyzer" not in tok.get_config()
    assert fe.tokenizer_from_json(tok.to_json()).analyzer is None
    # char_level ignores the analyzer
    chars = fe.Tokenizer(char_level=True, analyzer=lambda t: ["never"])
    chars.fit_on_texts(["Ab"])
    assert chars.word_index == {"a": 1, "b": 2}


def test_analyzer_returning_an_iterator():
    # Keras iterates the token sequence twice (counts, then set() for documents):
    # an iterator is consumed by the first pass, so no document counts.
    tok = fe.Tokenizer(analyzer=lambda t: iter(t.split()))
    tok.fit_on_texts(["x y x", "y"])
    assert dict(tok.word_counts) == {"x": 2, "y": 2}
    assert dict(tok.word_docs) == {}
    assert tok.document_count == 2


def test_generators_and_multichar_split():
    tok = fe.Tokenizer(split="ab")
    tok.fit_on_texts(t for t in ["xabyabz", "y"])
    assert tok.word_index == {"y": 1, "x": 2, "z": 3}
    gen = tok.texts_to_sequences_generator(iter(["zabx", "q"]))
    assert next(gen) == [3, 2]
    assert next(gen) == []


# ------------------------------------------------------------- text_to_word_sequence

def test_text_to_word_sequence_examples():
    f = fe.text_to_word_sequence
    assert f("Hello, World! It's   a test-case.") == ["hello", "world", "it's", "a", "test",
                                                     "case"]
    assert f("a_b a-b a'b a.b") == ["a", "b", "a", "b", "a'b", "a", "b"]
    assert f("日本語 テキスト") == ["日本語", "テキスト"]
    assert f("emoji 😀!ok") == ["emoji", "😀", "ok"]
    assert f("") == [] and f("   ") == []
    assert f("a\r\nb") == ["a\r", "b"]
    assert f("xabyabz", split="ab") == ["x", "y", "z"]
    assert f("A,B", filters=[","], lower=False) == ["A", "B"]
    with pytest.raises(ValueError, match="empty separator"):
        f("a b", split="")


@given(text=st.text(max_size=40), lower=st.booleans(),
       split=st.sampled_from([" ", ",", "ab", "Σ", "\n"]),
       filters=st.sampled_from(['!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', "", "aΣ "]))
def test_text_to_word_sequence_matches_keras(text, lower, split, filters):
    kp_text = pytest.importorskip("keras_preprocessing.text")
    assert fe.text_to_word_sequence(text, filters, lower, split) == \
        kp_text.text_to_word_sequence(text, filters, lower, split)
