"""sequences_to_matrix with numpy integer scalars in the lists takes the native loop and
gives Keras' result; numpy rows fail as they do in Keras (``if not seq`` on an array)."""
from __future__ import annotations

import numpy as np
import pytest

import fastembed as fe

kp_text = pytest.importorskip("keras_preprocessing.text")


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
