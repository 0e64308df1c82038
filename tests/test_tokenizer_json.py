"""tokenizer_from_json validates its document: ValueError naming the problem (JSON in
both directions with Keras: test_tokenizer_keras.py)."""
from __future__ import annotations

import json

import pytest

import fastembed as fe


def doc():
    tok = fe.Tokenizer(oov_token="<OOV>")
    tok.fit_on_texts(["Hope to see you soon", "Nice to see you again"])
    return json.loads(tok.to_json())


def test_valid_document_round_trips():
    d = doc()
    tok = fe.tokenizer_from_json(json.dumps(d))
    assert tok.texts_to_sequences(["see you soon, zebra"]) == [[3, 4, 6, 1]]
    assert json.loads(tok.to_json()) == d


@pytest.mark.parametrize("mutate,exc,msg", [
    (lambda d: "{not json", ValueError, "Expecting"),
    (lambda d: "[" * 100_000, ValueError, "nested too deeply|Expecting|not a tokenizer"),
    (lambda d: d["config"], ValueError, "expected an object with a 'config' object"),
    (lambda d: {**d, "class_name": "Other"}, ValueError, "class_name"),
    (lambda d: (d["config"].pop("word_index"), d)[1], ValueError, "no 'word_index' field"),
    (lambda d: (d["config"].update(word_counts="{\"a\": "), d)[1], ValueError,
     "'word_counts' is not valid JSON"),
    (lambda d: (d["config"].update(word_index=json.dumps({"<OOV>": 1, "a": True})), d)[1],
     ValueError, r"word_index\['a'\] must be a non-negative integer"),
    (lambda d: (d["config"].update(word_index=json.dumps({"<OOV>": 1, "a": -2})), d)[1],
     ValueError, "non-negative integer"),
    (lambda d: (d["config"].update(index_word=json.dumps({"x": "a"})), d)[1], ValueError,
     "index_word keys must be integers"),
    (lambda d: (d["config"].update(index_word=json.dumps({"1": 5})), d)[1], ValueError,
     r"index_word\[1\] must be a string"),
    (lambda d: (d["config"].update(num_words="10"), d)[1], ValueError, "'num_words'"),
    (lambda d: (d["config"].update(lower="yes"), d)[1], ValueError, "'lower'"),
    (lambda d: (d["config"].update(oov_token="<X>"), d)[1], ValueError, "not in word_index"),
    (lambda d: (d["config"].update(bogus=1), d)[1], TypeError, "Unrecognized keyword"),
    (lambda d: (d["config"].update(index_word=json.dumps({"2": "to"})), d)[1], ValueError,
     "index_word is not the inverse of word_index"),
])
def test_bad_documents(mutate, exc, msg):
    d = mutate(doc())
    text = d if isinstance(d, str) else json.dumps(d)
    with pytest.raises(exc, match=msg):
        fe.tokenizer_from_json(text)


def test_not_a_string():
    with pytest.raises(TypeError, match="JSON string"):
        fe.tokenizer_from_json({"config": {}})
