# cython: language_level=3
"""The Keras Tokenizer's scanner, shared by fitting (``_textfit``) and encoding
(``_textencode``): the separators of ``text_to_word_sequence``, the lower-cased view
of a document, the token spans of one scan, and the token table."""
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int32_t, int64_t

from fastembed._textbase cimport Spans


cdef class Splitter:
    cdef uint8_t ascii[128]
    cdef uint32_t* wide      # sorted non-ASCII separators
    cdef Py_ssize_t nwide
    cdef bint is_wide_sep(self, uint32_t c) noexcept


cdef class TokenRule:
    # Keras' per-item tokenization for one Tokenizer state, and the native scanner's
    # separators when the scanner reproduces it (``sep`` None otherwise).
    cdef readonly bint lower
    cdef readonly Splitter sep
    cdef readonly bint char_level
    cdef object filters
    cdef object split
    cdef object analyzer
    cpdef object tokens(self, object item)
    cdef bint scans(self, object item) noexcept


# A reusable buffer for lower-cased documents.
cdef struct Scratch:
    uint8_t* buf
    Py_ssize_t cap

# What fitting keeps per token.
cdef struct FitCounts:
    int64_t count        # occurrences (word_counts)
    int64_t docs         # documents that hold it (word_docs)
    int64_t last_doc     # 1 + number of the last document counted in ``docs``; 0: none

# What encoding keeps per token: Keras' rule for it, computed once.
cdef struct EncodeRule:
    PyObject* out        # the id to append (a reference Encoder owns); NULL: dropped
    bint known           # ``out`` holds the rule's result

cdef union Payload:
    FitCounts fit
    EncodeRule enc

cdef struct Slot:
    # One cache line per token: the probe, the comparison of short keys and the
    # payload touch nothing else.
    uint64_t h
    int64_t e            # entry number (order of first insertion); -1: empty
    int32_t len          # key length in code points
    int32_t kind         # key's PyUnicode kind (canonical, the narrowest)
    Payload pay          # zeros when the entry is made; one table serves one job
    char inl[16]         # key code units when len * kind <= 16


cdef class StrTable:
    cdef Slot* slots
    cdef Py_ssize_t mask
    cdef Py_ssize_t n
    cdef list keys       # keys[e]: the token object of entry e
    cdef dict others     # non-str token -> index into ext
    cdef Slot* ext
    cdef Py_ssize_t next_, ext_cap
    cdef int _grow(self) except -1
    cdef Slot* _find(self, unsigned int kind, const char* data, Py_ssize_t m,
                     uint64_t h) except NULL
    cdef void _fill(self, Slot* s, object key) noexcept
    cdef Slot* span(self, unsigned int kind, const char* data, Py_ssize_t start,
                    Py_ssize_t m, uint64_t h) except NULL
    cdef Slot* obj(self, object w) except NULL
    cdef tuple fit_counts(self)


cdef object doc_view(object text, bint lower, Scratch* sc, unsigned int* kind,
                     const char** data, Py_ssize_t* n)
# Spans are offsets in code units of the scanned data.
cdef int scan_data(unsigned int kind, const char* data, Py_ssize_t n, Splitter sep,
                   Spans* sp) except -1
