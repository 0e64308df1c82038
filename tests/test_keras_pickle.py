"""fe.load_keras_tokenizer: real keras_preprocessing pickles encode as the original;
pickles that name the Tokenizer under the other Keras module paths load the same way;
hostile pickles are refused before anything runs."""
from __future__ import annotations

import io
import os
import pickle
import pickletools
from collections import OrderedDict, defaultdict

import numpy as np
import pytest

import fastembed as fe

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "cat Cat CAT dog",
         "café naïve İstanbul", "", "a-b a_b a'b", "tab\there\nnewline"]
PROBE = TEXTS + ["zebra the cat unknown", "DOG dog", "   "]

CONFIGS = [dict(), dict(num_words=5, oov_token="<OOV>"), dict(char_level=True),
           dict(lower=False, split="a", filters="xyz"), dict(oov_token="[UNK]")]


@pytest.fixture(scope="module")
def kp():
    return pytest.importorskip("keras_preprocessing.text",
                               reason="real pickles come from keras_preprocessing 1.1.2")


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_real_pickles_encode_as_the_original(kp, cfg, protocol):
    tok = kp.Tokenizer(**cfg)
    tok.fit_on_texts(TEXTS)
    ours = fe.load_keras_tokenizer(pickle.dumps(tok, protocol=protocol))
    assert isinstance(ours, fe.Tokenizer)
    assert ours.texts_to_sequences(PROBE) == tok.texts_to_sequences(PROBE)
    for mode in ("binary", "count", "tfidf", "freq"):
        np.testing.assert_array_equal(ours.texts_to_matrix(PROBE, mode=mode),
                                      tok.texts_to_matrix(PROBE, mode=mode))
    assert ours.word_index == tok.word_index
    assert ours.document_count == tok.document_count


def test_path_and_file_objects(kp, tmp_path):
    tok = kp.Tokenizer(oov_token="<OOV>")
    tok.fit_on_texts(TEXTS)
    p = tmp_path / "tok.pkl"
    p.write_bytes(pickle.dumps(tok))
    for src in (p, str(p), io.BytesIO(p.read_bytes())):
        assert fe.load_keras_tokenizer(src).texts_to_sequences(PROBE) == \
            tok.texts_to_sequences(PROBE)
    with open(p, "rb") as f:
        assert fe.load_keras_tokenizer(f).word_index == tok.word_index


def _fabricated(module, protocol=2):
    """A pickle as the Tokenizer of ``module`` would write it: the state of a real
    keras_preprocessing Tokenizer under another class path (no such package here)."""
    kp = pytest.importorskip("keras_preprocessing.text")
    tok = kp.Tokenizer(num_words=6, oov_token="<OOV>")
    tok.fit_on_texts(TEXTS)
    raw = pickle.dumps(tok, protocol=protocol)
    old = b"keras_preprocessing.text"
    assert raw.count(old) == 1
    if protocol >= 4:  # SHORT_BINUNICODE of the module name, with its length byte
        raw = raw.replace(bytes([len(old)]) + old, bytes([len(module)]) + module.encode())
    else:
        raw = raw.replace(old, module.encode())
    return raw, tok


@pytest.mark.parametrize("module", ["keras.preprocessing.text",
                                    "tensorflow.keras.preprocessing.text",
                                    "tf_keras.preprocessing.text",
                                    "tf_keras.src.preprocessing.text",
                                    "keras.src.legacy.preprocessing.text"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_other_keras_module_paths(module, protocol):
    raw, tok = _fabricated(module, protocol)
    ours = fe.load_keras_tokenizer(raw)
    assert ours.texts_to_sequences(PROBE) == tok.texts_to_sequences(PROBE)


class _System:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _Eval:
    def __reduce__(self):
        import builtins
        return (builtins.eval, ("__import__('os').getcwd()",))


class _Nested:
    """A Tokenizer-looking state with a hostile object deep inside."""

    def __init__(self):
        self.word_index = {"a": 1}
        self.word_counts = OrderedDict(a=[_System()])


def _hostile():
    yield "os.system reduce", pickle.dumps(_System())
    yield "builtins.eval", pickle.dumps(_Eval())
    yield "numpy global", pickle.dumps(np.float64(1.0))
    yield "subprocess", pickle.dumps(__import__("subprocess").Popen)
    raw, _ = _fabricated("keras_preprocessing.text")
    # A real Tokenizer pickle with os.system spliced in as the defaultdict factory.
    yield "nested factory", raw.replace(b"c__builtin__\nlong\n", b"cos\nsystem\n", 1)
    here = f"{_Nested.__module__}\n_Nested".encode()
    nested = pickle.dumps(_Nested(), protocol=2)
    assert here in nested
    yield "nested reduce", nested.replace(here, b"keras_preprocessing.text\nTokenizer")
    yield "copyreg other", (b"ccopy_reg\n_reconstructor\n(cos\nsystem\nc__builtin__\nobject\n"
                            b"NtR.")


@pytest.mark.parametrize("name, raw", list(_hostile()), ids=[n for n, _ in _hostile()])
def test_hostile_pickles_are_refused(name, raw, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    with pytest.raises(ValueError, match="refus|not a Keras"):
        fe.load_keras_tokenizer(raw)
    assert calls == []


def test_not_a_tokenizer_and_garbage():
    for raw in (pickle.dumps({"word_index": {}}), pickle.dumps([1, 2]), b"", b"\x80\x05garbage",
                pickle.dumps(defaultdict(int))):
        with pytest.raises(ValueError):
            fe.load_keras_tokenizer(raw)
    with pytest.raises(TypeError):
        fe.load_keras_tokenizer(12)


def test_real_pickle_contents_are_what_the_allow_list_expects(kp):
    tok = kp.Tokenizer(oov_token="x")
    tok.fit_on_texts(TEXTS)
    globals_seen = set()
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        ops = list(pickletools.genops(pickle.dumps(tok, protocol=proto)))
        strings = [arg for op, arg, _ in ops if isinstance(arg, str)]
        for op, arg, _ in ops:
            if op.name == "GLOBAL":
                globals_seen.add(arg)
            elif op.name == "STACK_GLOBAL":
                globals_seen.add("stack")
        assert "keras_preprocessing.text" in " ".join(strings) or any(
            "keras_preprocessing.text" in g for g in globals_seen)
    assert any("collections OrderedDict" in g for g in globals_seen)
