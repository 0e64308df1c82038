"""fe.TextVectorization / fe.StringLookup against Keras 3 + TensorFlow (the oracle).

Every test runs the same input through Keras' layer and ours and compares the
outputs and vocabularies; nothing here states an expected value of its own.  One
Keras layer is built (and adapted) per configuration and reused, to keep the
TensorFlow part of the suite short.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"
tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle for Keras 3's "
                         "TextVectorization (pip install tensorflow-cpu==2.21.0)")
keras = pytest.importorskip("keras", reason="Keras 3 is the reference (pip install keras)")
if not keras.__version__.startswith("3.") or keras.backend.backend() != "tensorflow":
    pytest.skip("needs Keras 3 on the TensorFlow backend", allow_module_level=True)

import fastembed as fe  # noqa: E402

KTV = keras.layers.TextVectorization
KSL = keras.layers.StringLookup


def _real_text() -> list:
    """Real English prose available offline: docstrings of standard-library modules."""
    import argparse
    import collections
    import json
    import logging
    import textwrap
    docs = []
    for mod in (argparse, collections, json, logging, textwrap):
        for name in dir(mod):
            d = getattr(getattr(mod, name), "__doc__", None)
            if isinstance(d, str):
                docs.extend(line for line in d.splitlines())
    return docs[:1500]


REAL = _real_text()
TRAIN = REAL[:800] + [
    "The cat, the DOG; don't a.b ÉCOLE", "b b c", "x\ty\nz  q\r\x0bw\x0cv",
    "İstanbul ΟΔΟΣ straße ǅ ﬁ", "", "   ", "!!!", "a-b a_b a'b", "[UNK] unk",
    "日本語 テキスト 😀!ok", "a\xa0b\u2028c\u3000d", "tab\there"]
PROBE = REAL[800:1100] + ["the cat zz", "", "b", "ÉCOLE école", "a b c d e f g h",
                          "q q q", "[UNK]", "😀 ok", "a\xa0b"]


def _k(out):
    if isinstance(out, tf.RaggedTensor):
        return [np.asarray(r, dtype=out.dtype.as_numpy_dtype) for r in out.to_list()]
    if isinstance(out, tf.SparseTensor):
        return tf.sparse.to_dense(out).numpy()
    return np.asarray(out)


def _same(mine, theirs, float_exact=True):
    if isinstance(theirs, list):
        assert isinstance(mine, list) and len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            _same(a, b, float_exact)
        return
    theirs = np.asarray(theirs)
    if hasattr(mine, "toarray"):
        # A CSR matrix is always 2-D; Keras' sparse output of one sample is 1-D.
        mine = mine.toarray()
        if theirs.ndim == 1:
            mine = mine[0]
    mine = np.asarray(mine)
    if theirs.shape == (0,) and mine.ndim == 2 and mine.shape[0] == 0:
        return  # an empty ragged row of one-hot vectors: Keras' to_list gives []
    if theirs.dtype.kind == "S" or (theirs.dtype == object and theirs.size
                                    and isinstance(theirs.flat[0], bytes)):
        theirs = np.vectorize(lambda b: b.decode("utf-8"), otypes=[str])(theirs)
    assert mine.shape == theirs.shape, (mine.shape, theirs.shape)
    if theirs.dtype.kind == "U":
        assert mine.tolist() == theirs.tolist()
        return
    assert mine.dtype == theirs.dtype, (mine.dtype, theirs.dtype)
    if mine.dtype.kind == "f" and not float_exact:
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(mine, theirs)


TV_CONFIGS = [
    dict(),
    dict(max_tokens=40),
    dict(max_tokens=7),
    dict(standardize=None),
    dict(standardize="lower"),
    dict(standardize="strip_punctuation"),
    dict(split="character"),
    dict(split=None),
    dict(split=None, standardize=None),
    dict(ngrams=2),
    dict(ngrams=(1, 3)),
    dict(ngrams=(3, 2)),
    dict(output_sequence_length=5),
    dict(output_sequence_length=40),
    dict(output_sequence_length=0),
    dict(ragged=True),
    dict(ragged=True, output_sequence_length=3),
    dict(output_mode="multi_hot"),
    dict(output_mode="binary", max_tokens=30),
    dict(output_mode="count"),
    dict(output_mode="count", ngrams=2, split="character"),
    dict(output_mode="tf_idf"),
    dict(output_mode="tf-idf", max_tokens=25),
    dict(output_mode="count", max_tokens=20, pad_to_max_tokens=True),
    dict(output_mode="tf_idf", max_tokens=20, pad_to_max_tokens=True),
    dict(output_mode="multi_hot", sparse=True),
    dict(output_mode="count", sparse=True, ngrams=2),
    dict(output_mode="multi_hot", split=None),
    dict(output_mode="one_hot"),
    dict(output_mode="one_hot", split=None),
]


def _cfg_id(c):
    return ",".join(f"{k}={v}" for k, v in c.items()) or "defaults"


_LAYERS: dict = {}


def _pair(cfg, train=None):
    """(keras layer, our layer), both adapted on ``train``; cached per config."""
    key = (_cfg_id(cfg), None if train is None else id(train))
    if key not in _LAYERS:
        data = TRAIN if train is None else train
        k = KTV(**cfg)
        k.adapt(data)
        f = fe.TextVectorization(**cfg)
        f.adapt(data)
        _LAYERS[key] = (k, f)
    return _LAYERS[key]


@pytest.mark.parametrize("cfg", TV_CONFIGS, ids=_cfg_id)
def test_text_vectorization_matches_keras(cfg):
    k, f = _pair(cfg)
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    assert f.get_vocabulary(False) == [str(t) for t in k.get_vocabulary(False)]
    assert f.vocabulary_size() == k.vocabulary_size()
    # TF's reduce_mean may round the OOV idf differently in the last bit.
    exact = cfg.get("output_mode") not in ("tf_idf", "tf-idf")
    _same(f(PROBE), _k(k(PROBE)), exact)
    _same(f(np.array(PROBE[:5])[:, None]), _k(k(np.array(PROBE[:5])[:, None])), exact)
    if cfg.get("output_mode") in ("tf_idf", "tf-idf"):
        w_k = k._lookup_layer.idf_weights.numpy()
        np.testing.assert_array_equal(f._idf[1:], w_k[1:])
        np.testing.assert_allclose(f._idf[:1], w_k[:1], rtol=1e-6)


text_st = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\n\r\x0b\x0c.,;:!?'\"-_()[]{}") + ["\xa0", "\u2028", "\u3000"]),
        st.sampled_from(list("abcABCxyzXYZ") + ["É", "é", "İ", "Σ", "ß", "ǅ", "😀", "日"]),
        st.characters(codec="utf-8")),
    max_size=30)


@settings(max_examples=25)
@given(st.lists(text_st, min_size=1, max_size=12), st.sampled_from(
    [dict(), dict(split="character", output_mode="count"), dict(ngrams=(1, 2)),
     dict(standardize="lower", output_mode="tf_idf"), dict(max_tokens=6),
     dict(standardize="strip_punctuation", split=None)]))
def test_hypothesis_adapt_and_call(texts, cfg):
    k = KTV(**cfg)
    f = fe.TextVectorization(**cfg)
    f.adapt(texts)
    try:
        k.adapt(texts)
    except tf.errors.InvalidArgumentError:
        # Keras cannot build a table when only special tokens were seen; we keep an
        # empty learned vocabulary (docs/keras3_text.md).
        assert f.get_vocabulary(include_special_tokens=False) == []
        return
    # Keras' get_vocabulary goes through a numpy str array, which drops trailing NULs
    # ('\x00' is listed as ''); its lookup table keeps them, as ours does.
    assert [t.rstrip("\x00") for t in f.get_vocabulary()] == \
        [str(t) for t in k.get_vocabulary()]
    probe = texts + ["zzz", ""]
    try:
        expected = _k(k(probe))
    except (AttributeError, RuntimeError, tf.errors.OpError):
        # Nothing counted: no vocabulary (and no idf weights) to call with.
        with pytest.raises(RuntimeError):
            f(probe)
        return
    _same(f(probe), expected, cfg.get("output_mode") != "tf_idf")


@settings(max_examples=25)
@given(st.lists(text_st, min_size=0, max_size=10))
def test_hypothesis_call_fixed_vocab(texts):
    for cfg in (dict(), dict(output_mode="multi_hot"), dict(split="character", ragged=True)):
        k, f = _pair(cfg)
        if not texts and cfg.get("output_mode", "int") == "int" and not cfg.get("ragged"):
            probe = texts + [""]  # Keras cannot pad an empty batch to the longest row
        else:
            probe = texts
        _same(f(probe), _k(k(probe)))


def test_frequency_ties_and_max_tokens():
    # Many tokens share each count: the cut at max_tokens falls inside a tie.
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)] + ["É", "e", "z", "ä", "日本"]
    docs = [" ".join(rng.choice(words, size=rng.integers(0, 8))) for _ in range(400)]
    for mt in (None, 3, 10, 57, 200):
        k = KTV(max_tokens=mt)
        f = fe.TextVectorization(max_tokens=mt)
        k.adapt(docs)
        f.adapt(docs)
        assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()], mt


def test_readapt_and_streaming():
    k = KTV(max_tokens=30, output_mode="tf_idf")
    f = fe.TextVectorization(max_tokens=30, output_mode="tf_idf")
    k.adapt(REAL[:100])
    f.adapt(REAL[:100])
    batches = [REAL[i:i + 37] for i in range(0, 400, 37)]
    k.adapt(iter(batches), steps=5)
    f.adapt(iter(batches), steps=5, verbose=True)
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    _same(f(PROBE), _k(k(PROBE)), False)
    # Nothing counted: Keras keeps the previous vocabulary.
    k.adapt(["", "   "])
    f.adapt(["", "   "])
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]


def test_bytes_and_numpy_inputs():
    k, f = _pair(dict())
    raw = [s.encode("utf-8") for s in PROBE[:20]]
    _same(f(raw), _k(k(raw)))
    _same(f(np.array(raw)), _k(k(np.array(raw))))
    _same(f(np.array(PROBE[:20])), _k(k(np.array(PROBE[:20]))))
    _same(f("a single string, The cat"), _k(k("a single string, The cat")))


def test_set_vocabulary_and_idf_weights():
    vocab = ["the", "cat", "[UNK]", "dog", "É"]
    for cfg in (dict(), dict(output_mode="count"), dict(output_sequence_length=4)):
        k = KTV(vocabulary=vocab, **cfg)
        f = fe.TextVectorization(vocabulary=vocab, **cfg)
        assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
        _same(f(PROBE), _k(k(PROBE)))
    idf = [0.5, 1.25, 2.0, 3.0, 0.1]
    k = KTV(output_mode="tf_idf", vocabulary=vocab, idf_weights=idf)
    f = fe.TextVectorization(output_mode="tf_idf", vocabulary=vocab, idf_weights=idf)
    _same(f(PROBE), _k(k(PROBE)))
    # Same size, with the special token given: its weight is taken as it is.
    with_specials = ["[UNK]"] + vocab[:2] + ["x", "y", "zz"]
    k.set_vocabulary(with_specials, idf_weights=[9.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    f.set_vocabulary(with_specials, idf_weights=[9.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    _same(f(PROBE), _k(k(PROBE)))
    # A tf_idf layer that has a vocabulary cannot change its size (Keras raises after
    # replacing its table; ours raises first and keeps the layer as it was).
    with pytest.raises(RuntimeError):
        k.set_vocabulary(["a"], idf_weights=[1.0])
    before = f.get_vocabulary()
    with pytest.raises(RuntimeError, match="cannot be changed"):
        f.set_vocabulary(["a"], idf_weights=[1.0])
    assert f.get_vocabulary() == before


def test_callable_standardize_and_split():
    # Keras calls these on string tensors; ours take one str.  Same rules otherwise.
    k = KTV(standardize=lambda x: tf.strings.regex_replace(x, "[0-9]", "#"),
            split=lambda x: tf.strings.split(x, sep=","))
    f = fe.TextVectorization(standardize=lambda s: "".join("#" if c.isdigit() and c.isascii()
                                                            else c for c in s),
                             split=lambda s: s.split(","))
    data = ["a1,b2,,c", "b2,b2", "x,y 9", ""]
    k.adapt(data)
    f.adapt(data)
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    _same(f(data + ["q,a1"]), _k(k(data + ["q,a1"])))


def test_config_round_trip_with_keras():
    k, f = _pair(dict(max_tokens=40, output_sequence_length=6))
    kc = k.get_config()
    fc = f.get_config()
    assert set(kc) == set(fc)
    for key in kc:
        if key not in ("name", "dtype"):
            assert fc[key] == kc[key], key
    # Our from_config reads Keras' config and vice versa.
    f2 = fe.TextVectorization.from_config(kc)
    f2.set_vocabulary(k.get_vocabulary())
    _same(f2(PROBE), _k(k(PROBE)))


SL_CONFIGS = [
    dict(),
    dict(max_tokens=5),
    dict(num_oov_indices=0),
    dict(num_oov_indices=3),
    dict(mask_token="", num_oov_indices=2),
    dict(mask_token="[M]", oov_token="<oov>"),
    dict(output_mode="one_hot"),
    dict(output_mode="multi_hot"),
    dict(output_mode="count", mask_token="[M]"),
    dict(output_mode="tf_idf"),
    dict(output_mode="multi_hot", max_tokens=12, pad_to_max_tokens=True),
    dict(output_mode="count", sparse=True),
]
SL_TRAIN = np.array([w for line in TRAIN[:200] for w in line.split()][:1500] +
                    ["[M]", "", "[UNK]", "É", "e"])


@pytest.mark.parametrize("cfg", SL_CONFIGS, ids=_cfg_id)
def test_string_lookup_matches_keras(cfg):
    k = KSL(**cfg)
    f = fe.StringLookup(**cfg)
    k.adapt(SL_TRAIN)
    f.adapt(SL_TRAIN)
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    assert f.vocabulary_size() == k.vocabulary_size()
    exact = cfg.get("output_mode") != "tf_idf"
    vocab_only = [str(t) for t in k.get_vocabulary()][3:40]
    if cfg.get("num_oov_indices") == 0:
        probes = [np.array(vocab_only), np.array(vocab_only[:12]).reshape(3, 4)]
    else:
        probes = [np.array(PROBE[:30]), np.array(["zz", "É", "[M]", "", "the", "qq"] * 2
                                                 ).reshape(3, 4), np.array([["a"], ["the"]])]
    if cfg.get("output_mode", "int") == "int":
        probes.append(np.array("the"))
    for p in probes:
        _same(f(p), _k(k(p)), exact)


def test_string_lookup_oov_buckets_and_invert():
    vocab = ["a", "b", "É"]
    k = KSL(vocabulary=vocab, num_oov_indices=5)
    f = fe.StringLookup(vocabulary=vocab, num_oov_indices=5)
    probe = ["a", "zz", "yy", "x" * 100, "日本語", "", "É", "😀"] + REAL[:40]
    _same(f(probe), _k(k(probe)))
    for cfg in (dict(), dict(mask_token="[M]")):
        k = KSL(vocabulary=vocab, invert=True, **cfg)
        f = fe.StringLookup(vocabulary=vocab, invert=True, **cfg)
        ids = np.array([[0, 1, 2], [3, 4, 7]])
        _same(f(ids), _k(k(ids)))
        assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]


def test_string_lookup_streaming_documents():
    # A streamed 1-D batch is one document; a 2-D batch has one per row.
    k = KSL(output_mode="tf_idf")
    f = fe.StringLookup(output_mode="tf_idf")
    batches = [["a", "b", "b"], np.array([["a", "c"], ["c", "c"]]), ["d"]]
    k.adapt(iter(batches))
    f.adapt(iter(batches))
    assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()]
    np.testing.assert_allclose(f._idf, k.idf_weights.numpy(), rtol=1e-6)


def test_errors_match_keras_types():
    cases = [
        dict(max_tokens=1), dict(pad_to_max_tokens=True), dict(output_mode="nope"),
        dict(output_sequence_length=3, output_mode="count"), dict(ragged=True, output_mode="count"),
        dict(ngrams="2"), dict(idf_weights=[1.0]), dict(standardize="upper"), dict(split="comma"),
        dict(output_mode="tf_idf", vocabulary=["a"]), dict(vocabulary=["a", "a"]),
        dict(vocabulary=["a", ""]), dict(vocabulary=[]), dict(max_tokens=3, vocabulary=["a", "b"]),
    ]
    for cfg in cases:
        with pytest.raises(Exception) as ke:
            KTV(**cfg)
        with pytest.raises(type(ke.value)):
            fe.TextVectorization(**cfg)


def test_parallel_adapt_matches_keras(threads):
    # Enough documents for the multi-threaded count (>= 4096 per batch).
    docs = (REAL * 4)[:5000] + TRAIN
    k = KTV(max_tokens=300, output_mode="tf_idf")
    k.adapt(docs)
    for n in (1, 2, 3):
        threads(n)
        f = fe.TextVectorization(max_tokens=300, output_mode="tf_idf")
        f.adapt(docs)
        assert f.get_vocabulary() == [str(t) for t in k.get_vocabulary()], n
        w_k = k._lookup_layer.idf_weights.numpy()
        np.testing.assert_array_equal(f._idf[1:], w_k[1:])


def test_readme_keras3_block_matches_keras():
    from pathlib import Path
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.exists():
        pytest.skip("README.md not beside the tests")
    block = readme.read_text().split("## Coming from Keras 3")[1].split("```python\n")[1]
    env: dict = {}
    exec(compile(block.split("```")[0], str(readme), "exec"), env)
    docs = ["The cat sat on the mat.", "The dog ate my homework!"]
    k = KTV(max_tokens=20000, output_sequence_length=8)
    k.adapt(docs)
    _same(env["ids"], _k(k(["the cat ate the homework"])))
    kt = KTV(output_mode="tf_idf")
    kt.adapt(docs)
    _same(env["weights"], _k(kt(["the cat the cat"])), float_exact=False)
    assert env["pooled"].shape == (1, 16)


@settings(max_examples=20)
@given(st.lists(text_st, min_size=1, max_size=15), st.lists(text_st, min_size=0, max_size=8),
       st.sampled_from([dict(), dict(num_oov_indices=3), dict(mask_token="", max_tokens=5),
                        dict(output_mode="count"), dict(output_mode="tf_idf")]))
def test_hypothesis_string_lookup(train, probe, cfg):
    k = KSL(**cfg)
    f = fe.StringLookup(**cfg)
    f.adapt(train)
    try:
        k.adapt(train)
    except tf.errors.InvalidArgumentError:
        assert f.get_vocabulary(include_special_tokens=False) == []
        return
    assert [t.rstrip("\x00") for t in f.get_vocabulary()] == \
        [str(t) for t in k.get_vocabulary()]
    probe = probe + train[:3]
    _same(f(probe), _k(k(probe)), cfg.get("output_mode") != "tf_idf")
