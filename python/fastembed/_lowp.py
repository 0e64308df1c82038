"""Reduced-precision (float16, bfloat16) and row-quantized (8-bit, 4-bit) tables.

The kernels are native (src/cpp/fe/lowp.hpp); this module holds the dtype helpers, the
quantizer and ``QuantizedTable``.  ``ml_dtypes`` (which provides numpy's bfloat16) is
imported only when a bfloat16 table is asked for by name: ``import fastembed`` never
imports it.
"""
from __future__ import annotations

import os
import struct

import numpy as np

__all__ = ["QuantizedTable", "quantize_rows", "half_dtype", "is_half", "work_dtype"]


def is_half(dtype) -> bool:
    """True for float16 and ml_dtypes' bfloat16 (recognised by name, no import)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return dt == np.float16 or dt.name == "bfloat16"


def work_dtype(dtype) -> np.dtype:
    """The dtype arithmetic runs in: float32 for half tables, else the table's own."""
    return np.dtype(np.float32) if is_half(dtype) else np.dtype(dtype)


def half_dtype(dtype):
    """np.dtype of "float16" / "bfloat16" (or such a dtype object), or None.

    Raises TypeError naming ``ml_dtypes`` when bfloat16 is asked for without it.
    """
    if isinstance(dtype, str) and dtype.lower() == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("dtype 'bfloat16' needs the optional package ml_dtypes "
                            "(pip install ml_dtypes); float16 works without it") from None
        return np.dtype(ml_dtypes.bfloat16)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    return dt if is_half(dt) else None


_MAGIC = b"FEQTABLE"
_HEADER = 64  # bytes; codes start here


class QuantizedTable:
    """A row-wise quantized embedding table (8 or 4 bits per value), read-only.

    Made by :func:`fastembed.ops.quantize_rows`. Row ``r`` holds codes ``c`` and a
    float32 ``scale`` and ``bias``; element ``k`` is ``scale * c[k] + bias`` (float32,
    two roundings). ``fastembed.ops.gather`` and ``fastembed.ops.embedding_bag`` take it
    and dequantize on the fly into float32.

    Layout (as FBGEMM's fused rows): one ``(rows, code_bytes + 8)`` uint8 array ``data``;
    row ``r`` is its ``code_bytes`` codes, then its float32 scale and bias
    (little-endian). ``code_bytes = dim`` for 8 bits and ``ceil(dim / 2)`` for 4 bits,
    where element ``k`` is the low nibble of byte ``k // 2`` when ``k`` is even and the
    high nibble when odd (an odd ``dim`` leaves the last high nibble 0). A lookup reads
    one span of memory per row. Nothing else is held:
    ``nbytes = rows * code_bytes + 8 * rows``. The file written by :meth:`save` is a
    64-byte header followed by ``data``.

    Attributes
    ----------
    shape : (rows, dim)
    bits : 8 or 4
    data : ndarray of uint8, shape (rows, code_bytes + 8)
    codes : ndarray of uint8, shape (rows, code_bytes) (a view of ``data``)
    params : ndarray of float32, shape (rows, 2): (scale, bias) per row (a view)
    """

    _fe_quantized_rows = True  # recognised by the native ops

    def __init__(self, data: np.ndarray, dim: int, bits: int):
        if bits not in (4, 8):
            raise ValueError(f"bits must be 8 or 4, got {bits!r}")
        cb = dim if bits == 8 else (dim + 1) // 2
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != cb + 8 or not data.flags.c_contiguous:
            raise ValueError(f"data must be a C-contiguous (rows, {cb + 8}) uint8 array, got "
                             f"{getattr(data, 'shape', None)} {getattr(data, 'dtype', None)}")
        self.data = data
        self.bits = int(bits)
        self.shape = (int(data.shape[0]), int(dim))

    @property
    def code_bytes(self) -> int:
        return self.data.shape[1] - 8

    @property
    def codes(self) -> np.ndarray:
        return self.data[:, :self.code_bytes]

    @property
    def params(self) -> np.ndarray:
        return self.data[:, self.code_bytes:].view("<f4")

    @property
    def dtype(self) -> np.dtype:
        """float32: the dtype that lookups return."""
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes held: the codes and 8 bytes (scale, bias) per row."""
        return int(self.data.nbytes)

    @property
    def scale(self) -> np.ndarray:
        return self.params[:, 0]

    @property
    def bias(self) -> np.ndarray:
        return self.params[:, 1]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"QuantizedTable(shape={self.shape}, bits={self.bits}, nbytes={self.nbytes})"

    def unpacked_codes(self) -> np.ndarray:
        """The (rows, dim) uint8 codes (4-bit codes unpacked)."""
        c = np.asarray(self.codes)
        if self.bits == 8:
            return c
        out = np.empty((c.shape[0], 2 * c.shape[1]), dtype=np.uint8)
        out[:, 0::2] = c & 0x0F
        out[:, 1::2] = c >> 4
        return out[:, :self.shape[1]]

    def dequantize(self) -> np.ndarray:
        """The float32 table ``scale * code + bias`` row by row (what lookups read)."""
        c = self.unpacked_codes().astype(np.float32)
        p = np.asarray(self.params, dtype=np.float32)
        return c * p[:, :1] + p[:, 1:]

    # -- files -------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the table to one file: a 64-byte header, then ``data``.

        Header: ``b"FEQTABLE"``, then little-endian uint32 version (1), uint32 bits,
        uint64 rows, uint64 dim; zero padding. Written to a temporary file and renamed,
        so a crash leaves the old file.
        """
        path = os.fspath(path)
        rows, dim = self.shape
        header = _MAGIC + struct.pack("<IIQQ", 1, self.bits, rows, dim)
        tmp = path + ".fe-tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(header.ljust(_HEADER, b"\0"))
                f.write(np.ascontiguousarray(self.data).data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, mmap_mode=None) -> "QuantizedTable":
        """Read a table written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
        mmap_mode : None or "r"
            ``"r"`` maps the file read-only: lookups then read only the rows they touch,
            so a table larger than RAM can serve them.

        Raises
        ------
        ValueError
            A bad ``mmap_mode``, or a file that is not a QuantizedTable file (naming it
            and what is wrong).
        """
        if mmap_mode not in (None, "r"):
            raise ValueError(f"mmap_mode must be None or 'r' (a QuantizedTable is "
                             f"read-only), got {mmap_mode!r}")
        path = os.fspath(path)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEADER)
        if len(head) < _HEADER or head[:8] != _MAGIC:
            raise ValueError(f"{path}: not a fastembed QuantizedTable file (bad header)")
        version, bits, rows, dim = struct.unpack("<IIQQ", head[8:32])
        if version != 1 or bits not in (4, 8):
            raise ValueError(f"{path}: unsupported QuantizedTable version {version} or bits "
                             f"{bits}")
        width = (dim if bits == 8 else (dim + 1) // 2) + 8
        if size != _HEADER + rows * width:
            raise ValueError(f"{path}: the file size {size} does not match its header "
                             f"({rows} rows, dim {dim}, {bits} bits; expected "
                             f"{_HEADER + rows * width} bytes)")
        if mmap_mode == "r" and rows:
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=_HEADER, shape=(rows, width))
        else:
            with open(path, "rb") as f:
                f.seek(_HEADER)
                data = np.frombuffer(f.read(rows * width), dtype=np.uint8) \
                    .reshape(rows, width).copy()
        return cls(data, dim, bits)

    def __reduce__(self):
        return (QuantizedTable, (np.array(self.data), self.shape[1], self.bits))


def quantize_rows(table, bits: int = 8) -> QuantizedTable:
    """Quantize each row of a float table to `bits` (8 or 4) bits, asymmetrically.

    Per row: ``bias = min``, ``scale = (max - min) / (2**bits - 1)`` in float32 (the
    subtraction and the division each rounded to float32), codes
    ``round((x - bias) / scale)`` with the quotient computed in float32 and rounded to
    the nearest integer, ties to even, clipped to ``[0, 2**bits - 1]``. A constant row
    gets ``scale = 0`` and codes 0, so it is exact. Each element then dequantizes to
    within half a step (``scale / 2``, plus float32 rounding) of its value.

    Parameters
    ----------
    table : ndarray, shape (rows, dim), float16, bfloat16, float32 or float64
        float64 values are first rounded to float32.
    bits : {8, 4}

    Returns
    -------
    QuantizedTable

    Raises
    ------
    TypeError
        A table that is not a float array.
    ValueError
        `bits` not 8 or 4; a table that is not 2-D; a row holding NaN or +-inf, or whose
        range ``max - min`` overflows float32 (naming the first such row).
    """
    if isinstance(bits, bool) or bits not in (4, 8):
        raise ValueError(f"bits must be 8 or 4, got {bits!r}")
    if isinstance(table, QuantizedTable):
        raise TypeError("table is already a QuantizedTable; quantize its dequantize()")
    if not isinstance(table, np.ndarray):
        raise TypeError(f"table must be a numpy float array, got {type(table).__name__}")
    if not (table.dtype.kind == "f" or is_half(table.dtype)):
        raise TypeError(f"table must be a float array, got dtype {table.dtype}")
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (rows, dim), got shape {table.shape}")
    rows, dim = table.shape
    levels = (1 << bits) - 1
    cb = dim if bits == 8 else (dim + 1) // 2
    data = np.zeros((rows, cb + 8), dtype=np.uint8)
    codes = data[:, :cb]
    params = data[:, cb:].view("<f4")
    # In blocks of rows: the float32 temporaries stay small for huge tables.
    block = max(1, (1 << 22) // max(dim, 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for r0 in range(0, rows, block):
            x = np.asarray(table[r0:r0 + block], dtype=np.float32)
            if dim == 0:
                continue
            lo = x.min(axis=1)
            hi = x.max(axis=1)
            rng = hi - lo
            bad = ~np.isfinite(rng)
            if bad.any():
                r = r0 + int(np.flatnonzero(bad)[0])
                what = ("holds NaN or infinite values" if not np.isfinite(x[r - r0]).all()
                        else "has a range max - min that overflows float32")
                raise ValueError(f"cannot quantize row {r}: it {what}; quantize_rows needs "
                                 f"finite rows")
            scale = rng / np.float32(levels)
            safe = np.where(scale > 0, scale, np.float32(1))
            q = np.rint((x - lo[:, None]) / safe[:, None])
            q = np.clip(q, 0, levels)
            q[scale == 0] = 0
            q = q.astype(np.uint8)
            if bits == 8:
                codes[r0:r0 + block] = q
            else:
                if dim % 2:
                    q = np.concatenate([q, np.zeros((q.shape[0], 1), np.uint8)], axis=1)
                codes[r0:r0 + block] = q[:, 0::2] | (q[:, 1::2] << 4)
            params[r0:r0 + block, 0] = scale
            params[r0:r0 + block, 1] = lo
    return QuantizedTable(data, dim, bits)
