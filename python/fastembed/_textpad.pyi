"""Stub of the Cython module ``fastembed._textpad``: the native path of pad_sequences."""
from typing import Optional, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

_P = TypeVar("_P", np.int32, np.int64, np.float32, np.float64)

def seq_lengths(sequences: Sequence[object]) -> Optional[npt.NDArray[np.intp]]: ...
def pad_fill(sequences: Sequence[object], x: npt.NDArray[_P], fill: npt.NDArray[_P],
             maxlen: int, pre_pad: bool, pre_trunc: bool, dtype: npt.DTypeLike) -> bool: ...
