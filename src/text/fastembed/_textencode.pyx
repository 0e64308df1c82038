# cython: language_level=3, boundscheck=False, wraparound=False
"""Encoding with the Keras Tokenizer: ``texts_to_sequences`` (texts to ids),
``sequences_to_texts`` (ids to texts) and ``sequences_to_matrix`` (ids to rows).

Results are new objects; the tokenizer is only read.
"""
cimport cython
import gc as _gc
import numpy as _np
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint8_t, int64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdlib cimport free
from libc.string cimport memset

from fastembed._textbase cimport ITEM_COST, TOKENS_MASK, PyErr_CheckSignals, poll
from fastembed._textbase cimport Spans, spans_free
from fastembed._textscan cimport Scratch, Slot, StrTable, TokenRule, doc_view, scan_data

cdef extern from "Python.h":
    bint PyLong_CheckExact(PyObject* o)
    bint PyList_CheckExact(PyObject* o)
    bint PyTuple_CheckExact(PyObject* o)
    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow) except? -1

cdef frozenset _NP_INTS = frozenset([_np.int8, _np.int16, _np.int32, _np.int64, _np.uint8,
                                     _np.uint16, _np.uint32, _np.uint64, _np.intc,
                                     _np.uintc, _np.longlong, _np.ulonglong])

# ------------------------------------------------------------------------ encode
cdef object _DROP = object()


@cython.final
cdef class Encoder:
    """``texts_to_sequences`` for one tokenizer state.  The rule of each distinct
    token is computed once with Python semantics (``word_index.get``, the
    ``num_words`` comparison, the OOV index, which may be None before fitting);
    repeated tokens reuse the result object."""
    cdef object word_index
    cdef object num_words
    cdef object oov_token
    cdef object oov_index
    cdef TokenRule tr
    cdef StrTable table
    cdef list outs          # keeps the rule results that slots point to
    cdef Spans sp
    cdef Scratch sc
    cdef PyObject** buf
    cdef Py_ssize_t bufcap
    cdef Py_ssize_t work
    # encode_str keeps raw pointers (document view, spans, slots) across rule(),
    # which runs user code (__ge__ of ids, __hash__ of tokens); that code must not
    # re-enter this encoder and move them.
    cdef bint busy

    def __cinit__(self, word_index, num_words, oov_token, TokenRule rule not None):
        self.word_index = word_index
        self.num_words = num_words
        self.oov_token = oov_token
        self.oov_index = word_index.get(oov_token)
        self.tr = rule
        self.table = StrTable()
        self.outs = []
        self.sp.start = NULL
        self.sp.length = NULL
        self.sp.hash = NULL
        self.sp.n = 0
        self.sp.cap = 0
        self.buf = NULL
        self.bufcap = 0
        self.sc.buf = NULL
        self.sc.cap = 0
        self.work = 0
        self.busy = False

    def __dealloc__(self):
        spans_free(&self.sp)
        PyMem_Free(self.buf)
        free(self.sc.buf)   # doc_view grows it with realloc

    cdef object rule(self, w):
        i = self.word_index.get(w)
        if i is not None:
            if self.num_words and i >= self.num_words:
                if self.oov_index is not None:
                    return self.oov_index
                return _DROP
            return i
        if self.oov_token is not None:
            return self.oov_index
        return _DROP

    cdef int _reserve(self, Py_ssize_t need) except -1:
        cdef void* a
        if need <= self.bufcap:
            return 0
        need = max(need, 2 * self.bufcap, 256)
        a = PyMem_Realloc(self.buf, need * sizeof(PyObject*))
        if a == NULL:
            raise MemoryError()
        self.buf = <PyObject**>a
        self.bufcap = need
        return 0

    cdef list encode_str(self, object text):
        cdef Py_ssize_t i, n, m = 0
        cdef StrTable t = self.table
        cdef Slot* e
        cdef unsigned int kind
        cdef const char* data
        cdef object s = doc_view(text, self.tr.lower, &self.sc, &kind, &data, &n)
        scan_data(kind, data, n, self.tr.sep, &self.sp)
        poll(&self.work, n + self.sp.n * ITEM_COST)
        self._reserve(self.sp.n)
        for i in range(self.sp.n):
            if (i & TOKENS_MASK) == TOKENS_MASK:
                PyErr_CheckSignals()   # a huge document
            e = t.span(kind, data, self.sp.start[i], self.sp.length[i], self.sp.hash[i])
            if not e.pay.enc.known:
                o = self.rule(<object>PyList_GET_ITEM(t.keys, e.e))
                if o is _DROP:
                    e.pay.enc.out = NULL
                else:
                    self.outs.append(o)       # owns the reference the slot borrows
                    e.pay.enc.out = <PyObject*>o
                e.pay.enc.known = True
            if e.pay.enc.out != NULL:
                self.buf[m] = e.pay.enc.out
                m += 1
        cdef list out = PyList_New(m)
        for i in range(m):
            Py_INCREF(<object>self.buf[i])
            PyList_SET_ITEM(out, i, <object>self.buf[i])
        return out

    cdef list encode_generic(self, text):
        cdef list vect = []
        seq = self.tr.tokens(text)
        for w in seq:
            o = self.rule(w)
            if o is not _DROP:
                vect.append(o)
            poll(&self.work, ITEM_COST)
        return vect

    cdef int _enter(self) except -1:
        if self.busy:
            raise RuntimeError("texts_to_sequences was re-entered from a callback it "
                               "made (an __eq__, __hash__ or comparison of a token or "
                               "id); encode from a new call instead")
        self.busy = True
        return 0

    def encode_one(self, text):
        self._enter()
        try:
            poll(&self.work, ITEM_COST)
            if self.tr.scans(text):
                return self.encode_str(text)
            return self.encode_generic(text)
        finally:
            self.busy = False

    def encode_many(self, texts):
        cdef list result = []
        # The result is one new list per text, holding only ints: it cannot form a
        # cycle, yet each allocation burst makes the cyclic GC re-walk every list
        # made so far (a quarter of the time on a large corpus).  Pause it.
        cdef bint was_enabled = _gc.isenabled()
        self._enter()
        if was_enabled:
            _gc.disable()
        try:
            for text in texts:
                if self.tr.scans(text):
                    result.append(self.encode_str(text))
                else:
                    result.append(self.encode_generic(text))
                poll(&self.work, ITEM_COST)
        finally:
            self.busy = False
            if was_enabled:
                _gc.enable()
        return result


def sequences_to_texts(sequences, index_word, num_words, oov_token, oov_index):
    """Keras ``sequences_to_texts_generator`` as a list (same per-id rule)."""
    cdef list result = []
    cdef list vect
    cdef Py_ssize_t work = 0
    for seq in sequences:
        vect = []
        poll(&work, ITEM_COST)
        for num in seq:
            poll(&work, ITEM_COST)
            word = index_word.get(num)
            if word is not None:
                if num_words and num >= num_words:
                    if oov_index is not None:
                        vect.append(index_word[oov_index])
                else:
                    vect.append(word)
            elif oov_token is not None:
                vect.append(index_word[oov_index])
        result.append(' '.join(vect))
    return result


# ------------------------------------------------------------------------ matrix

cdef dict _MODES = {"binary": 0, "count": 1, "freq": 2, "tfidf": 3}


def sequences_to_matrix(sequences, double[:, ::1] x, Py_ssize_t width, mode_obj,
                        document_count, index_docs):
    """Fill ``x`` (zeros, ``len(sequences)`` rows) as Keras ``sequences_to_matrix``.

    ``mode_obj``: "binary", "count", "freq" or "tfidf"; anything else raises on the
    first value written, as Keras does.  tf-idf evaluates Keras' own numpy
    expressions (``1 + np.log(c)`` and ``np.log(1 + document_count / (1 +
    index_docs.get(j, 0)))``), cached per count / per id.  Per row, counts are kept per
    *raw* id and written in order of first appearance, so a negative id and its
    wrapped column overwrite each other exactly as Keras' dict loop does.

    Returns False (and the caller redoes the work in Python) on anything this loop
    does not reproduce: a sequence that is not a list/tuple, a non-int id, an id
    below ``-width``.
    """
    cdef Py_ssize_t rows = x.shape[0], r = 0, L, k, nk, col
    cdef int64_t* cp = NULL
    cdef int64_t* cn = NULL
    cdef int64_t* order = NULL
    cdef double* tfc = NULL
    cdef double* tfc2
    cdef double* idfp = NULL
    cdef double* idfn = NULL
    cdef uint8_t* tfok = NULL
    cdef uint8_t* tfok2
    cdef uint8_t* okp = NULL
    cdef uint8_t* okn = NULL
    cdef Py_ssize_t tfcap = 0, nt, t
    cdef long long j
    cdef int ovf
    cdef int64_t c
    cdef double v, idf
    cdef PyObject* item
    cdef object as_int, obj
    cdef int64_t* order2
    cdef bint ok = True, is_list
    cdef Py_ssize_t work = 0
    cdef Py_ssize_t alloc = width if width > 0 else 1
    # An unhashable mode is unknown too (Keras compares it with ==).
    cdef int mode = _MODES.get(mode_obj, -1) if isinstance(mode_obj, str) else -1
    cp = <int64_t*>PyMem_Malloc(alloc * sizeof(int64_t))
    cn = <int64_t*>PyMem_Malloc(alloc * sizeof(int64_t))
    idfp = <double*>PyMem_Malloc(alloc * sizeof(double))
    idfn = <double*>PyMem_Malloc(alloc * sizeof(double))
    okp = <uint8_t*>PyMem_Malloc(alloc)
    okn = <uint8_t*>PyMem_Malloc(alloc)
    try:
        if (cp == NULL or cn == NULL or idfp == NULL or idfn == NULL or okp == NULL
                or okn == NULL):
            raise MemoryError()
        memset(cp, 0, alloc * sizeof(int64_t))
        memset(cn, 0, alloc * sizeof(int64_t))
        memset(okp, 0, alloc)
        memset(okn, 0, alloc)
        for seq in sequences:
            if r >= rows:
                return False
            if PyList_CheckExact(<PyObject*>seq):
                L = PyList_GET_SIZE(seq)
            elif PyTuple_CheckExact(<PyObject*>seq):
                L = PyTuple_GET_SIZE(seq)
            else:
                return False
            poll(&work, ITEM_COST)
            if L == 0:
                r += 1
                continue
            order2 = <int64_t*>PyMem_Realloc(order, L * sizeof(int64_t))
            if order2 == NULL:
                raise MemoryError()
            order = order2
            is_list = PyList_CheckExact(<PyObject*>seq)
            nk = 0
            # pass 1: validate and count per raw id.  No user code runs here, but
            # own each item and re-read the size all the same: a list must never be
            # read through a stale length or a borrowed item.
            for k in range(L):
                poll(&work, 4)
                if is_list:
                    if k >= PyList_GET_SIZE(seq):
                        ok = False
                        break
                    obj = <object>PyList_GET_ITEM(seq, k)
                else:
                    obj = <object>PyTuple_GET_ITEM(seq, k)
                item = <PyObject*>obj
                if PyLong_CheckExact(item):
                    j = PyLong_AsLongLongAndOverflow(item, &ovf)
                elif type(obj) in _NP_INTS:
                    # numpy integer scalars hash and compare like ints in Keras' loop;
                    # exact types only, whose int() runs no user code (a subclass may
                    # define __int__, __hash__ or __eq__: Keras' loop decides).
                    as_int = int(obj)
                    j = PyLong_AsLongLongAndOverflow(<PyObject*>as_int, &ovf)
                else:
                    ok = False
                    break
                if ovf > 0:
                    continue          # >= width: skipped
                if ovf < 0 or j < -width:
                    ok = False
                    break
                if j >= width:
                    continue
                if j >= 0:
                    if cp[j] == 0:
                        order[nk] = j
                        nk += 1
                    cp[j] += 1
                else:
                    if cn[j + width] == 0:
                        order[nk] = j
                        nk += 1
                    cn[j + width] += 1
            if ok and is_list and PyList_GET_SIZE(seq) != L:
                ok = False     # changed under us: Keras' loop (Python) decides
            if not ok:
                return False
            # pass 2: write in first-appearance order of the raw ids
            for k in range(nk):
                poll(&work, 4)
                j = order[k]
                if j >= 0:
                    c = cp[j]
                    cp[j] = 0
                    col = <Py_ssize_t>j
                else:
                    c = cn[j + width]
                    cn[j + width] = 0
                    col = <Py_ssize_t>(j + width)
                if mode == 1:
                    v = <double>c
                elif mode == 2:
                    v = <double>c / <double>L
                elif mode == 0:
                    v = 1.0
                elif mode == 3:
                    if c >= tfcap:
                        nt = max(2 * tfcap, c + 1, 64)
                        tfc2 = <double*>PyMem_Realloc(tfc, nt * sizeof(double))
                        if tfc2 == NULL:
                            raise MemoryError()
                        tfc = tfc2
                        tfok2 = <uint8_t*>PyMem_Realloc(tfok, nt)
                        if tfok2 == NULL:
                            raise MemoryError()
                        tfok = tfok2
                        for t in range(tfcap, nt):
                            tfok[t] = 0
                        tfcap = nt
                    if not tfok[c]:
                        tfc[c] = 1 + _np.log(c)
                        tfok[c] = 1
                    if j >= 0:
                        if not okp[j]:
                            idfp[j] = _np.log(1 + document_count / (1 + index_docs.get(j, 0)))
                            okp[j] = 1
                        idf = idfp[j]
                    else:
                        if not okn[j + width]:
                            idfn[j + width] = _np.log(
                                1 + document_count / (1 + index_docs.get(j, 0)))
                            okn[j + width] = 1
                        idf = idfn[j + width]
                    v = tfc[c] * idf
                else:
                    raise ValueError('Unknown vectorization mode:', mode_obj)
                x[r, col] = v
            r += 1
        return True
    finally:
        PyMem_Free(cp)
        PyMem_Free(cn)
        PyMem_Free(order)
        PyMem_Free(tfc)
        PyMem_Free(idfp)
        PyMem_Free(idfn)
        PyMem_Free(tfok)
        PyMem_Free(okp)
        PyMem_Free(okn)
