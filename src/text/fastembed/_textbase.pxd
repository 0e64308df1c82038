# cython: language_level=3
"""What every text module shares, as inline code compiled into each of them (this
file has no module of its own, so cimporting it imports nothing at run time):
reading ``str`` objects in place, hash mixing, Ctrl-C polling, buffer growth."""
from cpython.object cimport PyObject
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o) nogil
    unsigned int PyUnicode_KIND(PyObject* o) nogil
    void* PyUnicode_DATA(PyObject* o) nogil
    uint32_t PyUnicode_READ(unsigned int kind, const void* data, Py_ssize_t i) nogil
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    bint PyUnicode_Check(PyObject* o)
    bint PyUnicode_CheckExact(PyObject* o)

# The code units of a str: one, two or four bytes each (PyUnicode_KIND).
ctypedef fused uchar_t:
    uint8_t
    uint16_t
    uint32_t

cdef enum:
    # Ctrl-C: the loops run no bytecode, so Python's own signal check never runs in
    # them.  They count work (a code unit scanned costs 1, a token or a Python object
    # handled costs ITEM_COST) and call PyErr_CheckSignals every POLL_EVERY units:
    # about a millisecond of work, one compare per unit and one call per million.
    POLL_EVERY = 1 << 20
    ITEM_COST = 16
    # Token loops inside one document check every 65536 tokens.
    TOKENS_MASK = (1 << 16) - 1

cdef extern from *:
    """
    /* FNV-1a's starting value; each module steps its own per-code-point hash from it. */
    #define FE_FNV_OFFSET 14695981039346656037ULL
    """
    const uint64_t FNV_OFFSET "FE_FNV_OFFSET"


cdef inline int poll(Py_ssize_t* work, Py_ssize_t cost) except -1:
    work[0] += cost
    if work[0] >= POLL_EVERY:
        work[0] = 0
        PyErr_CheckSignals()
    return 0


cdef inline uint64_t mix64(uint64_t h) noexcept nogil:
    # The per-code-point steps leave the low bits (the slot index) poorly mixed; this
    # finalizer (MurmurHash3's fmix64) spreads every input bit over all of them.
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef inline Py_ssize_t grown(Py_ssize_t cap, Py_ssize_t need) noexcept nogil:
    """The capacity that replaces ``cap`` to hold ``need`` items: at least double, at
    least 256 items."""
    return max(need, 2 * cap, 256)


cdef inline int grow(void** p, Py_ssize_t* cap, Py_ssize_t need, size_t item) except -1 nogil:
    """Make ``p[0]`` hold at least ``need`` items of ``item`` bytes; ``cap`` is its
    capacity in items.  Without the GIL but for the MemoryError."""
    if need <= cap[0]:
        return 0
    cdef Py_ssize_t c = grown(cap[0], need)
    cdef void* a = realloc(p[0], c * item)
    if a == NULL:
        with gil:
            raise MemoryError()
    p[0] = a
    cap[0] = c
    return 0


cdef inline int resize(void** p, Py_ssize_t cap, size_t item) except -1 nogil:
    """Make ``p[0]`` hold exactly ``cap`` items.  Parallel arrays resize one by one to
    ``grown(cap, need)`` and take the new capacity only when all succeeded, so that a
    MemoryError leaves them consistent."""
    cdef void* a = realloc(p[0], cap * item)
    if a == NULL:
        with gil:
            raise MemoryError()
    p[0] = a
    return 0


# The tokens of one scanned document: offset, length and hash of each.
cdef struct Spans:
    Py_ssize_t* start
    Py_ssize_t* length
    uint64_t* hash
    Py_ssize_t n
    Py_ssize_t cap


cdef inline int spans_reserve(Spans* sp, Py_ssize_t need) except -1 nogil:
    if need <= sp.cap:
        return 0
    cdef Py_ssize_t cap = grown(sp.cap, need)
    resize(<void**>&sp.start, cap, sizeof(Py_ssize_t))
    resize(<void**>&sp.length, cap, sizeof(Py_ssize_t))
    resize(<void**>&sp.hash, cap, sizeof(uint64_t))
    sp.cap = cap
    return 0


cdef inline void spans_free(Spans* sp) noexcept nogil:
    free(sp.start)
    free(sp.length)
    free(sp.hash)
    sp.start = NULL
    sp.length = NULL
    sp.hash = NULL
    sp.cap = 0
    sp.n = 0
