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
cimport cython
import gc as _gc
import numpy as _np
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memcmp, memcpy, memset

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    unsigned int PyUnicode_KIND(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    uint32_t PyUnicode_READ(unsigned int kind, const void* data, Py_ssize_t i)
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    bint PyUnicode_Check(PyObject* o)
    bint PyUnicode_CheckExact(PyObject* o)
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


# Documents the native scanner takes: exact str, and numpy's str_ (what iterating
# an array of strings gives), whose lower() is str.lower.  Other str subclasses may
# override lower/translate/split, so they take Keras' per-item path.
cdef object _NP_STR = _np.str_
cdef frozenset _NP_INTS = frozenset([_np.int8, _np.int16, _np.int32, _np.int64, _np.uint8,
                                     _np.uint16, _np.uint32, _np.uint64, _np.intc,
                                     _np.uintc, _np.longlong, _np.ulonglong])


cdef inline bint _plain_str(object o) noexcept:
    return PyUnicode_CheckExact(<PyObject*>o) or type(o) is _NP_STR


# Ctrl-C: the loops below run no bytecode, so Python's own signal check never runs in
# them.  They count work (a code unit scanned costs 1, a token or a Python object
# handled costs _ITEM) and call PyErr_CheckSignals every _POLL_EVERY units: about a
# millisecond of work, and a cost lost in the noise (one compare per unit, one call
# per million).  Nothing here holds state that an interrupt could leave half-made:
# every loop builds new objects, and the stateful tokenizer commits in Python.
cdef enum:
    _POLL_EVERY = 1 << 20
    _ITEM = 16
    _TOKENS_MASK = (1 << 16) - 1   # token loops inside one document: every 65536


cdef inline int _poll(Py_ssize_t* work, Py_ssize_t cost) except -1:
    work[0] += cost
    if work[0] >= _POLL_EVERY:
        work[0] = 0
        PyErr_CheckSignals()
    return 0


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


@cython.final
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
        if c < 128:
            return self.ascii[c]
        return self.is_wide_sep(c)

    cdef bint is_wide_sep(self, uint32_t c) noexcept:
        cdef Py_ssize_t lo, hi, mid
        lo = 0
        hi = self.nwide
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.wide[mid] < c:
                lo = mid + 1
            else:
                hi = mid
        return lo < self.nwide and self.wide[lo] == c


# str.lower() of a one-byte (Latin-1) string, character by character: CPython's
# lower() takes a slow per-character path as soon as a string holds one non-ASCII
# character.  Built from str.lower itself and used only if every Latin-1 character
# lower-cases to exactly one Latin-1 character (no context rule applies in Latin-1).
cdef uint8_t _LOWER1[256]
cdef bint _LOWER1_OK = True


cdef void _init_lower1():
    global _LOWER1_OK
    cdef int i
    for i in range(256):
        low = chr(i).lower()
        if len(low) != 1 or ord(low) > 255:
            _LOWER1_OK = False
            return
        _LOWER1[i] = <uint8_t>ord(low)


_init_lower1()


# The same for two-byte (BMP) strings, built on first use: every character whose
# lower() is one BMP character; 0xFFFF marks the others (multi-character results,
# the context-dependent capital sigma), for which the whole document goes through
# str.lower().
cdef uint16_t* _LOWER2 = NULL


cdef int _init_lower2() except -1:
    global _LOWER2
    cdef uint16_t* t = <uint16_t*>PyMem_Malloc(65536 * sizeof(uint16_t))
    cdef int i
    if t == NULL:
        raise MemoryError()
    for i in range(65536):
        low = chr(i).lower()
        if len(low) != 1 or ord(low) > 0xFFFE or i == 0x3A3:
            t[i] = 0xFFFF
        else:
            t[i] = <uint16_t>ord(low)
    _LOWER2 = t
    return 0


cdef struct Scratch:
    uint8_t* buf
    Py_ssize_t cap


cdef object _doc_view(object text, bint lower, Scratch* sc, unsigned int* kind,
                      const char** data, Py_ssize_t* n):
    """Code units of ``text.lower() if lower else text``; returns the object that
    owns them (keep it alive while ``data`` is used)."""
    cdef PyObject* p = <PyObject*>text
    cdef unsigned int k = PyUnicode_KIND(p)
    cdef Py_ssize_t m = PyUnicode_GET_LENGTH(p), i, i0, i1
    cdef const uint8_t* src
    cdef void* a
    if not lower:
        kind[0] = k
        data[0] = <const char*>PyUnicode_DATA(p)
        n[0] = m
        return text
    if k == 1 and _LOWER1_OK:
        if m > sc.cap:
            a = PyMem_Realloc(sc.buf, max(m, 2 * sc.cap, 4096))
            if a == NULL:
                raise MemoryError()
            sc.buf = <uint8_t*>a
            sc.cap = max(m, 2 * sc.cap, 4096)
        src = <const uint8_t*>PyUnicode_DATA(p)
        i0 = 0
        while i0 < m:
            # in slices, so that a Ctrl-C during a huge document is seen
            i1 = min(m, i0 + _POLL_EVERY)
            for i in range(i0, i1):
                sc.buf[i] = _LOWER1[src[i]]
            i0 = i1
            if i0 < m:
                PyErr_CheckSignals()
        kind[0] = 1
        data[0] = <const char*>sc.buf
        n[0] = m
        return text
    cdef const uint16_t* src2
    cdef uint16_t* dst2
    cdef uint16_t c
    if k == 2:
        if _LOWER2 == NULL:
            _init_lower2()
        if 2 * m > sc.cap:
            a = PyMem_Realloc(sc.buf, max(2 * m, 2 * sc.cap, 4096))
            if a == NULL:
                raise MemoryError()
            sc.buf = <uint8_t*>a
            sc.cap = max(2 * m, 2 * sc.cap, 4096)
        src2 = <const uint16_t*>PyUnicode_DATA(p)
        dst2 = <uint16_t*>sc.buf
        for i in range(m):
            c = _LOWER2[src2[i]]
            if c == 0xFFFF:
                break
            dst2[i] = c
            if (i & (_POLL_EVERY - 1)) == _POLL_EVERY - 1:
                PyErr_CheckSignals()
        else:
            kind[0] = 2
            data[0] = <const char*>sc.buf
            n[0] = m
            return text
    s = text.lower()
    p = <PyObject*>s
    kind[0] = PyUnicode_KIND(p)
    data[0] = <const char*>PyUnicode_DATA(p)
    n[0] = PyUnicode_GET_LENGTH(p)
    return s


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
    cdef Py_ssize_t j = 0, start, m = 0, poll_at = _POLL_EVERY
    cdef uint64_t h
    cdef uint32_t c
    while True:
        while j < n and sep.is_sep(d[j]):
            j += 1
        if j >= n:
            break
        if j >= poll_at:
            # one huge document: the caller's per-document poll comes too late
            poll_at = j + _POLL_EVERY
            PyErr_CheckSignals()
        start = j
        h = _FNV_OFFSET
        while j < n:
            c = d[j]
            if sep.is_sep(c):
                break
            h = (h ^ c) * _FNV_PRIME
            j += 1
        if m >= sp.cap:
            _spans_reserve(sp, m + 1)
        sp.start[m] = start
        sp.length[m] = j - start
        sp.hash[m] = _mix(h)
        m += 1
    sp.n = m
    return 0


cdef int _scan_data(unsigned int kind, const char* data, Py_ssize_t n, Splitter sep,
                    Spans* sp) except -1:
    if kind == 1:
        return _scan(<const uint8_t*>data, n, sep, sp)
    elif kind == 2:
        return _scan(<const uint16_t*>data, n, sep, sp)
    return _scan(<const uint32_t*>data, n, sep, sp)


cdef struct Slot:
    # One cache line per token: the probe, the comparison of short keys and the
    # payload (fit counts, or the encoding rule) touch nothing else.
    uint64_t h
    int64_t e            # entry number (order of first insertion); -1: empty
    int32_t len          # key length in code points
    int32_t kind         # key's PyUnicode kind (canonical, the narrowest)
    int64_t p0           # fit: count          encode: PyObject* to append / 0 drop
    int64_t p1           # fit: documents      encode: 1 once the rule is known
    int64_t p2           # fit: last document
    char inl[16]         # key code units when len * kind <= 16


cdef bint _same_units(unsigned int ka, const char* a, unsigned int kb, const char* b,
                      Py_ssize_t m) noexcept:
    cdef Py_ssize_t i
    if ka == kb:
        return memcmp(a, b, m * ka) == 0
    for i in range(m):
        if PyUnicode_READ(ka, a, i) != PyUnicode_READ(kb, b, i):
            return False
    return True


@cython.final
cdef class StrTable:
    """Token -> slot, keyed by code points.  Entries are numbered in order of first
    insertion; ``keys[e]`` is the ``str`` object of entry ``e``.  Other hashable
    tokens (from pre-tokenized lists) get out-of-table slots through a dict."""
    cdef Slot* slots
    cdef Py_ssize_t mask
    cdef Py_ssize_t n
    cdef list keys
    cdef dict others     # non-str token -> index into ext
    cdef Slot* ext
    cdef Py_ssize_t next_, ext_cap

    def __cinit__(self):
        cdef Py_ssize_t i
        self.keys = []
        self.others = {}
        self.mask = 1023
        self.slots = <Slot*>PyMem_Malloc((self.mask + 1) * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        for i in range(self.mask + 1):
            self.slots[i].e = -1
        self.n = 0
        self.ext = NULL
        self.next_ = 0
        self.ext_cap = 0

    def __dealloc__(self):
        PyMem_Free(self.slots)
        PyMem_Free(self.ext)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t newmask = 2 * self.mask + 1, i, k
        cdef Slot* ns = <Slot*>PyMem_Malloc((newmask + 1) * sizeof(Slot))
        if ns == NULL:
            raise MemoryError()
        for i in range(newmask + 1):
            ns[i].e = -1
        for i in range(self.mask + 1):
            if self.slots[i].e >= 0:
                k = <Py_ssize_t>(self.slots[i].h & newmask)
                while ns[k].e >= 0:
                    k = (k + 1) & newmask
                ns[k] = self.slots[i]
        PyMem_Free(self.slots)
        self.slots = ns
        self.mask = newmask
        return 0

    cdef Slot* _find(self, unsigned int kind, const char* data, Py_ssize_t m,
                     uint64_t h) except NULL:
        """Slot of the token with code units data[:m]; a fresh slot (e == -1,
        hash set) when it is not in the table yet."""
        cdef Py_ssize_t k
        cdef Slot* s
        cdef PyObject* key
        if 2 * (self.n + 1) > self.mask:
            self._grow()
        k = <Py_ssize_t>(h & self.mask)
        while True:
            s = &self.slots[k]
            if s.e < 0:
                s.h = h
                return s
            if s.h == h and s.len == m:
                if m * s.kind <= 16:
                    if _same_units(s.kind, s.inl, kind, data, m):
                        return s
                else:
                    key = <PyObject*>PyList_GET_ITEM(self.keys, s.e)
                    if _same_units(s.kind, <const char*>PyUnicode_DATA(key), kind, data, m):
                        return s
            k = (k + 1) & self.mask

    cdef void _fill(self, Slot* s, object key) noexcept:
        cdef PyObject* p = <PyObject*>key
        cdef unsigned int kk = PyUnicode_KIND(p)
        cdef Py_ssize_t m = PyUnicode_GET_LENGTH(p)
        s.e = self.n
        s.len = <int32_t>m
        s.kind = <int32_t>kk
        s.p0 = 0
        s.p1 = 0
        s.p2 = -1
        if m * kk <= 16:
            memcpy(s.inl, PyUnicode_DATA(p), m * kk)
        self.n += 1

    cdef Slot* span(self, unsigned int kind, const char* data, Py_ssize_t start,
                    Py_ssize_t m, uint64_t h) except NULL:
        """Slot of the token data[start:start+m]; creates it (and its str) if new."""
        cdef const char* d = data + start * kind
        cdef Slot* s = self._find(kind, d, m, h)
        if s.e < 0:
            key = PyUnicode_FromKindAndData(kind, d, m)
            self.keys.append(key)
            self._fill(s, key)
        return s

    cdef Slot* obj(self, object w) except NULL:
        """Slot of an arbitrary token object (Python equality for non-str)."""
        cdef PyObject* p = <PyObject*>w
        cdef Slot* s
        cdef void* a
        cdef Py_ssize_t x
        if not PyUnicode_Check(p):
            # The dict calls the token's __hash__/__eq__, which may run anything: take
            # the slot (index, capacity, pointer) only once the dict work is done.
            r = self.others.get(w)
            if r is not None:
                x = <Py_ssize_t>r
                if not 0 <= x < self.next_:
                    raise RuntimeError("token table changed during a token's __eq__")
                return &self.ext[x]
            x = self.next_
            self.others[w] = x
            if self.next_ != x:
                raise RuntimeError("token table changed during a token's __hash__")
            if self.next_ >= self.ext_cap:
                x = max(64, 2 * self.ext_cap)
                a = PyMem_Realloc(self.ext, x * sizeof(Slot))
                if a == NULL:
                    raise MemoryError()
                self.ext = <Slot*>a
                self.ext_cap = x
            s = &self.ext[self.next_]
            self.next_ += 1
            self.keys.append(w)
            s.e = self.n
            s.len = 0
            s.kind = 0
            s.p0 = 0
            s.p1 = 0
            s.p2 = -1
            self.n += 1
            return s
        s = self._find(PyUnicode_KIND(p), <const char*>PyUnicode_DATA(p),
                       PyUnicode_GET_LENGTH(p), _hash_str(p))
        if s.e < 0:
            self.keys.append(w)
            self._fill(s, w)
        return s

    cdef tuple payloads(self):
        """(p0 list, p1 list) in entry order."""
        cdef list a = [0] * self.n
        cdef list b = [0] * self.n
        cdef Py_ssize_t i
        for i in range(self.mask + 1):
            if self.slots[i].e >= 0:
                a[self.slots[i].e] = self.slots[i].p0
                b[self.slots[i].e] = self.slots[i].p1
        for i in range(self.next_):
            a[self.ext[i].e] = self.ext[i].p0
            b[self.ext[i].e] = self.ext[i].p1
        return a, b


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
    cdef Py_ssize_t i
    cdef Slot* e
    cdef int64_t doc = 0
    cdef object s
    cdef PyObject* p
    cdef unsigned int kind
    cdef const char* data
    cdef Py_ssize_t n
    cdef Scratch sc
    cdef Py_ssize_t work = 0
    sc.buf = NULL
    sc.cap = 0
    sp.start = NULL
    sp.length = NULL
    sp.hash = NULL
    sp.n = 0
    sp.cap = 0
    try:
        for text in texts:
            if sep is not None and _plain_str(text):
                # No Python code runs from here to the end of the document: the view
                # and the spans stay valid.
                s = _doc_view(text, lower, &sc, &kind, &data, &n)
                _scan_data(kind, data, n, sep, &sp)
                for i in range(sp.n):
                    if (i & _TOKENS_MASK) == _TOKENS_MASK:
                        PyErr_CheckSignals()   # a huge document
                    e = t.span(kind, data, sp.start[i], sp.length[i], sp.hash[i])
                    e.p0 += 1
                    if e.p2 != doc:
                        e.p2 = doc
                        e.p1 += 1
                _poll(&work, n + sp.n * _ITEM)
            else:
                seq = tokenize(text)
                for w in seq:
                    e = t.obj(w)
                    e.p0 += 1
                    _poll(&work, _ITEM)
                for w in seq:
                    e = t.obj(w)
                    if e.p2 != doc:
                        e.p2 = doc
                        e.p1 += 1
                    _poll(&work, _ITEM)
            doc += 1
            _poll(&work, _ITEM)
    finally:
        _spans_free(&sp)
        PyMem_Free(sc.buf)
    counts, docs = t.payloads()
    return doc, t.keys, counts, docs


cdef object _MISSING = object()


def count_updates(target, words, counts):
    """``{w: target[w] + c}`` (``c`` alone for a word ``target`` lacks) for the zero-
    free pairs of ``words`` / ``counts``, in order of first appearance; reads
    ``target`` only, so a caller can compute everything first and commit with
    ``target.update`` (new keys then append in Keras' order).  Equal tokens add up
    as Keras' successive ``+=`` do."""
    # Tuples: the loop calls __hash__/__eq__/__add__ of user objects, which must not be
    # able to shrink what is being indexed.
    cdef tuple tw = tuple(words)
    cdef tuple tc = tuple(counts)
    cdef Py_ssize_t i, n = len(tw), work = 0
    cdef dict out = {}
    if len(tc) != n:
        raise ValueError("count_updates: words and counts differ in length")
    for i in range(n):
        c = tc[i]
        if not c:
            continue
        w = tw[i]
        prev = out.get(w, _MISSING)
        if prev is _MISSING:
            prev = target.get(w)
        out[w] = c if prev is None else prev + c
        _poll(&work, _ITEM)
    return out


def ordered_copy(d, dict updates):
    """``type(d)(d)`` (an OrderedDict) with ``updates`` applied, built item by item so
    that Ctrl-C is seen meanwhile (OrderedDict insertions are slow: about a microsecond
    each on a busy machine)."""
    cdef Py_ssize_t work = 0
    new = type(d)()
    for k, v in d.items():
        new[k] = v
        _poll(&work, _ITEM)
    for k, v in updates.items():
        new[k] = v
        _poll(&work, _ITEM)
    return new


def merged_items(d, dict updates):
    """``(keys, values)`` lists of ``d`` with ``updates`` applied (new keys last, in
    their order), without copying ``d`` into a new dict."""
    cdef list keys = [], values = []
    cdef Py_ssize_t work = 0, hits = 0
    for k, v in d.items():
        u = updates.get(k, _MISSING)
        keys.append(k)
        if u is _MISSING:
            values.append(v)
        else:
            values.append(u)
            hits += 1
        _poll(&work, 4)
    if hits < len(updates):  # some keys are new
        for k, v in updates.items():
            if k not in d:
                keys.append(k)
                values.append(v)
            _poll(&work, 4)
    return keys, values


def index_doc_updates(word_docs, word_index):
    """``{word_index[w]: c for (w, c) of word_docs}`` (Keras' index_docs refresh);
    KeyError for a word without an index."""
    cdef dict out = {}
    cdef Py_ssize_t work = 0
    for w, c in list(word_docs.items()):
        out[word_index[w]] = c
        _poll(&work, _ITEM)
    return out


def count_sequences(sequences):
    """Per-id document frequencies of ``sequences`` (Keras ``fit_on_sequences``),
    in order of first appearance."""
    cdef dict local = {}
    cdef Py_ssize_t work = 0
    for seq in sequences:
        for i in set(seq):
            c = local.get(i)
            local[i] = 1 if c is None else c + 1
            _poll(&work, _ITEM)
        _poll(&work, _ITEM)
    return local


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
    cdef bint lower
    cdef Splitter sep
    cdef object tokenize
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
        self.sc.buf = NULL
        self.sc.cap = 0
        self.work = 0
        self.busy = False

    def __dealloc__(self):
        _spans_free(&self.sp)
        PyMem_Free(self.buf)
        PyMem_Free(self.sc.buf)

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
        cdef object s = _doc_view(text, self.lower, &self.sc, &kind, &data, &n)
        _scan_data(kind, data, n, self.sep, &self.sp)
        _poll(&self.work, n + self.sp.n * _ITEM)
        self._reserve(self.sp.n)
        for i in range(self.sp.n):
            if (i & _TOKENS_MASK) == _TOKENS_MASK:
                PyErr_CheckSignals()   # a huge document
            e = t.span(kind, data, self.sp.start[i], self.sp.length[i], self.sp.hash[i])
            if not e.p1:
                o = self.rule(<object>PyList_GET_ITEM(t.keys, e.e))
                if o is _DROP:
                    e.p0 = 0
                else:
                    self.outs.append(o)       # owns the reference the slot borrows
                    e.p0 = <int64_t><PyObject*>o
                e.p1 = 1
            if e.p0:
                self.buf[m] = <PyObject*>e.p0
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
            _poll(&self.work, _ITEM)
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
            _poll(&self.work, _ITEM)
            if self.sep is not None and _plain_str(text):
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
                if self.sep is not None and _plain_str(text):
                    result.append(self.encode_str(text))
                else:
                    result.append(self.encode_generic(text))
                _poll(&self.work, _ITEM)
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
        _poll(&work, _ITEM)
        for num in seq:
            _poll(&work, _ITEM)
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
    cdef object as_int, obj
    cdef int64_t* order2
    cdef bint ok = True, is_list
    cdef Py_ssize_t work = 0
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
            _poll(&work, _ITEM)
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
                _poll(&work, 4)
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
                _poll(&work, 4)
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
    cdef Py_ssize_t i = 0, n = out.shape[0], work = 0
    cdef PyObject* p
    for s in sequences:
        if i >= n:
            return -1
        _poll(&work, _ITEM)
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
             bint pre_pad, bint pre_trunc, ndarray, asarray, dtype):
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
        _poll(&work, _ITEM + maxlen)
        p = <PyObject*>s
        is_list = PyList_CheckExact(p)
        row = &x[r, 0]
        if is_list:
            L = PyList_GET_SIZE(s)
        elif PyTuple_CheckExact(p):
            L = PyTuple_GET_SIZE(s)
        elif type(s) is ndarray and s.ndim == 1:
            # numpy rows: numpy's own slicing and cast, as in Keras.
            L = s.shape[0]
            cnt = 0
            off = 0
            if L:
                tv = asarray(s[-maxlen:] if pre_trunc else s[:maxlen], dtype=dtype)
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
