# cython: language_level=3, boundscheck=False, wraparound=False
"""The Keras Tokenizer's scanner (``keras_preprocessing`` 1.1.2), shared by fitting
(``_textfit``) and encoding (``_textencode``).

Tokens of plain ``str`` documents are never materialized as Python strings unless
they are new: the document is scanned in place (``PyUnicode_DATA``), each token is
hashed over its code points and looked up in an open-addressing table whose keys
are the first ``str`` object seen for that token.  Only a new token costs a
substring, a Python hash and a dict operation.  Everything else (lists of tokens,
other str types, an ``analyzer``, a multi-character ``split``) takes Keras' own
per-item rule, :meth:`TokenRule.tokens`.
"""
cimport cython
import numpy as _np
from cpython.object cimport PyObject
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from fastembed._textbase cimport (
    FNV_OFFSET, POLL_EVERY, PyErr_CheckSignals, PyUnicode_CheckExact, PyUnicode_Check,
    PyUnicode_DATA, PyUnicode_FromKindAndData, PyUnicode_GET_LENGTH, PyUnicode_KIND,
    PyUnicode_READ, Spans, grow, mix64, spans_reserve, uchar_t)

# Texts longer than this are split piece by piece by text_to_word_sequence, so that
# Ctrl-C is seen between pieces (each piece's lower/translate/split is one
# uninterruptible C call of ~50 ms).
PIECE_CHARS = 1 << 22

cdef uint64_t _FNV_PRIME = 1099511628211ULL

# Documents the native scanner takes: exact str, and numpy's str_ (what iterating
# an array of strings gives), whose lower() is str.lower.  Other str subclasses may
# override lower/translate/split, so they take Keras' per-item path.
cdef object _NP_STR = _np.str_


cdef inline bint _plain_str(object o) noexcept:
    return PyUnicode_CheckExact(<PyObject*>o) or type(o) is _NP_STR


# ------------------------------------------------------------- Keras' item rule

def text_to_word_sequence(text, filters, lower, split, Py_ssize_t piece_chars=PIECE_CHARS):
    """Keras' ``text_to_word_sequence``: translate ``filters`` to ``split``, split,
    drop the empty pieces; a long text in pieces of about ``piece_chars``."""
    table = str.maketrans({c: split for c in filters})
    if (type(text) is not str or len(text) <= piece_chars
            or not isinstance(split, str) or len(split) != 1 or not split.isspace()):
        return _words_of(text, table, lower, split)
    cdef list words = []
    cdef Py_ssize_t start = 0, n = len(text), cut, end
    while start < n:
        # Cut just before an occurrence of `split` itself: it separates words whatever
        # surrounds it, and white space is neither cased nor case-ignorable, so str.lower
        # (whose final-sigma rule looks at the neighbours) lowers each piece as it would
        # the whole text.
        cut = text.find(split, start + piece_chars)
        end = n if cut < 0 else cut
        words.extend(_words_of(text[start:end], table, lower, split))
        start = end
        PyErr_CheckSignals()   # compiled code runs no eval loop that would check
    return words


cdef list _words_of(text, table, lower, split):
    if lower:
        text = text.lower()
    return list(filter(None, text.translate(table).split(split)))


@cython.final
cdef class TokenRule:
    """Keras' per-item rule for one Tokenizer state: a list is pre-tokenized (only
    lower-cased), ``char_level`` iterates characters, otherwise
    ``text_to_word_sequence`` (or the ``analyzer``).  ``sep`` is the native scanner's
    separator set when that reproduces the rule for plain strings (no analyzer, not
    char_level, a one-character ``split`` and usable ``filters``), else None."""

    def __cinit__(self, filters, lower, split, char_level, analyzer):
        self.lower = bool(lower)
        self.char_level = bool(char_level)
        self.filters = filters
        self.split = split
        self.analyzer = analyzer
        self.sep = None
        if char_level or analyzer is not None:
            return
        if type(split) is not str or len(split) != 1:
            return
        if not isinstance(filters, str) and iter(filters) is filters:
            return  # an iterator: Keras uses it up on the first text only
        try:
            table = str.maketrans({c: split for c in filters})
        except Exception:
            # Keras raises this per text; the per-item rule reproduces it.
            return
        self.sep = Splitter(list(table) + [ord(split)])

    cpdef object tokens(self, object item):
        if self.char_level or isinstance(item, list):
            if self.lower:
                if isinstance(item, list):
                    return [w.lower() for w in item]
                return item.lower()
            return item
        if self.analyzer is None:
            return text_to_word_sequence(item, self.filters, self.lower, self.split)
        return self.analyzer(item)

    cdef bint scans(self, object item) noexcept:
        """Whether ``item`` goes through the native scanner."""
        return self.sep is not None and _plain_str(item)


# -------------------------------------------------------------------- separators

@cython.final
cdef class Splitter:
    """The separator set of ``text_to_word_sequence`` for a one-character ``split``:
    every filter character and the split character itself.  With a one-character
    split, translate-then-split-then-drop-empties is exactly "maximal runs of
    non-separator characters"."""

    def __cinit__(self, ordinals):
        cdef list wide = sorted(set(int(o) for o in ordinals if int(o) >= 128))
        cdef Py_ssize_t i
        memset(self.ascii, 0, 128)
        for o in ordinals:
            if 0 <= o < 128:
                self.ascii[<int>o] = 1
        self.nwide = len(wide)
        self.wide = <uint32_t*>malloc(max(1, self.nwide) * sizeof(uint32_t))
        if self.wide == NULL:
            raise MemoryError()
        for i in range(self.nwide):
            self.wide[i] = wide[i]

    def __dealloc__(self):
        free(self.wide)

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


cdef inline bint _is_sep(Splitter sep, uint32_t c) noexcept:
    if c < 128:
        return sep.ascii[c]
    return sep.is_wide_sep(c)


# ---------------------------------------------------------------- lower-casing

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
    cdef uint16_t* t = <uint16_t*>malloc(65536 * sizeof(uint16_t))
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


cdef object doc_view(object text, bint lower, Scratch* sc, unsigned int* kind,
                     const char** data, Py_ssize_t* n):
    """Code units of ``text.lower() if lower else text``; returns the object that
    owns them (keep it alive while ``data`` is used)."""
    cdef PyObject* p = <PyObject*>text
    cdef unsigned int k = PyUnicode_KIND(p)
    cdef Py_ssize_t m = PyUnicode_GET_LENGTH(p), i, i0, i1
    cdef const uint8_t* src
    if not lower:
        kind[0] = k
        data[0] = <const char*>PyUnicode_DATA(p)
        n[0] = m
        return text
    if k == 1 and _LOWER1_OK:
        grow(<void**>&sc.buf, &sc.cap, m, 1)
        src = <const uint8_t*>PyUnicode_DATA(p)
        i0 = 0
        while i0 < m:
            # in slices, so that a Ctrl-C during a huge document is seen
            i1 = min(m, i0 + POLL_EVERY)
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
        grow(<void**>&sc.buf, &sc.cap, 2 * m, 1)
        src2 = <const uint16_t*>PyUnicode_DATA(p)
        dst2 = <uint16_t*>sc.buf
        for i in range(m):
            c = _LOWER2[src2[i]]
            if c == 0xFFFF:
                break
            dst2[i] = c
            if (i & (POLL_EVERY - 1)) == POLL_EVERY - 1:
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


# ---------------------------------------------------------------------- scanning

cdef int _scan(const uchar_t* d, Py_ssize_t n, Splitter sep, Spans* sp) except -1:
    cdef Py_ssize_t j = 0, start, m = 0, poll_at = POLL_EVERY
    cdef uint64_t h
    cdef uint32_t c
    while True:
        while j < n and _is_sep(sep, d[j]):
            j += 1
        if j >= n:
            break
        if j >= poll_at:
            # one huge document: the caller's per-document poll comes too late
            poll_at = j + POLL_EVERY
            PyErr_CheckSignals()
        start = j
        h = FNV_OFFSET
        while j < n:
            c = d[j]
            if _is_sep(sep, c):
                break
            h = (h ^ c) * _FNV_PRIME
            j += 1
        if m >= sp.cap:
            spans_reserve(sp, m + 1)
        sp.start[m] = start
        sp.length[m] = j - start
        sp.hash[m] = mix64(h)
        m += 1
    sp.n = m
    return 0


cdef int scan_data(unsigned int kind, const char* data, Py_ssize_t n, Splitter sep,
                   Spans* sp) except -1:
    """The tokens of code units ``data[:n]`` (of ``kind`` bytes each) into ``sp``."""
    if kind == 1:
        return _scan(<const uint8_t*>data, n, sep, sp)
    elif kind == 2:
        return _scan(<const uint16_t*>data, n, sep, sp)
    return _scan(<const uint32_t*>data, n, sep, sp)


# ------------------------------------------------------------------- token table

cdef uint64_t _hash_str(PyObject* w) noexcept:
    cdef unsigned int kind = PyUnicode_KIND(w)
    cdef const void* data = PyUnicode_DATA(w)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(w), i
    cdef uint64_t h = FNV_OFFSET
    for i in range(n):
        h = (h ^ PyUnicode_READ(kind, data, i)) * _FNV_PRIME
    return mix64(h)


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
    tokens (from pre-tokenized lists) get out-of-table slots through a dict.  A new
    slot's payload is zeros; the caller decides what it means (fit or encode)."""

    def __cinit__(self):
        cdef Py_ssize_t i
        self.keys = []
        self.others = {}
        self.mask = 1023
        self.slots = <Slot*>malloc((self.mask + 1) * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        for i in range(self.mask + 1):
            self.slots[i].e = -1
        self.n = 0
        self.ext = NULL
        self.next_ = 0
        self.ext_cap = 0

    def __dealloc__(self):
        free(self.slots)
        free(self.ext)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t newmask = 2 * self.mask + 1, i, k
        cdef Slot* ns = <Slot*>malloc((newmask + 1) * sizeof(Slot))
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
        free(self.slots)
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
                    key = PyList_GET_ITEM(self.keys, s.e)
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
        memset(&s.pay, 0, sizeof(Payload))
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
            grow(<void**>&self.ext, &self.ext_cap, self.next_ + 1, sizeof(Slot))
            s = &self.ext[self.next_]
            self.next_ += 1
            self.keys.append(w)
            s.e = self.n
            s.len = 0
            s.kind = 0
            memset(&s.pay, 0, sizeof(Payload))
            self.n += 1
            return s
        s = self._find(PyUnicode_KIND(p), <const char*>PyUnicode_DATA(p),
                       PyUnicode_GET_LENGTH(p), _hash_str(p))
        if s.e < 0:
            self.keys.append(w)
            self._fill(s, w)
        return s

    cdef tuple fit_counts(self):
        """(count list, document-count list) in entry order, for a table that fitting
        filled."""
        cdef list a = [0] * self.n
        cdef list b = [0] * self.n
        cdef Py_ssize_t i
        for i in range(self.mask + 1):
            if self.slots[i].e >= 0:
                a[self.slots[i].e] = self.slots[i].pay.fit.count
                b[self.slots[i].e] = self.slots[i].pay.fit.docs
        for i in range(self.next_):
            a[self.ext[i].e] = self.ext[i].pay.fit.count
            b[self.ext[i].e] = self.ext[i].pay.fit.docs
        return a, b
