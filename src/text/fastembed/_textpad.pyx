# cython: language_level=3, boundscheck=False, wraparound=False
"""The native path of ``pad_sequences``: lengths of the sequences, then every row
written once (truncated and padded by Keras' rules)."""
import numpy as _np
from cpython.object cimport PyObject
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int32_t, int64_t

from fastembed._textbase cimport ITEM_COST, poll

cdef extern from "Python.h":
    bint PyLong_CheckExact(PyObject* o)
    bint PyFloat_CheckExact(PyObject* o)
    bint PyList_CheckExact(PyObject* o)
    bint PyTuple_CheckExact(PyObject* o)
    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow) except? -1
    double PyFloat_AS_DOUBLE(PyObject* o)

cdef extern from *:
    """
    /* Value of a Python int that fits in a few digits, read in place; 0 when it
       is larger (the caller then asks PyLong_AsLongLongAndOverflow). */
    static inline int fe_small_long(PyObject* o, long long* out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyUnstable_Long_IsCompact((PyLongObject*)o)) {
            *out = (long long)PyUnstable_Long_CompactValue((PyLongObject*)o);
            return 1;
        }
        return 0;
    #else
        const digit* d = ((PyLongObject*)o)->ob_digit;
        switch (Py_SIZE(o)) {
            case 0: *out = 0; return 1;
            case 1: *out = (long long)d[0]; return 1;
            case -1: *out = -(long long)d[0]; return 1;
            case 2: *out = (long long)(((unsigned long long)d[1] << PyLong_SHIFT) | d[0]);
                    return 1;
            case -2: *out = -(long long)(((unsigned long long)d[1] << PyLong_SHIFT) | d[0]);
                     return 1;
        }
        return 0;
    #endif
    }
    """
    bint fe_small_long(PyObject* o, long long* out) noexcept

cdef object _NDARRAY = _np.ndarray
cdef object _ASARRAY = _np.asarray


def seq_lengths(sequences):
    """Lengths of list/tuple/1-D ndarray items as an ``intp`` array, or None when
    an item is anything else (the caller then takes the faithful path)."""
    cdef Py_ssize_t i = 0, n = len(sequences), work = 0
    cdef PyObject* p
    lengths = _np.empty(n, dtype=_np.intp)
    cdef Py_ssize_t[::1] out = lengths
    for s in sequences:
        if i >= n:
            return None
        poll(&work, ITEM_COST)
        p = <PyObject*>s
        if PyList_CheckExact(p):
            out[i] = PyList_GET_SIZE(s)
        elif PyTuple_CheckExact(p):
            out[i] = PyTuple_GET_SIZE(s)
        elif type(s) is _NDARRAY and s.ndim == 1:
            out[i] = s.shape[0]
        else:
            return None
        i += 1
    return lengths if i == n else None

ctypedef fused pad_t:
    int32_t
    int64_t
    float
    double


cdef inline bint _put(pad_t* dst, PyObject* item) noexcept:
    """Store one Python number as numpy's ``asarray(..., dtype)`` would; False when
    numpy would raise or round differently (the faithful path then decides)."""
    cdef long long v
    cdef int ovf = 0
    if PyLong_CheckExact(item):
        if not fe_small_long(item, &v):
            v = PyLong_AsLongLongAndOverflow(item, &ovf)
            if ovf != 0:
                return False
        if pad_t is int32_t:
            if v < -2147483648LL or v > 2147483647LL:
                return False
            dst[0] = <int32_t>v
        elif pad_t is int64_t:
            dst[0] = <int64_t>v
        elif pad_t is float:
            if v < -16777216LL or v > 16777216LL:
                return False
            dst[0] = <float>v
        else:
            if v < -9007199254740992LL or v > 9007199254740992LL:
                return False
            dst[0] = <double>v
        return True
    if pad_t is float or pad_t is double:
        if PyFloat_CheckExact(item):
            dst[0] = <pad_t>PyFloat_AS_DOUBLE(item)
            return True
    return False


def pad_fill(sequences, pad_t[:, ::1] x, const pad_t[::1] fill, Py_ssize_t maxlen,
             bint pre_pad, bint pre_trunc, dtype):
    """Write every row of ``x`` (uninitialized): each list/tuple of Python numbers
    or 1-D array, truncated and padded with ``fill[0]`` by Keras' rules,
    ``maxlen > 0``.  Returns False at the first item it cannot store exactly as
    numpy would (the caller then takes the reference path)."""
    cdef Py_ssize_t r = 0, L, cnt, start, off, k
    cdef PyObject* p
    cdef PyObject* item
    cdef bint is_list
    cdef pad_t* row
    cdef pad_t v = fill[0]
    cdef const pad_t[:] tv
    cdef Py_ssize_t work = 0
    for s in sequences:
        if r >= x.shape[0]:
            return False
        poll(&work, ITEM_COST + maxlen)
        p = <PyObject*>s
        is_list = PyList_CheckExact(p)
        row = &x[r, 0]
        if is_list:
            L = PyList_GET_SIZE(s)
        elif PyTuple_CheckExact(p):
            L = PyTuple_GET_SIZE(s)
        elif type(s) is _NDARRAY and s.ndim == 1:
            # numpy rows: numpy's own slicing and cast, as in Keras.
            L = s.shape[0]
            cnt = 0
            off = 0
            if L:
                tv = _ASARRAY(s[-maxlen:] if pre_trunc else s[:maxlen], dtype=dtype)
                cnt = tv.shape[0]
                off = maxlen - cnt if pre_pad else 0
                for k in range(cnt):
                    row[off + k] = tv[k]
            for k in range(off):
                row[k] = v
            for k in range(off + cnt, maxlen):
                row[k] = v
            r += 1
            continue
        else:
            return False
        cnt = L if L < maxlen else maxlen
        start = L - cnt if pre_trunc else 0
        off = maxlen - cnt if pre_pad else 0
        for k in range(off):
            row[k] = v
        for k in range(off + cnt, maxlen):
            row[k] = v
        row += off
        for k in range(cnt):
            if is_list:
                item = PyList_GET_ITEM(s, start + k)
            else:
                item = PyTuple_GET_ITEM(s, start + k)
            if not _put(row + k, item):
                return False
        r += 1
    # Fewer items than rows: a callback (an __int__ behind np.asarray) shrank the
    # list, and rows of `x` (np.empty) were never written.
    return r == x.shape[0]