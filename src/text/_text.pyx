# cython: language_level=3, boundscheck=False, wraparound=False
"""Hot loops of the Keras-compatible text pipeline.

Everything here reproduces, token for token, what the pure-Python Keras code does;
the Python layer (``fastembed.text`` / ``fastembed.sequence``) decides when a fast
loop applies and keeps a faithful pure-Python path for everything else.

Tokens of plain ``str`` documents are never materialized as Python strings unless
they are new: the document is scanned in place (``PyUnicode_DATA``), each token is
hashed over its code points and looked up in an open-addressing table whose keys
are the first ``str`` object seen for that token.  Only a new token costs a
substring, a Python hash and a dict operation.
"""
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memcmp, memset

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    unsigned int PyUnicode_KIND(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    uint32_t PyUnicode_READ(unsigned int kind, const void* data, Py_ssize_t i)
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)
    bint PyUnicode_Check(PyObject* o)
    bint PyUnicode_CheckExact(PyObject* o)
    bint PyLong_CheckExact(PyObject* o)
    bint PyFloat_CheckExact(PyObject* o)
    bint PyList_CheckExact(PyObject* o)
    bint PyTuple_CheckExact(PyObject* o)
    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow) except? -1
    double PyFloat_AS_DOUBLE(PyObject* o)

ctypedef fused uchar_t:
    uint8_t
    uint16_t
    uint32_t

cdef uint64_t _FNV_OFFSET = 14695981039346656037ULL
cdef uint64_t _FNV_PRIME = 1099511628211ULL


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    # FNV alone leaves the low bits (our slot index) poorly mixed.
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef uint64_t _hash_str(PyObject* w) noexcept:
    cdef unsigned int kind = PyUnicode_KIND(w)
    cdef const void* data = PyUnicode_DATA(w)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(w), i
    cdef uint64_t h = _FNV_OFFSET
    for i in range(n):
        h = (h ^ PyUnicode_READ(kind, data, i)) * _FNV_PRIME
    return _mix(h)


cdef class Splitter:
    """The separator set of ``text_to_word_sequence`` for a one-character ``split``:
    every filter character and the split character itself.  With a one-character
    split, translate-then-split-then-drop-empties is exactly "maximal runs of
    non-separator characters"."""
    cdef uint8_t ascii[128]
    cdef uint32_t* wide      # sorted non-ASCII separators
    cdef Py_ssize_t nwide

    def __cinit__(self, ordinals):
        cdef list wide = sorted(set(int(o) for o in ordinals if int(o) >= 128))
        cdef Py_ssize_t i
        memset(self.ascii, 0, 128)
        for o in ordinals:
            if 0 <= o < 128:
                self.ascii[<int>o] = 1
        self.nwide = len(wide)
        self.wide = <uint32_t*>PyMem_Malloc(max(1, self.nwide) * sizeof(uint32_t))
        if self.wide == NULL:
            raise MemoryError()
        for i in range(self.nwide):
            self.wide[i] = wide[i]

    def __dealloc__(self):
        PyMem_Free(self.wide)

    cdef inline bint is_sep(self, uint32_t c) noexcept:
        cdef Py_ssize_t lo, hi, mid
        if c < 128:
            return self.ascii[c]
        lo = 0
        hi = self.nwide
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.wide[mid] < c:
                lo = mid + 1
            else:
                hi = mid
        return lo < self.nwide and self.wide[lo] == c


cdef struct Spans:
    Py_ssize_t* start
    Py_ssize_t* length
    uint64_t* hash
    Py_ssize_t n
    Py_ssize_t cap


cdef int _spans_reserve(Spans* sp, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = sp.cap
    if need <= cap:
        return 0
    cap = max(need, 2 * cap, 64)
    cdef void* a = PyMem_Realloc(sp.start, cap * sizeof(Py_ssize_t))
    if a == NULL:
        raise MemoryError()
    sp.start = <Py_ssize_t*>a
    a = PyMem_Realloc(sp.length, cap * sizeof(Py_ssize_t))
    if a == NULL:
        raise MemoryError()
    sp.length = <Py_ssize_t*>a
    a = PyMem_Realloc(sp.hash, cap * sizeof(uint64_t))
    if a == NULL:
        raise MemoryError()
    sp.hash = <uint64_t*>a
    sp.cap = cap
    return 0


cdef void _spans_free(Spans* sp) noexcept:
    PyMem_Free(sp.start)
    PyMem_Free(sp.length)
    PyMem_Free(sp.hash)
    sp.start = NULL
    sp.length = NULL
    sp.hash = NULL
    sp.cap = 0
    sp.n = 0


cdef int _scan(const uchar_t* d, Py_ssize_t n, Splitter sep, Spans* sp) except -1:
    # A document has at most n/2 + 1 tokens.
    _spans_reserve(sp, n // 2 + 1)
    cdef Py_ssize_t j = 0, start, m = 0
    cdef uint64_t h
    cdef uint32_t c
    while True:
        while j < n and sep.is_sep(d[j]):
            j += 1
        if j >= n:
            break
        start = j
        h = _FNV_OFFSET
        while j < n:
            c = d[j]
            if sep.is_sep(c):
                break
            h = (h ^ c) * _FNV_PRIME
            j += 1
        sp.start[m] = start
        sp.length[m] = j - start
        sp.hash[m] = _mix(h)
        m += 1
    sp.n = m
    return 0


cdef int _scan_str(object s, Splitter sep, Spans* sp) except -1:
    cdef PyObject* p = <PyObject*>s
    cdef unsigned int kind = PyUnicode_KIND(p)
    cdef void* data = PyUnicode_DATA(p)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(p)
    if kind == 1:
        return _scan(<const uint8_t*>data, n, sep, sp)
    elif kind == 2:
        return _scan(<const uint16_t*>data, n, sep, sp)
    return _scan(<const uint32_t*>data, n, sep, sp)


cdef inline bint _same(PyObject* key, unsigned int kind, const char* data,
                       Py_ssize_t start, Py_ssize_t m) noexcept:
    if PyUnicode_GET_LENGTH(key) != m:
        return False
    cdef unsigned int kk = PyUnicode_KIND(key)
    cdef const void* kd = PyUnicode_DATA(key)
    cdef Py_ssize_t i
    if kk == kind:
        return memcmp(kd, data + start * kind, m * kind) == 0
    for i in range(m):
        if PyUnicode_READ(kk, kd, i) != PyUnicode_READ(kind, data, start + i):
            return False
    return True


cdef class StrTable:
    """Token -> entry number, keyed by code points; entries are numbered in order
    of first insertion.  ``keys[e]`` is the ``str`` object of entry ``e``; other
    hashable tokens (from pre-tokenized lists) go through a plain dict."""
    cdef uint64_t* hs
    cdef Py_ssize_t* slot
    cdef Py_ssize_t mask
    cdef Py_ssize_t n
    cdef list keys
    cdef dict others
    # per-entry payloads, used by fitting
    cdef int64_t* cnt
    cdef int64_t* dcnt
    cdef int64_t* last
    cdef Py_ssize_t acap

    def __cinit__(self):
        self.keys = []
        self.others = {}
        self.mask = 1023
        self.hs = <uint64_t*>PyMem_Malloc((self.mask + 1) * sizeof(uint64_t))
        self.slot = <Py_ssize_t*>PyMem_Malloc((self.mask + 1) * sizeof(Py_ssize_t))
        if self.hs == NULL or self.slot == NULL:
            raise MemoryError()
        memset(self.slot, 0xff, (self.mask + 1) * sizeof(Py_ssize_t))
        self.n = 0
        self.acap = 0

    def __dealloc__(self):
        PyMem_Free(self.hs)
        PyMem_Free(self.slot)
        PyMem_Free(self.cnt)
        PyMem_Free(self.dcnt)
        PyMem_Free(self.last)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t newmask = 2 * self.mask + 1, i, k
        cdef uint64_t* nh = <uint64_t*>PyMem_Malloc((newmask + 1) * sizeof(uint64_t))
        cdef Py_ssize_t* ns = <Py_ssize_t*>PyMem_Malloc((newmask + 1) * sizeof(Py_ssize_t))
        if nh == NULL or ns == NULL:
            PyMem_Free(nh)
            PyMem_Free(ns)
            raise MemoryError()
        memset(ns, 0xff, (newmask + 1) * sizeof(Py_ssize_t))
        for i in range(self.mask + 1):
            if self.slot[i] >= 0:
                k = <Py_ssize_t>(self.hs[i] & newmask)
                while ns[k] >= 0:
                    k = (k + 1) & newmask
                ns[k] = self.slot[i]
                nh[k] = self.hs[i]
        PyMem_Free(self.hs)
        PyMem_Free(self.slot)
        self.hs = nh
        self.slot = ns
        self.mask = newmask
        return 0

    cdef int _reserve_payload(self) except -1:
        cdef Py_ssize_t cap
        cdef void* a
        if self.n < self.acap:
            return 0
        cap = max(1024, 2 * self.acap)
        a = PyMem_Realloc(self.cnt, cap * sizeof(int64_t))
        if a == NULL:
            raise MemoryError()
        self.cnt = <int64_t*>a
        a = PyMem_Realloc(self.dcnt, cap * sizeof(int64_t))
        if a == NULL:
            raise MemoryError()
        self.dcnt = <int64_t*>a
        a = PyMem_Realloc(self.last, cap * sizeof(int64_t))
        if a == NULL:
            raise MemoryError()
        self.last = <int64_t*>a
        self.acap = cap
        return 0

    cdef Py_ssize_t _new_entry(self, object key) except -1:
        self._reserve_payload()
        cdef Py_ssize_t e = self.n
        self.keys.append(key)
        self.cnt[e] = 0
        self.dcnt[e] = 0
        self.last[e] = -1
        self.n += 1
        return e

    cdef Py_ssize_t span(self, object doc, unsigned int kind, const char* data,
                         Py_ssize_t start, Py_ssize_t m, uint64_t h) except -1:
        """Entry of the token doc[start:start+m]; creates it (and its str) if new."""
        cdef Py_ssize_t k = <Py_ssize_t>(h & self.mask), e
        while True:
            e = self.slot[k]
            if e < 0:
                break
            if self.hs[k] == h and _same(<PyObject*>PyList_GET_ITEM(self.keys, e),
                                         kind, data, start, m):
                return e
            k = (k + 1) & self.mask
        e = self._new_entry(PyUnicode_Substring(doc, start, start + m))
        self.slot[k] = e
        self.hs[k] = h
        if 2 * self.n > self.mask:
            self._grow()
        return e

    cdef Py_ssize_t obj(self, object w) except -1:
        """Entry of an arbitrary token object (Python equality for non-str)."""
        cdef PyObject* p = <PyObject*>w
        cdef uint64_t h
        cdef Py_ssize_t k, e
        if not PyUnicode_Check(p):
            r = self.others.get(w)
            if r is not None:
                return <Py_ssize_t>r
            e = self._new_entry(w)
            self.others[w] = e
            return e
        h = _hash_str(p)
        k = <Py_ssize_t>(h & self.mask)
        while True:
            e = self.slot[k]
            if e < 0:
                break
            if self.hs[k] == h and _same(<PyObject*>PyList_GET_ITEM(self.keys, e),
                                         PyUnicode_KIND(p), <const char*>PyUnicode_DATA(p),
                                         0, PyUnicode_GET_LENGTH(p)):
                return e
            k = (k + 1) & self.mask
        e = self._new_entry(w)
        self.slot[k] = e
        self.hs[k] = h
        if 2 * self.n > self.mask:
            self._grow()
        return e


# --------------------------------------------------------------------------- fit

def fit_texts(texts, bint lower, Splitter sep, tokenize):
    """Count tokens of every document of ``texts``.

    Plain ``str`` documents are scanned here when ``sep`` is given; any other item
    goes through ``tokenize(item)`` (the Keras per-item rule) and is counted the way
    Keras counts it: every token for ``word_counts``, then a second pass over the
    same sequence for ``word_docs`` (so an iterator counts no documents, as in
    Keras' ``set(seq)`` after the loop consumed it).

    Returns ``(n_docs, words, counts, docs)`` with words in order of first
    appearance.
    """
    cdef StrTable t = StrTable()
    cdef Spans sp
    cdef Py_ssize_t i, e
    cdef int64_t doc = 0
    cdef object s
    cdef PyObject* p
    cdef unsigned int kind
    cdef const char* data
    sp.start = NULL
    sp.length = NULL
    sp.hash = NULL
    sp.n = 0
    sp.cap = 0
    try:
        for text in texts:
            p = <PyObject*>text
            if sep is not None and PyUnicode_CheckExact(p):
                s = text.lower() if lower else text
                _scan_str(s, sep, &sp)
                p = <PyObject*>s
                kind = PyUnicode_KIND(p)
                data = <const char*>PyUnicode_DATA(p)
                for i in range(sp.n):
                    e = t.span(s, kind, data, sp.start[i], sp.length[i], sp.hash[i])
                    t.cnt[e] += 1
                    if t.last[e] != doc:
                        t.last[e] = doc
                        t.dcnt[e] += 1
            else:
                seq = tokenize(text)
                for w in seq:
                    e = t.obj(w)
                    t.cnt[e] += 1
                for w in seq:
                    e = t.obj(w)
                    if t.last[e] != doc:
                        t.last[e] = doc
                        t.dcnt[e] += 1
            doc += 1
    finally:
        _spans_free(&sp)
    counts = [t.cnt[i] for i in range(t.n)]
    docs = [t.dcnt[i] for i in range(t.n)]
    return doc, t.keys, counts, docs


def merge_counts(word_counts, word_docs, list words, list counts, list docs):
    """Add one fit's counts into the tokenizer's dictionaries (insertion order of
    new words = order of first appearance, as Keras' per-token updates give)."""
    cdef Py_ssize_t i
    for i in range(len(words)):
        w = words[i]
        c = word_counts.get(w)
        word_counts[w] = counts[i] if c is None else c + counts[i]
    for i in range(len(words)):
        d = docs[i]
        if d:
            w = words[i]
            c = word_docs.get(w)
            word_docs[w] = d if c is None else c + d


def add_counts(target, dict local):
    """``target[k] += v`` for every item of ``local`` (``target`` may be a plain
    dict)."""
    for k, v in local.items():
        c = target.get(k)
        target[k] = v if c is None else c + v


def update_index_docs(index_docs, word_docs, word_index):
    """``index_docs[word_index[w]] = c`` for every ``(w, c)`` of ``word_docs``."""
    for w, c in list(word_docs.items()):
        index_docs[word_index[w]] = c


def count_sequences(sequences):
    """Per-id document frequencies of ``sequences`` (Keras ``fit_on_sequences``),
    in order of first appearance."""
    cdef dict local = {}
    for seq in sequences:
        for i in set(seq):
            c = local.get(i)
            local[i] = 1 if c is None else c + 1
    return local


# ------------------------------------------------------------------------ encode

cdef object _DROP = object()


cdef class Encoder:
    """``texts_to_sequences`` for one tokenizer state.  The rule of each distinct
    token is computed once with Python semantics (``word_index.get``, the
    ``num_words`` comparison, the OOV index, which may be None before fitting);
    repeated tokens reuse the result object."""
    cdef object word_index
    cdef object num_words
    cdef object oov_token
    cdef object oov_index
    cdef bint lower
    cdef Splitter sep
    cdef object tokenize
    cdef StrTable table
    cdef list outs          # entry -> int object to append, or _DROP
    cdef Spans sp
    cdef PyObject** buf
    cdef Py_ssize_t bufcap

    def __cinit__(self, word_index, num_words, oov_token, bint lower, Splitter sep,
                  tokenize):
        self.word_index = word_index
        self.num_words = num_words
        self.oov_token = oov_token
        self.oov_index = word_index.get(oov_token)
        self.lower = lower
        self.sep = sep
        self.tokenize = tokenize
        self.table = StrTable()
        self.outs = []
        self.sp.start = NULL
        self.sp.length = NULL
        self.sp.hash = NULL
        self.sp.n = 0
        self.sp.cap = 0
        self.buf = NULL
        self.bufcap = 0

    def __dealloc__(self):
        _spans_free(&self.sp)
        PyMem_Free(self.buf)

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

    cdef list encode_str(self, str text):
        cdef object s = text.lower() if self.lower else text
        cdef PyObject* p = <PyObject*>s
        cdef Py_ssize_t i, e, m = 0
        cdef StrTable t = self.table
        cdef object o
        cdef PyObject* op
        _scan_str(s, self.sep, &self.sp)
        cdef unsigned int kind = PyUnicode_KIND(p)
        cdef const char* data = <const char*>PyUnicode_DATA(p)
        self._reserve(self.sp.n)
        for i in range(self.sp.n):
            e = t.span(s, kind, data, self.sp.start[i], self.sp.length[i], self.sp.hash[i])
            if e == PyList_GET_SIZE(self.outs):
                self.outs.append(self.rule(<object>PyList_GET_ITEM(t.keys, e)))
            op = PyList_GET_ITEM(self.outs, e)
            if op != <PyObject*>_DROP:
                self.buf[m] = op
                m += 1
        cdef list out = PyList_New(m)
        for i in range(m):
            Py_INCREF(<object>self.buf[i])
            PyList_SET_ITEM(out, i, <object>self.buf[i])
        return out

    cdef list encode_generic(self, text):
        cdef list vect = []
        seq = self.tokenize(text)
        for w in seq:
            o = self.rule(w)
            if o is not _DROP:
                vect.append(o)
        return vect

    def encode_one(self, text):
        if self.sep is not None and PyUnicode_CheckExact(<PyObject*>text):
            return self.encode_str(text)
        return self.encode_generic(text)

    def encode_many(self, texts):
        cdef list result = []
        for text in texts:
            if self.sep is not None and PyUnicode_CheckExact(<PyObject*>text):
                result.append(self.encode_str(text))
            else:
                result.append(self.encode_generic(text))
        return result


def sequences_to_texts(sequences, index_word, num_words, oov_token, oov_index):
    """Keras ``sequences_to_texts_generator`` as a list (same per-id rule)."""
    cdef list result = []
    cdef list vect
    for seq in sequences:
        vect = []
        for num in seq:
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

def sequences_to_matrix(sequences, double[:, ::1] x, Py_ssize_t width, int mode,
                        mode_obj, tf_of, idf_of):
    """Fill ``x`` (zeros, ``len(sequences)`` rows) as Keras ``sequences_to_matrix``.

    mode: 0 binary, 1 count, 2 freq, 3 tfidf, -1 unknown (raises on the first value
    written, as Keras does).  ``tf_of(c)`` / ``idf_of(j)`` evaluate Keras' own numpy
    expressions; they are cached per count / per id.  Per row, counts are kept per
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
    cdef bint ok = True
    cdef Py_ssize_t alloc = width if width > 0 else 1
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
            if L == 0:
                r += 1
                continue
            order = <int64_t*>PyMem_Realloc(order, L * sizeof(int64_t))
            if order == NULL:
                raise MemoryError()
            nk = 0
            # pass 1: validate and count per raw id
            for k in range(L):
                if PyList_CheckExact(<PyObject*>seq):
                    item = PyList_GET_ITEM(seq, k)
                else:
                    item = PyTuple_GET_ITEM(seq, k)
                if not PyLong_CheckExact(item):
                    ok = False
                    break
                j = PyLong_AsLongLongAndOverflow(item, &ovf)
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
            if not ok:
                return False
            # pass 2: write in first-appearance order of the raw ids
            for k in range(nk):
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
                        tfc[c] = tf_of(c)
                        tfok[c] = 1
                    if j >= 0:
                        if not okp[j]:
                            idfp[j] = idf_of(j)
                            okp[j] = 1
                        idf = idfp[j]
                    else:
                        if not okn[j + width]:
                            idfn[j + width] = idf_of(j)
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


# ------------------------------------------------------------------ pad_sequences

def seq_lengths(sequences, Py_ssize_t[::1] out, ndarray):
    """Lengths of list/tuple/1-D ndarray items.  Returns how many items were
    measured: fewer than ``len(sequences)`` when an item is anything else (the
    caller then takes the faithful path)."""
    cdef Py_ssize_t i = 0, n = out.shape[0]
    cdef PyObject* p
    for s in sequences:
        if i >= n:
            return -1
        p = <PyObject*>s
        if PyList_CheckExact(p):
            out[i] = PyList_GET_SIZE(s)
        elif PyTuple_CheckExact(p):
            out[i] = PyTuple_GET_SIZE(s)
        elif type(s) is ndarray and s.ndim == 1:
            out[i] = s.shape[0]
        else:
            return i
        i += 1
    return i


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


def pad_fill(sequences, pad_t[:, ::1] x, Py_ssize_t maxlen, bint pre_pad,
             bint pre_trunc, ndarray, asarray, dtype):
    """Copy each list/tuple of Python numbers into its row of ``x`` (already filled
    with the padding value), Keras' truncation and padding rules, ``maxlen > 0``.
    Returns False at the first item it cannot store exactly as numpy would."""
    cdef Py_ssize_t r = 0, L, cnt, start, off, k
    cdef PyObject* p
    cdef PyObject* item
    cdef bint is_list
    cdef pad_t* row
    cdef pad_t[:] tv
    for s in sequences:
        p = <PyObject*>s
        is_list = PyList_CheckExact(p)
        if is_list:
            L = PyList_GET_SIZE(s)
        elif PyTuple_CheckExact(p):
            L = PyTuple_GET_SIZE(s)
        elif type(s) is ndarray and s.ndim == 1:
            # numpy rows: numpy's own slicing and cast, as in Keras.
            L = s.shape[0]
            if L:
                tv = asarray(s[-maxlen:] if pre_trunc else s[:maxlen], dtype=dtype)
                cnt = tv.shape[0]
                off = maxlen - cnt if pre_pad else 0
                for k in range(cnt):
                    x[r, off + k] = tv[k]
            r += 1
            continue
        else:
            return False
        if L == 0:
            r += 1
            continue
        cnt = L if L < maxlen else maxlen
        start = L - cnt if pre_trunc else 0
        off = maxlen - cnt if pre_pad else 0
        row = &x[r, off]
        for k in range(cnt):
            if is_list:
                item = PyList_GET_ITEM(s, start + k)
            else:
                item = PyTuple_GET_ITEM(s, start + k)
            if not _put(row + k, item):
                return False
        r += 1
    return True
