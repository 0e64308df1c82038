"""Stub of the Cython module ``fastembed._textfit``: Keras Tokenizer fitting."""
from typing import Any, Dict, Hashable, Iterable, List, Mapping, Tuple, TypeVar, Union

import numpy as np

from ._textscan import TokenRule

# An id: a Python int or a numpy integer of any width.
_Id = Union[int, np.integer[Any]]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_M = TypeVar("_M", bound=Mapping[Hashable, object])

def fit_texts(texts: Iterable[object], rule: TokenRule
              ) -> Tuple[int, List[Hashable], List[int], List[int]]: ...
def count_updates(target: Mapping[_K, int], words: Iterable[_K], counts: Iterable[int]
                  ) -> Dict[_K, int]: ...
def ordered_copy(d: _M, updates: Dict[Hashable, int]) -> _M: ...
def merged_items(d: Mapping[_K, _V], updates: Dict[_K, _V]) -> Tuple[List[_K], List[_V]]: ...
def index_doc_updates(word_docs: Mapping[_K, int], word_index: Mapping[_K, int]
                      ) -> Dict[_Id, int]: ...
def count_sequences(sequences: Iterable[Iterable[_K]]) -> Dict[_K, int]: ...
