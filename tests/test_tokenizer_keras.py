"""fe.Tokenizer against keras_preprocessing 1.1.2's Tokenizer, output for output.

Differential tests (hypothesis corpora: unicode, punctuation, empty texts, repeated
words, pre-tokenized lists) over every constructor argument, plus fixed cases for
each method, the JSON format both ways and Keras' error behaviour.
"""
from __future__ import annotations

import json
import warnings
from collections import OrderedDict, defaultdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastembed as fe

kp_text = pytest.importorskip("keras_preprocessing.text")
KTokenizer = kp_text.Tokenizer

MODES = ["binary", "count", "tfidf", "freq"]

WORDS = ["the", "The", "THE", "cat", "Cat", "sat", "on", "mat", "dog", "it's", "ΟΔΟΣ",
         "Σ", "σοφός", "İstanbul", "Straße", "ÉCOLE", "café", "日本語", "😀", "naïve",
         "x", "y", "a-b", "new york", "e.g.", "ǅ", "ﬁ"]
SEPS = [" ", "  ", ", ", "! ", ".", "\t", "\n", "\r\n", "\xa0", " - ", "?", "'", "…", "_"]


@st.composite
def texts_st(draw, min_size=0, max_size=8):
    docs = []
    for _ in range(draw(st.integers(min_size, max_size))):
        pieces = draw(st.lists(st.one_of(st.sampled_from(WORDS),
                                         st.text(max_size=5)), max_size=12))
        seps = draw(st.lists(st.sampled_from(SEPS), min_size=len(pieces),
                             max_size=len(pieces)))
        docs.append("".join(p + s for p, s in zip(pieces, seps)))
    return docs


def assert_same_state(ours, ref):
    assert isinstance(ours.word_counts, OrderedDict)
    assert isinstance(ours.word_docs, defaultdict)
    assert isinstance(ours.index_docs, defaultdict)
    assert list(ours.word_counts.items()) == list(ref.word_counts.items())
    assert dict(ours.word_docs) == dict(ref.word_docs)
    assert dict(ours.index_docs) == dict(ref.index_docs)
    assert list(ours.word_index.items()) == list(ref.word_index.items())
    assert list(ours.index_word.items()) == list(ref.index_word.items())
    assert ours.document_count == ref.document_count
    # the ints are Python ints, as in Keras
    assert all(type(v) is int for v in ours.word_index.values())


def same_result(f_ours, f_ref):
    """Both calls give equal arrays, or both raise the same exception."""
    try:
        b = f_ref()
    except Exception as e:  # noqa: BLE001 - any Keras error must be mirrored
        with pytest.raises(type(e)) as got:
            f_ours()
        assert str(got.value) == str(e)
        return
    a = f_ours()
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b)


def assert_same_outputs(ours, ref, texts, extra_ids=()):
    seqs = ref.texts_to_sequences(texts)
    got = ours.texts_to_sequences(texts)
    assert got == seqs
    assert all(type(s) is list for s in got)
    assert list(ours.texts_to_sequences_generator(iter(texts))) == seqs
    ids = seqs + [list(extra_ids)]
    assert ours.sequences_to_texts(ids) == ref.sequences_to_texts(ids)
    assert list(ours.sequences_to_texts_generator(ids)) == ref.sequences_to_texts(ids)
    if ref.num_words or ref.word_index:
        for mode in MODES:
            if mode == "tfidf" and not ref.document_count:
                continue
            a = ours.texts_to_matrix(texts, mode=mode)
            b = ref.texts_to_matrix(texts, mode=mode)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b), mode
            same_result(lambda: ours.sequences_to_matrix(ids, mode=mode),
                        lambda: ref.sequences_to_matrix(ids, mode=mode))


CONFIGS = st.fixed_dictionaries({
    "num_words": st.sampled_from([None, 0, 1, 2, 3, 5, 10]),
    "oov_token": st.sampled_from([None, "<OOV>", "the", "cat"]),
    "lower": st.booleans(),
    "split": st.sampled_from([" ", " ", ",", "ab", "'"]),
    "filters": st.sampled_from([kp_text.text_to_word_sequence.__defaults__[0], "",
                                "aeiou!", [",", "."], "Σσ…\xa0", "'"]),
    "char_level": st.sampled_from([False, False, False, True]),
})


@given(config=CONFIGS, texts=texts_st(), more=texts_st(max_size=4),
       probe=texts_st(max_size=4),
       extra=st.lists(st.integers(-3, 40), max_size=6))
def test_differential_fit_and_transform(config, texts, more, probe, extra):
    ours, ref = fe.Tokenizer(**config), KTokenizer(**config)
    ours.fit_on_texts(texts)
    ref.fit_on_texts(texts)
    assert_same_state(ours, ref)
    assert_same_outputs(ours, ref, texts + probe, extra)
    # counts accumulate and the index is re-ranked on the next fit
    ours.fit_on_texts(iter(more))
    ref.fit_on_texts(iter(more))
    assert_same_state(ours, ref)
    assert_same_outputs(ours, ref, probe + texts, extra)


@given(texts=texts_st(min_size=1), num_words=st.sampled_from([None, 4]),
       oov=st.sampled_from([None, "<OOV>"]), lower=st.booleans())
def test_differential_pretokenized_and_mixed(texts, num_words, oov, lower):
    lists = [kp_text.text_to_word_sequence(t, lower=False) for t in texts]
    mixed = [x for pair in zip(texts, lists) for x in pair]
    ours = fe.Tokenizer(num_words=num_words, oov_token=oov, lower=lower)
    ref = KTokenizer(num_words=num_words, oov_token=oov, lower=lower)
    ours.fit_on_texts(mixed)
    ref.fit_on_texts(mixed)
    assert_same_state(ours, ref)
    assert_same_outputs(ours, ref, mixed + [["NEW", "york"], []])


@given(seqs=st.lists(st.lists(st.integers(-6, 12), max_size=8), max_size=6),
       num_words=st.sampled_from([None, 4, 6, 13]))
def test_differential_sequences(seqs, num_words):
    texts = ["a b c d e f g h i j k", "a a b", "c"]
    ours, ref = fe.Tokenizer(num_words=num_words), KTokenizer(num_words=num_words)
    ours.fit_on_texts(texts)
    ref.fit_on_texts(texts)
    ours.fit_on_sequences(seqs)
    ref.fit_on_sequences(seqs)
    assert_same_state(ours, ref)
    for mode in MODES:
        same_result(lambda: ours.sequences_to_matrix(seqs, mode=mode),
                    lambda: ref.sequences_to_matrix(seqs, mode=mode))
    assert ours.sequences_to_texts(seqs) == ref.sequences_to_texts(seqs)


# ------------------------------------------------------------------ fixed cases

PAPER = ["The cat sat on the mat.", "The dog ate my homework!", "cat Cat CAT dog"]


def pair(**kw):
    return fe.Tokenizer(**kw), KTokenizer(**kw)


def test_word_index_order_and_counts():
    ours, ref = pair()
    ours.fit_on_texts(PAPER)
    ref.fit_on_texts(PAPER)
    assert ours.word_index == {"cat": 1, "the": 2, "dog": 3, "sat": 4, "on": 5, "mat": 6,
                               "ate": 7, "my": 8, "homework": 9}
    assert_same_state(ours, ref)
    ours, ref = pair()
    ours.fit_on_texts(["z y x w", "x w z y"])
    ref.fit_on_texts(["z y x w", "x w z y"])
    assert list(ours.word_index) == ["z", "y", "x", "w"]
    assert_same_state(ours, ref)


def test_refit_reranks():
    ours, ref = pair()
    for t in (["a a b"], ["b b c"]):
        ours.fit_on_texts(t)
        ref.fit_on_texts(t)
    assert ours.word_index == {"b": 1, "a": 2, "c": 3}
    assert_same_state(ours, ref)


@pytest.mark.parametrize("kw", [dict(num_words=3, oov_token="<OOV>"), dict(num_words=1),
                                dict(num_words=1, oov_token="<OOV>"), dict(oov_token="cat"),
                                dict(num_words=0), dict(document_count=10)])
def test_num_words_and_oov(kw):
    ours, ref = pair(**kw)
    ours.fit_on_texts(PAPER)
    ref.fit_on_texts(PAPER)
    assert_same_state(ours, ref)
    probe = ["the cat dog sat zebra", "cat zebra the", ""]
    assert_same_outputs(ours, ref, probe, [1, 2, 3, 4, 0, 99])


def test_num_words_example():
    ours = fe.Tokenizer(num_words=3, oov_token="<OOV>")
    ours.fit_on_texts(PAPER)
    assert ours.texts_to_sequences(["the cat dog sat zebra"]) == [[1, 2, 1, 1, 1]]
    assert ours.sequences_to_texts([[1, 2, 3, 4, 0, 99]]) == [
        "<OOV> cat <OOV> <OOV> <OOV> <OOV>"]


def test_oov_collides_with_word():
    ours, ref = pair(oov_token="cat")
    ours.fit_on_texts(PAPER)
    ref.fit_on_texts(PAPER)
    assert 1 not in ours.index_word
    assert ours.texts_to_sequences(["cat zebra the"]) == [[2, 2, 3]]
    assert_same_state(ours, ref)


def test_char_level_and_bare_string():
    ours, ref = pair(char_level=True)
    ours.fit_on_texts(["Ab a!", "b"])
    ref.fit_on_texts(["Ab a!", "b"])
    assert ours.word_index == {"a": 1, "b": 2, " ": 3, "!": 4}
    assert_same_state(ours, ref)
    ours, ref = pair()
    ours.fit_on_texts("hello")
    ref.fit_on_texts("hello")
    assert ours.document_count == 5
    assert_same_state(ours, ref)


def test_lists_of_words_and_mixed():
    ours, ref = pair()
    data = [["HELLO", "new york", "x"], "hello world", ["world!"]]
    ours.fit_on_texts(data)
    ref.fit_on_texts(data)
    assert_same_state(ours, ref)
    assert ours.texts_to_sequences([["HELLO", "new york", "x"], "hello world"]) == \
        ref.texts_to_sequences([["HELLO", "new york", "x"], "hello world"])


def test_non_string_tokens_in_lists():
    ours, ref = pair(lower=False)
    data = [[1, 2, 2, "a"], [2.0, True, "a"]]
    ours.fit_on_texts(data)
    ref.fit_on_texts(data)
    assert_same_state(ours, ref)
    assert ours.texts_to_sequences(data) == ref.texts_to_sequences(data)


def test_empty_texts_and_numpy_input():
    ours, ref = pair()
    data = np.array(["", "", "a b", "B"])
    ours.fit_on_texts(data)
    ref.fit_on_texts(data)
    assert ours.document_count == 4
    assert_same_state(ours, ref)
    assert_same_outputs(ours, ref, list(data))


def test_unicode_lowering_and_filters():
    texts = ["ΟΔΟΣ Σ ΣΑΣ", "İstanbul ÉCOLE Straße", "“smart quotes” and… ellipsis — dash",
             "a\r\nb a\xa0b", "Ǆ ǅ ǆ ﬁ", "日本語 テキスト", "emoji 😀!ok", "x" * 40 + "Σ",
             "lone \ud800 surrogate \udfff!", "Ÿÿ µ ß ÀÉÎ", "ascii only"]
    for kw in [{}, dict(lower=False), dict(split="\xa0"), dict(filters="")]:
        ours, ref = pair(**kw)
        ours.fit_on_texts(texts)
        ref.fit_on_texts(texts)
        assert_same_state(ours, ref)
        assert_same_outputs(ours, ref, texts)


@pytest.mark.parametrize("split", [" ", "\x00"])
def test_every_bmp_and_latin1_character_lowers_like_python(split):
    # documents of 256 consecutive code points (one- and two-byte strings), each a
    # single token: its lower-cased form must be exactly str.lower's
    docs = ["".join(map(chr, range(a, a + 256))).replace(split, "") + " Σ" * (a % 3)
            for a in range(0, 0x10000, 256)]
    docs += ["ΣΑΣ Σ", "ΑΣ ΟΔΟΣ", "İ", "x" * 20 + "Ω" + "\u0130"]
    ours, ref = pair(filters="", split=split)
    ours.fit_on_texts(docs)
    ref.fit_on_texts(docs)
    assert_same_state(ours, ref)
    assert ours.texts_to_sequences(docs) == ref.texts_to_sequences(docs)


def test_long_words_and_many_words():
    # long tokens (beyond the 16-byte in-slot keys) and a table that grows
    rng = np.random.default_rng(0)
    vocab = ["w%dé" % i * (1 + i % 7) for i in range(5000)] + ["λ%d" % i for i in range(300)]
    texts = [" ".join(rng.choice(vocab, size=30)) for _ in range(300)]
    ours, ref = pair(num_words=1000, oov_token="<unk>")
    ours.fit_on_texts(texts)
    ref.fit_on_texts(texts)
    assert_same_state(ours, ref)
    assert_same_outputs(ours, ref, texts[:50])


def test_one_huge_document():
    doc = " ".join("w%d" % (i % 997) for i in range(200_000)) + " Ab, ab"
    ours, ref = pair()
    ours.fit_on_texts([doc, doc.upper()])
    ref.fit_on_texts([doc, doc.upper()])
    assert_same_state(ours, ref)
    assert ours.texts_to_sequences([doc]) == ref.texts_to_sequences([doc])


def test_unfitted_transforms():
    ours, ref = pair()
    assert ours.texts_to_sequences(["a b"]) == ref.texts_to_sequences(["a b"]) == [[]]
    ours, ref = pair(oov_token="<OOV>")
    # Keras' OOV index is None before fitting
    assert ours.texts_to_sequences(["a b"]) == ref.texts_to_sequences(["a b"]) == [[None, None]]
    with pytest.raises(ValueError, match="Specify a dimension"):
        ours.texts_to_matrix(["a"])
    assert np.array_equal(fe.Tokenizer(num_words=4).texts_to_matrix(["a"]), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="Fit the Tokenizer on some data before using tfidf"):
        fe.Tokenizer(num_words=4).texts_to_matrix(["a"], mode="tfidf")


def test_matrix_quirks():
    ours, ref = pair(num_words=5)
    ours.fit_on_texts(PAPER)
    ref.fit_on_texts(PAPER)
    for seqs in ([[0, 0, 1]], [[1, 4, 5, 7, -1]], [[4, 4, -1]], [[-1, 4, 4]], [[1, 9, 9, 9]],
                 [[], [2, 2, 3]], ((1, 2), [3])):
        for mode in MODES:
            assert np.array_equal(ours.sequences_to_matrix(seqs, mode=mode),
                                  ref.sequences_to_matrix(seqs, mode=mode)), (seqs, mode)
    assert ours.sequences_to_matrix([[0, 0, 1]], mode="count").tolist() == [[2, 1, 0, 0, 0]]
    # numpy rows, numpy ints, float ids, bools: the reference loop, errors included
    for rows in ([np.array([1]), [np.int64(2), 3]], [[True, 2]], [[2.0, 3]],
                 [np.array([1, 2])]):
        for mode in MODES:
            same_result(lambda: ours.sequences_to_matrix(rows, mode=mode),
                        lambda: ref.sequences_to_matrix(rows, mode=mode))
    with pytest.raises(IndexError):
        ours.sequences_to_matrix([[-6]])
    with pytest.raises(IndexError):
        ref.sequences_to_matrix([[-6]])


def test_tfidf_value():
    ours = fe.Tokenizer()
    ours.fit_on_texts(["a a b", "a c", "d"])
    m = ours.texts_to_matrix(["a a"], mode="tfidf")
    assert m[0, ours.word_index["a"]] == (1 + np.log(2)) * np.log(1 + 3 / (1 + 2))


def test_bad_mode_is_lazy():
    ours, ref = pair(num_words=4)
    assert np.array_equal(ours.sequences_to_matrix([[], []], mode="nope"), np.zeros((2, 4)))
    with pytest.raises(ValueError) as e1:
        ours.sequences_to_matrix([[1]], mode="nope")
    with pytest.raises(ValueError) as e2:
        ref.sequences_to_matrix([[1]], mode="nope")
    assert e1.value.args == e2.value.args == ("Unknown vectorization mode:", "nope")


def test_errors_like_keras():
    for bad in ([("a", "b")], [3], [None]):
        with pytest.raises(AttributeError) as e1:
            fe.Tokenizer().fit_on_texts(bad)
        with pytest.raises(AttributeError) as e2:
            KTokenizer().fit_on_texts(bad)
        assert str(e1.value) == str(e2.value)
    with pytest.raises(ValueError, match="empty separator"):
        fe.Tokenizer(split="").fit_on_texts(["a b"])
    with pytest.raises(TypeError) as e1:
        fe.Tokenizer(foo=1)
    with pytest.raises(TypeError) as e2:
        KTokenizer(foo=1)
    assert str(e1.value) == str(e2.value)
    with pytest.raises(TypeError, match="has no len"):
        fe.Tokenizer().fit_on_sequences(iter([[1]]))
    with pytest.raises(TypeError, match="unhashable"):
        fe.Tokenizer(lower=False).fit_on_texts([[["a"]]])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tok = fe.Tokenizer(nb_words=7)
    assert tok.num_words == 7 and "renamed `num_words`" in str(w[0].message)


def test_pickle_round_trip():
    import pickle
    tok = fe.Tokenizer(num_words=4, oov_token="?", index_from=2)
    tok.fit_on_texts(PAPER)
    back = pickle.loads(pickle.dumps(tok))
    assert back.get_config() == tok.get_config()
    assert back.texts_to_sequences(PAPER) == tok.texts_to_sequences(PAPER)


def test_failed_fit_changes_nothing():
    tok = fe.Tokenizer()
    tok.fit_on_texts(PAPER)
    before = tok.to_json()
    with pytest.raises(AttributeError):
        tok.fit_on_texts(["new words here", 5])
    assert tok.to_json() == before


# sequences_to_matrix with numpy integer scalars in the lists takes the native loop and
# gives Keras' result; numpy rows fail as they do in Keras (``if not seq`` on an array).
@pytest.mark.parametrize("mode", ["binary", "count", "freq", "tfidf"])
def test_numpy_rows_and_scalars_match_keras(mode):
    texts = ["the cat sat on the mat", "the dog ate my homework", "cat cat dog"]
    ours, theirs = fe.Tokenizer(num_words=8), kp_text.Tokenizer(num_words=8)
    ours.fit_on_texts(texts)
    theirs.fit_on_texts(texts)
    rng = np.random.default_rng(0)
    batch = rng.integers(-3, 12, size=(50, 9))
    want = theirs.sequences_to_matrix([list(map(int, r)) for r in batch], mode=mode)
    for seqs in ([list(r) for r in batch], [list(r) for r in batch.astype(np.int32)]):
        got = ours.sequences_to_matrix(seqs, mode=mode)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    for rows in (batch, list(batch)):
        with pytest.raises(ValueError, match="truth value of an array"):
            theirs.sequences_to_matrix(rows, mode=mode)
        with pytest.raises(ValueError, match="truth value of an array"):
            ours.sequences_to_matrix(rows, mode=mode)


# ------------------------------------------------------------------------- JSON

def _parsed(cfg):
    out = dict(cfg)
    for k in ("word_counts", "word_docs", "index_docs", "index_word", "word_index"):
        out[k] = json.loads(cfg[k])
    return out


@pytest.mark.parametrize("kw", [{}, dict(num_words=5, oov_token="<OOV>", lower=False),
                                dict(char_level=True, split="x", filters="ab")])
def test_json_both_ways(kw):
    texts = PAPER + ["café Ωmega", "", "ΟΔΟΣ"]
    ours, ref = pair(**kw)
    ours.fit_on_texts(texts)
    ref.fit_on_texts(texts)
    c1, c2 = ours.get_config(), ref.get_config()
    assert list(c1) == list(c2)
    for k in ("word_counts", "word_index", "index_word"):
        assert c1[k] == c2[k]          # deterministic in Keras: byte-identical
    assert _parsed(c1) == _parsed(c2)  # word_docs/index_docs order is hash-seeded
    assert json.loads(ours.to_json()).keys() == json.loads(ref.to_json()).keys()
    assert ours.to_json(ensure_ascii=False, indent=1).startswith("{\n")

    probe = texts + ["the unknown café"]
    # ours -> Keras
    k_loaded = kp_text.tokenizer_from_json(ours.to_json())
    assert k_loaded.texts_to_sequences(probe) == ref.texts_to_sequences(probe)
    # Keras -> ours
    o_loaded = fe.tokenizer_from_json(ref.to_json())
    assert_same_state(o_loaded, ref)
    assert_same_outputs(o_loaded, ref, probe, [0, 1, 2, 50])
    # our own round trip
    o2 = fe.tokenizer_from_json(ours.to_json())
    assert_same_state(o2, ref)


def test_loaded_tokenizer_can_be_fitted_further():
    first, second = PAPER, ["zebra cat", "new words, new cat"]
    ref = KTokenizer(oov_token="<OOV>")
    ref.fit_on_texts(first)
    loaded = fe.tokenizer_from_json(ref.to_json())
    # Keras' own loaded tokenizer cannot (plain dicts)
    with pytest.raises(KeyError):
        kp_text.tokenizer_from_json(ref.to_json()).fit_on_texts(second)
    loaded.fit_on_texts(second)
    loaded.fit_on_sequences([[1, 2], [2]])
    ref.fit_on_texts(second)
    ref.fit_on_sequences([[1, 2], [2]])
    assert_same_state(loaded, ref)
    assert_same_outputs(loaded, ref, first + second)
