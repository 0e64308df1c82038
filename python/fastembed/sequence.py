"""pad_sequences (filled in by the text-pipeline work)."""
from __future__ import annotations


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    raise NotImplementedError
