"""Keras-compatible Tokenizer (filled in by the text-pipeline work)."""
from __future__ import annotations


class Tokenizer:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Tokenizer is not implemented yet")


def tokenizer_from_json(json_string):
    raise NotImplementedError


def text_to_word_sequence(text, filters='!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', lower=True,
                          split=" "):
    raise NotImplementedError
