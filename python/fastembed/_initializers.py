"""A new embedding table: the dtypes a table may have and its initial values."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._lowp import half_dtype, is_half

__all__ = ["FLOAT_DTYPES", "table_dtype", "is_table_dtype", "initial_table"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# What ``embeddings_initializer`` accepts: a name, ``f(shape, dtype=...)`` or the values.
Initializer = Union[str, Callable[..., Any], npt.ArrayLike]


def table_dtype(dtype: Any, what: str = "dtype") -> np.dtype[Any]:
    """The np.dtype of a table: float32, float64, float16 or bfloat16 (TypeError else)."""
    half: Optional[np.dtype[Any]] = half_dtype(dtype)  # TypeError for bfloat16 without ml_dtypes
    if half is not None:
        return half
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what} must be float32 or float64 (or float16, bfloat16), got "
                        f"{dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{what} must be float32 or float64 (or float16, bfloat16), got {dt}")
    return dt


def is_table_dtype(dtype: np.dtype[Any]) -> bool:
    """True for the dtypes a table (and so a gradient's values) may have."""
    return dtype in FLOAT_DTYPES or is_half(dtype)


def initial_table(init: Initializer, shape: Tuple[int, int], dtype: np.dtype[Any],
                  seed: Optional[int]) -> npt.NDArray[np.floating[Any]]:
    """A new C-contiguous `shape` table of `dtype` filled by `init`.

    The random initializers draw in float64 from ``np.random.default_rng(seed)`` and
    round to `dtype`, so one seed gives the same table in every dtype (up to rounding).
    """
    if isinstance(init, str):
        key = init.lower()
        rng = np.random.default_rng(seed)
        if key in ("uniform", "random_uniform", "randomuniform"):
            return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)
        if key in ("normal", "random_normal", "randomnormal"):
            return rng.normal(0.0, 0.05, size=shape).astype(dtype)
        if key in ("glorot_uniform", "glorotuniform", "xavier_uniform"):
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            return rng.uniform(-limit, limit, size=shape).astype(dtype)
        if key == "zeros":
            return np.zeros(shape, dtype=dtype)
        raise ValueError(f"unknown embeddings_initializer {init!r}; expected 'uniform', "
                         f"'normal', 'glorot_uniform', 'zeros', a callable or an array")
    if callable(init):
        value = np.asarray(init(shape, dtype=dtype))
    else:
        value = np.asarray(init)
    if value.shape != shape:
        raise ValueError(f"embeddings_initializer gave shape {value.shape}, expected {shape}")
    if value.dtype.kind not in "fiu":
        raise TypeError(f"embeddings_initializer gave dtype {value.dtype}, expected floats")
    return np.array(value, dtype=dtype, order="C", copy=True)
