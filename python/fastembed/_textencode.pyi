"""Stub of the Cython module ``fastembed._textencode``: Keras Tokenizer encoding."""
from typing import Any, Hashable, Iterable, List, Mapping, Optional, Union

import numpy as np
import numpy.typing as npt

from ._textscan import TokenRule

# An id: a Python int or a numpy integer of any width.
_Id = Union[int, np.integer[Any]]

class Encoder:
    def __init__(self, word_index: Mapping[Hashable, int], num_words: Optional[int],
                 oov_token: Optional[Hashable], rule: TokenRule) -> None: ...
    def encode_one(self, text: object) -> List[int]: ...
    def encode_many(self, texts: Iterable[object]) -> List[List[int]]: ...

def sequences_to_texts(sequences: Iterable[Iterable[object]],
                       index_word: Mapping[int, Hashable], num_words: Optional[int],
                       oov_token: Optional[Hashable], oov_index: Optional[int]
                       ) -> List[str]: ...
def sequences_to_matrix(sequences: Iterable[object], x: npt.NDArray[np.float64], width: int,
                        mode_obj: object, document_count: int,
                        index_docs: Mapping[_Id, int]) -> bool: ...
