# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Hot loops of ``fastembed.TextVectorization`` / ``fastembed.StringLookup``.

A document (a Python ``str``) is read in place, standardized the way Keras 3 +
TensorFlow do it (ASCII-only lower-casing, deletion of ASCII punctuation), split
(ASCII whitespace, or code points, or not at all) and joined into n-grams, all
into one scratch buffer of code points.  Each resulting token is hashed over its
code points and looked up in an open-addressing table whose keys live in an arena
of code points; no Python object is made per token.  The Python layer
(``fastembed.preprocessing``) owns the rules about shapes, special tokens and
output modes; this module only counts and looks up.
"""
cimport cython
import numpy as _np
from cpython.object cimport PyObject
# The C allocator, not PyMem_*: the count loops grow buffers without the GIL.
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.string cimport memcmp, memcpy, memset

from fastembed._textbase cimport (
    FNV_OFFSET, PyErr_CheckSignals, PyUnicode_Check, PyUnicode_DATA,
    PyUnicode_FromKindAndData, PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_READ,
    Spans, grow, grown, mix64, resize, spans_free, spans_reserve, uchar_t)

cdef extern from *:
    """
    /* FarmHash Fingerprint64 (farmhashna::Hash64), which TensorFlow's
       tf.strings.to_hash_bucket_fast uses to spread OOV tokens over
       num_oov_indices buckets.  Written from the published algorithm. */
    #include <stdint.h>
    #include <string.h>
    static const uint64_t fe_k0 = 0xc3a5c85c97cb3127ULL;
    static const uint64_t fe_k1 = 0xb492b66fbe98f273ULL;
    static const uint64_t fe_k2 = 0x9ae16a3b2f90404fULL;
    static inline uint64_t fe_f64(const uint8_t* p) { uint64_t r; memcpy(&r, p, 8); return r; }
    static inline uint32_t fe_f32(const uint8_t* p) { uint32_t r; memcpy(&r, p, 4); return r; }
    static inline uint64_t fe_rot(uint64_t v, int s) { return s == 0 ? v : ((v >> s) | (v << (64 - s))); }
    static inline uint64_t fe_smix(uint64_t v) { return v ^ (v >> 47); }
    static inline uint64_t fe_h16(uint64_t u, uint64_t v, uint64_t mul) {
        uint64_t a = (u ^ v) * mul; a ^= (a >> 47);
        uint64_t b = (v ^ a) * mul; b ^= (b >> 47); b *= mul; return b;
    }
    static uint64_t fe_len0to16(const uint8_t* s, size_t len) {
        if (len >= 8) {
            uint64_t mul = fe_k2 + len * 2;
            uint64_t a = fe_f64(s) + fe_k2;
            uint64_t b = fe_f64(s + len - 8);
            uint64_t c = fe_rot(b, 37) * mul + a;
            uint64_t d = (fe_rot(a, 25) + b) * mul;
            return fe_h16(c, d, mul);
        }
        if (len >= 4) {
            uint64_t mul = fe_k2 + len * 2;
            uint64_t a = fe_f32(s);
            return fe_h16(len + (a << 3), fe_f32(s + len - 4), mul);
        }
        if (len > 0) {
            uint8_t a = s[0], b = s[len >> 1], c = s[len - 1];
            uint32_t y = (uint32_t)a + ((uint32_t)b << 8);
            uint32_t z = (uint32_t)len + ((uint32_t)c << 2);
            return fe_smix(y * fe_k2 ^ z * fe_k0) * fe_k2;
        }
        return fe_k2;
    }
    static uint64_t fe_len17to32(const uint8_t* s, size_t len) {
        uint64_t mul = fe_k2 + len * 2;
        uint64_t a = fe_f64(s) * fe_k1, b = fe_f64(s + 8);
        uint64_t c = fe_f64(s + len - 8) * mul, d = fe_f64(s + len - 16) * fe_k2;
        return fe_h16(fe_rot(a + b, 43) + fe_rot(c, 30) + d, a + fe_rot(b + fe_k2, 18) + c, mul);
    }
    static inline void fe_weak(uint64_t w, uint64_t x, uint64_t y, uint64_t z,
                               uint64_t a, uint64_t b, uint64_t* o1, uint64_t* o2) {
        a += w; b = fe_rot(b + a + z, 21);
        uint64_t c = a; a += x; a += y; b += fe_rot(a, 44);
        *o1 = a + z; *o2 = b + c;
    }
    static uint64_t fe_len33to64(const uint8_t* s, size_t len) {
        uint64_t mul = fe_k2 + len * 2;
        uint64_t a = fe_f64(s) * fe_k2, b = fe_f64(s + 8);
        uint64_t c = fe_f64(s + len - 8) * mul, d = fe_f64(s + len - 16) * fe_k2;
        uint64_t y = fe_rot(a + b, 43) + fe_rot(c, 30) + d;
        uint64_t z = fe_h16(y, a + fe_rot(b + fe_k2, 18) + c, mul);
        uint64_t e = fe_f64(s + 16) * mul, f = fe_f64(s + 24);
        uint64_t g = (y + fe_f64(s + len - 32)) * mul;
        uint64_t h = (z + fe_f64(s + len - 24)) * mul;
        return fe_h16(fe_rot(e + f, 43) + fe_rot(g, 30) + h, e + fe_rot(f + a, 18) + g, mul);
    }
    static uint64_t fe_fingerprint64(const uint8_t* s, size_t len) {
        const uint64_t seed = 81;
        if (len <= 32) return len <= 16 ? fe_len0to16(s, len) : fe_len17to32(s, len);
        if (len <= 64) return fe_len33to64(s, len);
        uint64_t x = seed, y = seed * fe_k1 + 113, z = fe_smix(y * fe_k2 + 113) * fe_k2;
        uint64_t v1 = 0, v2 = 0, w1 = 0, w2 = 0;
        x = x * fe_k2 + fe_f64(s);
        const uint8_t* end = s + ((len - 1) / 64) * 64;
        const uint8_t* last64 = end + ((len - 1) & 63) - 63;
        do {
            x = fe_rot(x + y + v1 + fe_f64(s + 8), 37) * fe_k1;
            y = fe_rot(y + v2 + fe_f64(s + 48), 42) * fe_k1;
            x ^= w2;
            y += v1 + fe_f64(s + 40);
            z = fe_rot(z + w1, 33) * fe_k1;
            fe_weak(fe_f64(s), fe_f64(s + 8), fe_f64(s + 16), fe_f64(s + 24), v2 * fe_k1, x + w1, &v1, &v2);
            fe_weak(fe_f64(s + 32), fe_f64(s + 40), fe_f64(s + 48), fe_f64(s + 56), z + w2, y + fe_f64(s + 16), &w1, &w2);
            uint64_t t = z; z = x; x = t;
            s += 64;
        } while (s != end);
        uint64_t mul = fe_k1 + ((z & 0xff) << 1);
        s = last64;
        w1 += ((len - 1) & 63);
        v1 += w1;
        w1 += v1;
        x = fe_rot(x + y + v1 + fe_f64(s + 8), 37) * mul;
        y = fe_rot(y + v2 + fe_f64(s + 48), 42) * mul;
        x ^= w2 * 9;
        y += v1 * 9 + fe_f64(s + 40);
        z = fe_rot(z + w1, 33) * mul;
        fe_weak(fe_f64(s), fe_f64(s + 8), fe_f64(s + 16), fe_f64(s + 24), v2 * mul, x + w1, &v1, &v2);
        fe_weak(fe_f64(s + 32), fe_f64(s + 40), fe_f64(s + 48), fe_f64(s + 56), z + w2, y + fe_f64(s + 16), &w1, &w2);
        uint64_t t = z; z = x; x = t;
        return fe_h16(fe_h16(v1, w1, mul) + fe_smix(y) * fe_k0 + z,
                      fe_h16(v2, w2, mul) + x, mul);
    }
    """
    uint64_t fe_fingerprint64(const uint8_t* s, size_t n) noexcept nogil


# Documents between two PyErr_CheckSignals (Ctrl-C within well under a second).
cdef Py_ssize_t _POLL = 2048


cdef inline uint64_t _step(uint64_t h, uint32_t c) noexcept nogil:
    # Rotate-xor: two one-cycle operations per code point (a multiply per code point
    # made the scan latency-bound); mix64 at the end of a token does the spreading.
    return ((h << 11) | (h >> 53)) ^ c


cdef inline uint64_t _hash_cps(const uint32_t* s, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = FNV_OFFSET
    cdef Py_ssize_t i
    for i in range(n):
        h = _step(h, s[i])
    return mix64(h)


cdef inline bint _same_cps(const uint32_t* a, const uint32_t* b, Py_ssize_t n) noexcept nogil:
    # Tokens are short: an inline loop beats a call to memcmp.
    cdef Py_ssize_t i
    if n > 16:
        return memcmp(a, b, n * sizeof(uint32_t)) == 0
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True


# ASCII punctuation that Keras' standardize deletes: the regex class
# [!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\'] (",-\." is the range , - .).
cdef uint8_t _PUNCT[128]
cdef uint8_t _SPACE[128]


cdef void _init_tables():
    memset(_PUNCT, 0, 128)
    memset(_SPACE, 0, 128)
    for ch in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\'':
        _PUNCT[ord(ch)] = 1
    # tf.strings.split without sep splits on ASCII whitespace only (absl::ascii_isspace).
    for ch in ' \t\n\v\f\r':
        _SPACE[ord(ch)] = 1


_init_tables()


cdef struct Entry:
    # Half a cache line: what a count or a lookup touches.  Document counts (tf_idf
    # only) live in their own arrays.
    Py_ssize_t off
    Py_ssize_t length
    int64_t cnt
    int64_t value


cdef struct Slot:
    # 8 bytes: the top bits of the hash reject other keys without touching their
    # entry; the entry number (or -1 when free).
    uint32_t tag
    int32_t entry


cdef uint32_t* _code_points(str token) except NULL:
    """The code points of ``token`` in a new ``malloc`` buffer (the caller frees it)."""
    cdef Py_ssize_t L = len(token), i
    cdef uint32_t* buf = <uint32_t*>malloc(max(L, 1) * sizeof(uint32_t))
    if buf == NULL:
        raise MemoryError()
    cdef PyObject* p = <PyObject*>token
    cdef unsigned int k = PyUnicode_KIND(p)
    cdef void* d = PyUnicode_DATA(p)
    for i in range(L):
        buf[i] = PyUnicode_READ(k, d, i)
    return buf


@cython.final
cdef class Table:
    """Token (code-point string) -> entry number, in insertion order, with a count,
    a document count and the last document that counted it per entry."""
    cdef uint32_t* arena
    cdef Py_ssize_t alen, acap
    cdef Entry* ent
    cdef uint64_t* hashes
    cdef int64_t* df
    cdef int64_t* last
    cdef Py_ssize_t n, ecap
    cdef Slot* slots
    cdef Py_ssize_t nslots
    cdef public int64_t ndocs

    def __cinit__(self):
        self.nslots = 1024
        self.slots = <Slot*>malloc(self.nslots * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        memset(self.slots, 0xff, self.nslots * sizeof(Slot))

    def __dealloc__(self):
        free(self.arena)
        free(self.ent)
        free(self.hashes)
        free(self.df)
        free(self.last)
        free(self.slots)

    def __len__(self):
        return self.n

    cdef inline Py_ssize_t find(self, uint64_t h, const uint32_t* s, Py_ssize_t L) noexcept nogil:
        """Entry of the token, or ``-1 - free slot``."""
        cdef Py_ssize_t m = self.nslots - 1
        cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>m)
        cdef uint32_t tag = <uint32_t>(h >> 32)
        cdef Py_ssize_t e
        cdef Entry* en
        while True:
            e = self.slots[i].entry
            if e < 0:
                return -1 - i
            if self.slots[i].tag == tag:
                en = &self.ent[e]
                if en.length == L and _same_cps(self.arena + en.off, s, L):
                    return e
            i = (i + 1) & m

    cdef int _rehash(self) except -1 nogil:
        cdef Py_ssize_t ns = self.nslots * 2, e, i
        cdef Slot* sl = <Slot*>malloc(ns * sizeof(Slot))
        if sl == NULL:
            with gil:
                raise MemoryError()
        memset(sl, 0xff, ns * sizeof(Slot))
        for e in range(self.n):
            i = <Py_ssize_t>(self.hashes[e] & <uint64_t>(ns - 1))
            while sl[i].entry >= 0:
                i = (i + 1) & (ns - 1)
            sl[i].tag = <uint32_t>(self.hashes[e] >> 32)
            sl[i].entry = <int32_t>e
        free(self.slots)
        self.slots = sl
        self.nslots = ns
        return 0

    cdef Py_ssize_t add(self, uint64_t h, const uint32_t* s, Py_ssize_t L) except -1 nogil:
        """Entry of the token, inserted (counts 0) if new."""
        cdef Py_ssize_t r = self.find(h, s, L), e, cap
        if r >= 0:
            return r
        if self.n >= 0x7FFFFFFE:
            with gil:
                raise MemoryError("more than 2**31 distinct tokens")
        if 2 * (self.n + 1) > self.nslots:
            self._rehash()
            r = self.find(h, s, L)
        e = self.n
        if e >= self.ecap:
            cap = self.ecap
            cap = grown(self.ecap, e + 1)
            resize(<void**>&self.ent, cap, sizeof(Entry))
            resize(<void**>&self.hashes, cap, sizeof(uint64_t))
            resize(<void**>&self.df, cap, sizeof(int64_t))
            resize(<void**>&self.last, cap, sizeof(int64_t))
            self.ecap = cap
        grow(<void**>&self.arena, &self.acap, self.alen + L, sizeof(uint32_t))
        memcpy(self.arena + self.alen, s, L * sizeof(uint32_t))
        cdef Entry* en = &self.ent[e]
        en.off = self.alen
        en.length = L
        en.cnt = 0
        en.value = e
        self.hashes[e] = h
        self.df[e] = 0
        self.last[e] = -1
        self.alen += L
        self.slots[-1 - r].tag = <uint32_t>(h >> 32)
        self.slots[-1 - r].entry = <int32_t>e
        self.n = e + 1
        return e

    # -- Python-level helpers (per vocabulary entry, not per token of a text) --
    def add_str(self, str token):
        """Insert ``token`` (if new); return its entry number."""
        cdef Py_ssize_t L = len(token)
        cdef uint32_t* buf = _code_points(token)
        try:
            return self.add(_hash_cps(buf, L), buf, L)
        finally:
            free(buf)

    def get(self, str token):
        """Entry number of ``token``, or -1."""
        cdef Py_ssize_t L = len(token), r
        cdef uint32_t* buf = _code_points(token)
        try:
            r = self.find(_hash_cps(buf, L), buf, L)
            return r if r >= 0 else -1
        finally:
            free(buf)

    def token(self, Py_ssize_t e):
        if not 0 <= e < self.n:
            raise IndexError(e)
        return PyUnicode_FromKindAndData(4, self.arena + self.ent[e].off, self.ent[e].length)

    def tokens(self, entries):
        """The tokens of the given entry numbers, as a list of str."""
        cdef Py_ssize_t e
        out = []
        for e in entries:
            out.append(self.token(e))
        return out

    def counts(self):
        """(count, document count) per entry, as int64 arrays."""
        c = _np.empty(self.n, dtype=_np.int64)
        d = _np.empty(self.n, dtype=_np.int64)
        cdef int64_t[::1] cv = c
        cdef int64_t[::1] dv = d
        cdef Py_ssize_t e
        for e in range(self.n):
            cv[e] = self.ent[e].cnt
            dv[e] = self.df[e]
        return c, d

    def set_value(self, Py_ssize_t e, int64_t v):
        if not 0 <= e < self.n:
            raise IndexError(e)
        self.ent[e].value = v


# What the scanner does with an ASCII character (per Scanner options).
cdef enum:
    KEEP = 0
    DROP = 1
    BREAK = 2


@cython.final
cdef class Scanner:
    """Standardize + split + n-grams of one document into ``cps``; the items
    (tokens or n-grams, in Keras' order) are spans of ``cps`` with hashes."""
    cdef bint lower, strip
    cdef int split          # 0: none, 1: ASCII whitespace, 2: code points
    cdef uint8_t act[128]   # KEEP / DROP (stripped punctuation) / BREAK (whitespace)
    cdef uint32_t low[128]  # ASCII lower-casing, or identity
    cdef Py_ssize_t* widths
    cdef Py_ssize_t nwidths
    cdef uint32_t* cps
    cdef Py_ssize_t ncps, ccap
    cdef Spans toks         # the tokens, in cps
    cdef Spans items        # the n-grams, in cps (when ngrams are asked for)
    cdef uint8_t* u8
    cdef Py_ssize_t u8cap

    def __cinit__(self, bint lower, bint strip, int split, ngrams):
        cdef int c
        self.lower = lower
        self.strip = strip
        self.split = split
        for c in range(128):
            self.low[c] = c + 32 if (lower and 65 <= c <= 90) else c
            self.act[c] = KEEP
            if strip and _PUNCT[c]:
                self.act[c] = DROP
            elif split == 1 and _SPACE[c]:
                self.act[c] = BREAK
        ws = list(ngrams) if ngrams is not None else []
        self.nwidths = len(ws)
        self.widths = <Py_ssize_t*>malloc(max(1, self.nwidths) * sizeof(Py_ssize_t))
        if self.widths == NULL:
            raise MemoryError()
        for i, w in enumerate(ws):
            self.widths[i] = w

    def __dealloc__(self):
        free(self.widths)
        free(self.cps)
        spans_free(&self.toks)
        spans_free(&self.items)
        free(self.u8)

    cdef inline int _tok(self, Py_ssize_t off, Py_ssize_t L) except -1 nogil:
        spans_reserve(&self.toks, self.toks.n + 1)
        self.toks.start[self.toks.n] = off
        self.toks.length[self.toks.n] = L
        self.toks.hash[self.toks.n] = _hash_cps(self.cps + off, L)
        self.toks.n += 1
        return 0

    cdef inline int _item(self, Py_ssize_t off, Py_ssize_t L, uint64_t h) except -1 nogil:
        spans_reserve(&self.items, self.items.n + 1)
        self.items.start[self.items.n] = off
        self.items.length[self.items.n] = L
        self.items.hash[self.items.n] = h
        self.items.n += 1
        return 0

    cdef int scan_text(self, PyObject* doc) except -1 nogil:
        """Standardize and split one str into tokens (spans of ``cps``)."""
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(doc)
        cdef unsigned int kind = PyUnicode_KIND(doc)
        cdef const void* data = PyUnicode_DATA(doc)
        grow(<void**>&self.cps, &self.ccap, n + 1, sizeof(uint32_t))
        spans_reserve(&self.toks, n + 1)
        if kind == 1:
            _scan_units[uint8_t](self, <const uint8_t*>data, n)
        elif kind == 2:
            _scan_units[uint16_t](self, <const uint16_t*>data, n)
        else:
            _scan_units[uint32_t](self, <const uint32_t*>data, n)
        return 0

    cdef int scan_tokens(self, list toks) except -1:
        """Pre-split tokens, taken as they are."""
        cdef Py_ssize_t total = 0, i, L, j
        cdef PyObject* p
        cdef unsigned int kind
        cdef const void* data
        self.ncps = 0
        self.toks.n = 0
        for t in toks:
            if not PyUnicode_Check(<PyObject*>t):
                raise TypeError(f"split must return strings; got an item of type {type(t).__name__}")
            total += PyUnicode_GET_LENGTH(<PyObject*>t)
        grow(<void**>&self.cps, &self.ccap, total + 1, sizeof(uint32_t))
        for t in toks:
            p = <PyObject*>t
            L = PyUnicode_GET_LENGTH(p)
            kind = PyUnicode_KIND(p)
            data = PyUnicode_DATA(p)
            for j in range(L):
                self.cps[self.ncps + j] = PyUnicode_READ(kind, data, j)
            self._tok(self.ncps, L)
            self.ncps += L
        return 0

    cdef int make_items(self) except -1 nogil:
        """Tokens, or their n-grams (widths in the given order, tokens joined by
        one space, none when a document is shorter than the width)."""
        cdef Py_ssize_t k, w, i, j, L, off, base
        self.items.n = 0
        if self.nwidths == 0:
            return 0   # the items are the tokens (see item_* below)
        for k in range(self.nwidths):
            w = self.widths[k]
            if w <= 0:
                continue
            for i in range(self.toks.n - w + 1):
                if w == 1:
                    self._item(self.toks.start[i], self.toks.length[i], self.toks.hash[i])
                    continue
                L = w - 1
                for j in range(i, i + w):
                    L += self.toks.length[j]
                base = self.ncps
                grow(<void**>&self.cps, &self.ccap, base + L, sizeof(uint32_t))
                off = base
                for j in range(i, i + w):
                    if j > i:
                        self.cps[off] = 32
                        off += 1
                    memcpy(self.cps + off, self.cps + self.toks.start[j],
                           self.toks.length[j] * sizeof(uint32_t))
                    off += self.toks.length[j]
                self.ncps = off
                self._item(base, L, _hash_cps(self.cps + base, L))
        return 0

    cdef uint64_t bucket_hash(self, Py_ssize_t item) except? 0:
        """FarmHash Fingerprint64 of the item's UTF-8 bytes."""
        cdef Py_ssize_t L = self.item_len()[item], i, m = 0
        cdef const uint32_t* s = self.cps + self.item_off()[item]
        cdef uint32_t c
        grow(<void**>&self.u8, &self.u8cap, 4 * L + 1, 1)
        for i in range(L):
            c = s[i]
            if c < 0x80:
                self.u8[m] = <uint8_t>c
                m += 1
            elif c < 0x800:
                self.u8[m] = <uint8_t>(0xC0 | (c >> 6))
                self.u8[m + 1] = <uint8_t>(0x80 | (c & 0x3F))
                m += 2
            elif c < 0x10000:
                self.u8[m] = <uint8_t>(0xE0 | (c >> 12))
                self.u8[m + 1] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
                self.u8[m + 2] = <uint8_t>(0x80 | (c & 0x3F))
                m += 3
            else:
                self.u8[m] = <uint8_t>(0xF0 | (c >> 18))
                self.u8[m + 1] = <uint8_t>(0x80 | ((c >> 12) & 0x3F))
                self.u8[m + 2] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
                self.u8[m + 3] = <uint8_t>(0x80 | (c & 0x3F))
                m += 4
        return fe_fingerprint64(self.u8, m)

    cdef inline Py_ssize_t n_items(self) noexcept nogil:
        return self.items.n if self.nwidths else self.toks.n

    cdef inline Py_ssize_t* item_off(self) noexcept nogil:
        return self.items.start if self.nwidths else self.toks.start

    cdef inline Py_ssize_t* item_len(self) noexcept nogil:
        return self.items.length if self.nwidths else self.toks.length

    cdef inline uint64_t* item_hash(self) noexcept nogil:
        return self.items.hash if self.nwidths else self.toks.hash

    cdef int scan(self, object doc, bint pretok) except -1:
        if pretok:
            if type(doc) is not list:
                raise TypeError(f"expected a list of str tokens, got {type(doc).__name__}")
            self.scan_tokens(<list>doc)
        else:
            if not PyUnicode_Check(<PyObject*>doc):
                raise TypeError(f"expected str, got {type(doc).__name__}: {doc!r:.80}")
            self.scan_text(<PyObject*>doc)
        return self.make_items()

    def tokenize(self, docs, bint pretok=False):
        """The items of each document as lists of str (for tests and debugging)."""
        out = []
        cdef Py_ssize_t i
        for d in docs:
            self.scan(d, pretok)
            out.append([PyUnicode_FromKindAndData(4, self.cps + self.item_off()[i],
                                                  self.item_len()[i])
                        for i in range(self.n_items())])
        return out


cdef void _scan_units(Scanner self, const uchar_t* d, Py_ssize_t n) noexcept nogil:
    # Buffers hold n + 1 code points and tokens (reserved by the caller), so the
    # loop does no checks; counters live in locals, written back at the end.
    cdef uint32_t* out = self.cps
    cdef Py_ssize_t* toff = self.toks.start
    cdef Py_ssize_t* tlen = self.toks.length
    cdef uint64_t* th = self.toks.hash
    cdef const uint8_t* act = self.act
    cdef const uint32_t* low = self.low
    cdef int split = self.split
    cdef Py_ssize_t i, m = 0, start = 0, nt = 0
    cdef uint64_t h = FNV_OFFSET
    cdef uint32_t c
    cdef uint8_t a
    for i in range(n):
        c = d[i]
        if c < 128:
            a = act[c]
            if a != KEEP:
                if a == BREAK:
                    if m > start:
                        toff[nt] = start
                        tlen[nt] = m - start
                        th[nt] = mix64(h)
                        nt += 1
                    start = m
                    h = FNV_OFFSET
                continue
            c = low[c]
        out[m] = c
        m += 1
        if split == 2:
            toff[nt] = m - 1
            tlen[nt] = 1
            th[nt] = mix64(_step(FNV_OFFSET, c))
            nt += 1
        else:
            h = _step(h, c)
    if split == 1:
        if m > start:
            toff[nt] = start
            tlen[nt] = m - start
            th[nt] = mix64(h)
            nt += 1
    elif split == 0:
        toff[nt] = 0     # the whole (possibly empty) string is one token
        tlen[nt] = m
        th[nt] = mix64(h)
        nt += 1
    self.ncps = m
    self.toks.n = nt


def fingerprint64(bytes b):
    """FarmHash Fingerprint64 of ``b`` (TensorFlow's ``to_hash_bucket_fast``)."""
    return fe_fingerprint64(<const uint8_t*><char*>b, len(b))


cdef inline int _count_items(Scanner sc, Table table, int64_t docno,
                             bint want_df) except -1 nogil:
    """Adds the items of the document ``sc`` scanned last (number ``docno``) to
    ``table``: the count, and the document count when ``want_df``."""
    cdef Py_ssize_t i, e
    cdef Py_ssize_t* io = sc.item_off()
    cdef Py_ssize_t* il = sc.item_len()
    cdef uint64_t* ih = sc.item_hash()
    for i in range(sc.n_items()):
        e = table.add(ih[i], sc.cps + io[i], il[i])
        table.ent[e].cnt += 1
        if want_df and table.last[e] != docno:
            table.last[e] = docno
            table.df[e] += 1
    return 0


cdef int _count_range(Scanner sc, Table table, PyObject** refs, Py_ssize_t a,
                      Py_ssize_t b, int64_t docno0, bint want_df) except -1 nogil:
    """count_docs over plain str documents refs[a:b], without the GIL."""
    cdef Py_ssize_t d
    for d in range(a, b):
        sc.scan_text(refs[d])
        sc.make_items()
        _count_items(sc, table, docno0 + d, want_df)
    return 0


@cython.final
cdef class _CountJob:
    """One thread's share of a parallel count: its own scanner and table."""
    cdef Scanner sc
    cdef Table table
    cdef PyObject** refs
    cdef Py_ssize_t a, b
    cdef int64_t docno0
    cdef bint want_df

    def run(self):
        with nogil:
            _count_range(self.sc, self.table, self.refs, self.a, self.b, self.docno0,
                         self.want_df)


cdef int _merge(Table into, Table src) except -1:
    cdef Py_ssize_t e, t
    for e in range(src.n):
        t = into.add(src.hashes[e], src.arena + src.ent[e].off, src.ent[e].length)
        into.ent[t].cnt += src.ent[e].cnt
        into.df[t] += src.df[e]
    return 0


def merge_tables(Table into, Table src):
    """Add the counts and document counts of ``src`` into ``into`` (not ``ndocs``)."""
    _merge(into, src)


def count_docs_parallel(list tables, list scanners, list docs, bint want_df):
    """count_docs for a list of exact ``str`` documents on ``len(tables)`` threads:
    thread k counts a contiguous share (by characters) into ``tables[k]`` with
    ``scanners[k]``, without the GIL.  The caller keeps the tables over its batches
    and merges them at the end (:func:`merge_tables`); ``tables[0].ndocs`` counts the
    documents, which are numbered globally so that document counts stay exact."""
    import threading
    cdef int nthreads = len(tables)
    if nthreads < 1 or len(scanners) < nthreads:
        raise ValueError("need one table and one scanner per thread")
    cdef Table first = tables[0]
    cdef tuple keep = tuple(docs)   # holds the documents while the GIL is released
    cdef Py_ssize_t nd = len(keep), d, k, total = 0, acc, start
    cdef PyObject** refs = <PyObject**>malloc(max(nd, 1) * sizeof(PyObject*))
    if refs == NULL:
        raise MemoryError()
    cdef _CountJob job
    if nd == 0:
        free(refs)
        return 0
    try:
        for d in range(nd):
            if type(keep[d]) is not str:
                raise TypeError(f"expected str, got {type(keep[d]).__name__}")
            refs[d] = <PyObject*>keep[d]
            total += PyUnicode_GET_LENGTH(refs[d]) + 16
        jobs = []
        start = 0
        acc = 0
        k = 1
        for d in range(nd):
            acc += PyUnicode_GET_LENGTH(refs[d]) + 16
            if acc * nthreads >= total * k or d == nd - 1:
                job = _CountJob()
                # Scanners are private to the caller's adapt: the layer's own one may
                # be used by another Python thread while these run without the GIL.
                job.sc = scanners[len(jobs)]
                job.table = tables[len(jobs)]
                job.refs = refs
                job.a = start
                job.b = d + 1
                job.docno0 = first.ndocs
                job.want_df = want_df
                jobs.append(job)
                start = d + 1
                k += 1
        errors = []

        def work(j):
            try:
                j.run()
            except BaseException as ex:  # re-raised in the calling thread
                errors.append(ex)

        threads = [threading.Thread(target=work, args=(j,)) for j in jobs[1:]]
        for t in threads:
            t.start()
        interrupted = False
        try:
            work(jobs[0])
        finally:
            # The workers read `refs` and the documents: they must be done before
            # those are freed, even when Ctrl-C interrupts a join.
            for t in threads:
                while True:
                    try:
                        t.join()
                        break
                    except KeyboardInterrupt:
                        interrupted = True
        if interrupted:
            raise KeyboardInterrupt
        if errors:
            raise errors[0]
        first.ndocs += nd
        return nd
    finally:
        free(refs)


def count_docs(Scanner sc, Table table, list docs, bint pretok, bint want_df):
    """Adds every item of every document to ``table`` (count, and document count
    when ``want_df``); ``table.ndocs`` grows by ``len(docs)``."""
    cdef Py_ssize_t d, nd = len(docs)
    for d in range(nd):
        if d % _POLL == _POLL - 1:
            PyErr_CheckSignals()
        sc.scan(docs[d], pretok)
        _count_items(sc, table, table.ndocs + d, want_df)
    table.ndocs += nd
    return nd


def all_str(list docs):
    """True when every item is an exact ``str`` (the common case, checked fast)."""
    cdef Py_ssize_t i
    for i in range(len(docs)):
        if type(docs[i]) is not str:
            return False
    return True


def lookup_docs(Scanner sc, Table vocab, list docs, bint pretok, int64_t oov_start,
                int64_t num_oov):
    """Ids of the items of each document: ``(ids, offsets)`` with the ids of
    document ``d`` in ``ids[offsets[d]:offsets[d + 1]]``.  A token found in
    ``vocab`` takes its entry's value; an unknown one ``oov_start`` (one OOV
    index), ``oov_start + fingerprint64(utf-8) % num_oov`` (several), or, with
    no OOV index, stops the call: ``(None, (document, token))``."""
    cdef Py_ssize_t nd = len(docs), d, i, e, total = 0, cap = 0
    offsets = _np.empty(nd + 1, dtype=_np.int64)
    cdef int64_t[::1] off = offsets
    cdef int64_t* ids = NULL
    cdef int64_t v
    cdef Py_ssize_t r, ni
    cdef Py_ssize_t* io
    cdef Py_ssize_t* il
    cdef uint64_t* ih
    try:
        off[0] = 0
        for d in range(nd):
            if d % _POLL == _POLL - 1:
                PyErr_CheckSignals()
            sc.scan(docs[d], pretok)
            ni = sc.n_items()
            grow(<void**>&ids, &cap, total + ni, sizeof(int64_t))
            io = sc.item_off()
            il = sc.item_len()
            ih = sc.item_hash()
            for i in range(ni):
                r = vocab.find(ih[i], sc.cps + io[i], il[i])
                if r >= 0:
                    v = vocab.ent[r].value
                elif num_oov == 1:
                    v = oov_start
                elif num_oov > 1:
                    v = oov_start + <int64_t>(sc.bucket_hash(i) % <uint64_t>num_oov)
                else:
                    return None, (d, PyUnicode_FromKindAndData(4, sc.cps + io[i], il[i]))
                ids[total] = v
                total += 1
            off[d + 1] = total
        out = _np.empty(total, dtype=_np.int64)
        if total:
            memcpy(<void*><size_t>out.ctypes.data, ids, total * sizeof(int64_t))
        return out, offsets
    finally:
        free(ids)


def fill_padded(const int64_t[::1] ids, const int64_t[::1] offsets, int64_t[:, ::1] out):
    """Row ``d`` of ``out`` gets the first ``out.shape[1]`` ids of document ``d``
    (the rest of the row is left as it is: zeros)."""
    cdef Py_ssize_t nd = out.shape[0], w = out.shape[1], d, j, a, L
    with nogil:
        for d in range(nd):
            a = offsets[d]
            L = offsets[d + 1] - a
            if L > w:
                L = w
            for j in range(L):
                out[d, j] = ids[a + j]


def fill_counts(const int64_t[::1] ids, const int64_t[::1] offsets, int64_t[:, ::1] out,
                bint binary):
    """Row ``d`` of ``out`` counts (or flags) the ids of document ``d``; ids
    outside ``[0, out.shape[1])`` (the mask) are skipped."""
    cdef Py_ssize_t nd = out.shape[0], w = out.shape[1], d, j
    cdef int64_t v
    with nogil:
        for d in range(nd):
            for j in range(offsets[d], offsets[d + 1]):
                v = ids[j]
                if 0 <= v < w:
                    if binary:
                        out[d, v] = 1
                    else:
                        out[d, v] += 1


def fill_tfidf(const int64_t[::1] ids, const int64_t[::1] offsets, const float[::1] idf,
               float[:, ::1] out):
    """Row ``d`` of ``out`` (zeros) gets ``float32(count) * idf[id]`` for each id of
    document ``d`` (Keras casts the count to float32, then multiplies); ids outside
    ``[0, out.shape[1])`` (the mask) are skipped."""
    cdef Py_ssize_t nd = out.shape[0], w = out.shape[1], d, j
    cdef int64_t v
    if idf.shape[0] < w:
        raise ValueError("idf weights shorter than the output width")
    # Counts of the current row only; each is reset after it is written out, so the
    # scratch costs O(tokens) per row, not O(width).
    cdef int64_t* cnt = <int64_t*>malloc(max(w, 1) * sizeof(int64_t))
    if cnt == NULL:
        raise MemoryError()
    memset(cnt, 0, max(w, 1) * sizeof(int64_t))
    with nogil:
        for d in range(nd):
            for j in range(offsets[d], offsets[d + 1]):
                v = ids[j]
                if 0 <= v < w:
                    cnt[v] += 1
            for j in range(offsets[d], offsets[d + 1]):
                v = ids[j]
                if 0 <= v < w and cnt[v]:
                    out[d, v] = (<float>cnt[v]) * idf[v]
                    cnt[v] = 0
    free(cnt)
