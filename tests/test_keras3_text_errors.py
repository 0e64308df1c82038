"""fe.TextVectorization / fe.StringLookup without TensorFlow: bad input, state kept
whole after failures, saving, pickling, optional dependencies."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastembed as fe


def _adapted(**kw):
    layer = fe.TextVectorization(**kw)
    layer.adapt(["the cat sat", "the dog", "a cat, a dog!"])
    return layer


def _snapshot(layer):
    return (layer.get_vocabulary(), None if layer._idf is None else layer._idf.copy(),
            layer._frozen_vocab_size)


def _same_state(a, b):
    assert a[0] == b[0] and a[2] == b[2]
    if a[1] is None:
        assert b[1] is None
    else:
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("bad, exc, match", [
    ([1, 2], TypeError, "int"),
    (["a", None], TypeError, "NoneType"),
    (np.array([1.5, 2.0]), TypeError, "float64"),
    (np.array([["a", "b"]]), ValueError, "last shape dimension must be 1"),
    (object(), TypeError, "object"),
])
def test_bad_call_input(bad, exc, match):
    layer = _adapted()
    before = _snapshot(layer)
    with pytest.raises(exc, match=match):
        layer(bad)
    _same_state(before, _snapshot(layer))


@pytest.mark.parametrize("bad, exc", [
    (lambda: [1, 2], TypeError), (lambda: ["ok", b"\xff\xfe"], UnicodeDecodeError),
    (lambda: np.array([["a", "b"]]), ValueError),
    (lambda: iter([["a b"], [3]]), TypeError),   # fails in the second streamed batch
])
def test_failed_adapt_leaves_layer_unchanged(bad, exc):
    for mode in ("int", "tf_idf"):
        layer = _adapted(output_mode=mode)
        before = _snapshot(layer)
        with pytest.raises(exc):
            layer.adapt(bad())
        _same_state(before, _snapshot(layer))
        assert layer(["the cat"]).shape[0] == 1


def test_unadapted_layer_raises():
    with pytest.raises(RuntimeError, match="no vocabulary"):
        fe.TextVectorization()(["a"])
    with pytest.raises(RuntimeError, match="must set the layer's vocabulary"):
        fe.TextVectorization(output_mode="count")(["a"])
    with pytest.raises(RuntimeError, match="no vocabulary"):
        fe.StringLookup()(["a"])
    with pytest.raises(RuntimeError, match="no vocabulary"):
        fe.StringLookup(invert=True)([1])


@pytest.mark.parametrize("vocab, match", [
    (["a", "b", "a"], "repeated term"),
    (["a", ""], "reserved mask token"),
    ([], "empty vocabulary"),
    (["a", 3], "item 1 is int"),
    ([["a"], ["b"]], "1-D"),
])
def test_bad_vocabulary_keeps_layer(vocab, match):
    layer = _adapted()
    before = _snapshot(layer)
    with pytest.raises((ValueError, TypeError), match=match):
        layer.set_vocabulary(vocab)
    _same_state(before, _snapshot(layer))


def test_string_lookup_vocabulary_rules():
    with pytest.raises(ValueError, match="reserved OOV token"):
        fe.StringLookup(vocabulary=["a", "[UNK]"], invert=True)
    # Keras accepts the OOV token among the tokens when not inverting.
    assert fe.StringLookup(vocabulary=["a", "[UNK]"]).get_vocabulary() == ["[UNK]", "a", "[UNK]"]
    layer = fe.StringLookup(vocabulary=["a", "b"], num_oov_indices=0)
    np.testing.assert_array_equal(layer(["b", "a"]), [1, 0])
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        layer(["a", "zz"])
    with pytest.raises(ValueError, match="larger than the maximum"):
        fe.StringLookup(max_tokens=2, vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="same length"):
        fe.StringLookup(output_mode="tf_idf", vocabulary=["a"], idf_weights=[1.0, 2.0])
    with pytest.raises(TypeError, match="integer ids"):
        fe.StringLookup(vocabulary=["a"], invert=True)(["a"])
    with pytest.raises(NotImplementedError):
        fe.StringLookup(salt=3)


def test_readapt_size_change_refused_without_change():
    layer = _adapted(output_mode="multi_hot")
    before = _snapshot(layer)
    with pytest.raises(RuntimeError, match="cannot be changed"):
        layer.adapt(["x y z w v u"])
    _same_state(before, _snapshot(layer))


def test_adapt_with_fixed_vocabulary_refused():
    layer = fe.TextVectorization(vocabulary=["a"])
    with pytest.raises(ValueError, match="Cannot adapt"):
        layer.adapt(["b"])


def test_save_load_and_pickle(tmp_path):
    for kw in (dict(), dict(output_mode="tf_idf", max_tokens=6), dict(ngrams=2, ragged=True)):
        layer = _adapted(**kw)
        probe = ["the cat", "a dog sat", ""]
        expected = layer(probe)
        path = tmp_path / "layer.json"
        layer.save(path)
        again = fe.TextVectorization.load(path)
        clone = pickle.loads(pickle.dumps(layer))
        for other in (again, clone):
            assert other.get_vocabulary() == layer.get_vocabulary()
            got = other(probe)
            if isinstance(expected, list):
                for a, b in zip(got, expected):
                    np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_array_equal(got, expected)
    sl = fe.StringLookup(mask_token="[M]")
    sl.adapt(["a", "b", "b"])
    sl.save(tmp_path / "sl.json")
    assert fe.StringLookup.load(tmp_path / "sl.json").get_vocabulary() == sl.get_vocabulary()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        fe.TextVectorization.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="StringLookup"):
        fe.TextVectorization.load(tmp_path / "sl.json")
    with pytest.raises(ValueError, match="callable"):
        fe.TextVectorization(split=str.split).save(tmp_path / "c.json")


def test_vocabulary_file(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("the\ncat\nÉ\n", encoding="utf-8")
    layer = fe.TextVectorization(vocabulary=str(p))
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "cat", "É"]
    np.testing.assert_array_equal(layer(["The CAT dog"]), [[2, 3, 1]])
    with pytest.raises(ValueError, match="does not exist"):
        fe.TextVectorization(vocabulary=str(tmp_path / "missing.txt"))


def test_sparse_without_scipy(monkeypatch):
    layer = _adapted(output_mode="count", sparse=True)
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="scipy"):
        layer(["the cat"])


def test_sparse_csr():
    sp = pytest.importorskip("scipy.sparse")
    dense = _adapted(output_mode="tf_idf")
    sparse = _adapted(output_mode="tf_idf", sparse=True)
    m = sparse(["the cat the", "", "dog zz"])
    assert sp.issparse(m) and m.format == "csr"
    np.testing.assert_array_equal(m.toarray(), dense(["the cat the", "", "dog zz"]))


def test_outputs_and_dtypes():
    layer = _adapted(output_sequence_length=4)
    out = layer(["the cat sat", ""])
    assert out.dtype == np.int64 and out.shape == (2, 4)
    assert _adapted(output_mode="tf_idf")(["a"]).dtype == np.float32
    rag = _adapted(ragged=True)(["the cat sat", ""])
    assert isinstance(rag, list) and [r.dtype for r in rag] == [np.int64, np.int64]
    assert [len(r) for r in rag] == [3, 0]


def test_import_is_lazy():
    code = ("import sys, fastembed; bad = [m for m in ('tensorflow', 'keras', 'scipy', 'tqdm') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_config_round_trip():
    layer = _adapted(max_tokens=10, ngrams=(1, 2), output_sequence_length=3)
    cfg = layer.get_config()
    clone = fe.TextVectorization.from_config(cfg)
    assert clone.get_config()["ngrams"] == (1, 2)
    for key in ("max_tokens", "standardize", "split", "output_mode", "output_sequence_length"):
        assert clone.get_config()[key] == cfg[key]
    with pytest.raises(ValueError, match="Unrecognized"):
        fe.TextVectorization(bogus=1)


def test_assets_round_trip(tmp_path):
    layer = _adapted(output_mode="tf_idf")
    layer.save_assets(tmp_path)
    store: dict = {}
    layer.save_own_variables(store)
    assert (tmp_path / "vocabulary.txt").read_text(encoding="utf-8").split("\n") == \
        layer.get_vocabulary()
    other = fe.TextVectorization(output_mode="tf_idf", vocabulary_size=layer.vocabulary_size())
    other.load_own_variables(store)   # Keras' order: variables, then assets
    other.load_assets(tmp_path)
    np.testing.assert_array_equal(other(["the cat zz"]), layer(["the cat zz"]))
