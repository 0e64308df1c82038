# cython: language_level=3, boundscheck=False, wraparound=False
"""Fitting of the Keras Tokenizer: the counts of ``fit_on_texts`` and
``fit_on_sequences``, and the dict updates that commit them.

Every function only reads its inputs (the texts, the tokenizer's dicts) and returns
new objects, which the caller (``fastembed.text``) commits in one short block: an
interrupt here leaves nothing half-made.
"""
from cpython.object cimport PyObject
from libc.stdint cimport int64_t
from libc.stdlib cimport free

from fastembed._textbase cimport ITEM_COST, TOKENS_MASK, PyErr_CheckSignals, poll
from fastembed._textbase cimport Spans, spans_free
from fastembed._textscan cimport Scratch, Slot, StrTable, TokenRule, doc_view, scan_data


def fit_texts(texts, TokenRule rule not None):
    """Count tokens of every document of ``texts``.

    Documents the native scanner takes are scanned here; any other item goes through
    ``rule.tokens(item)`` (the Keras per-item rule) and is counted the way Keras
    counts it: every token for ``word_counts``, then a second pass over the same
    sequence for ``word_docs`` (so an iterator counts no documents, as in Keras'
    ``set(seq)`` after the loop consumed it).

    Returns ``(n_docs, words, counts, docs)`` with words in order of first
    appearance.
    """
    cdef StrTable t = StrTable()
    cdef Spans sp
    cdef Py_ssize_t i
    cdef Slot* e
    cdef int64_t doc = 0, docno
    cdef object s
    cdef unsigned int kind
    cdef const char* data
    cdef Py_ssize_t n
    cdef Scratch sc
    cdef Py_ssize_t work = 0
    cdef bint lower = rule.lower
    sc.buf = NULL
    sc.cap = 0
    sp.start = NULL
    sp.length = NULL
    sp.hash = NULL
    sp.n = 0
    sp.cap = 0
    try:
        for text in texts:
            docno = doc + 1   # FitCounts.last_doc numbers documents from 1
            if rule.scans(text):
                # No Python code runs from here to the end of the document: the view
                # and the spans stay valid.
                s = doc_view(text, lower, &sc, &kind, &data, &n)
                scan_data(kind, data, n, rule.sep, &sp)
                for i in range(sp.n):
                    if (i & TOKENS_MASK) == TOKENS_MASK:
                        PyErr_CheckSignals()   # a huge document
                    e = t.span(kind, data, sp.start[i], sp.length[i], sp.hash[i])
                    e.pay.fit.count += 1
                    if e.pay.fit.last_doc != docno:
                        e.pay.fit.last_doc = docno
                        e.pay.fit.docs += 1
                poll(&work, n + sp.n * ITEM_COST)
            else:
                seq = rule.tokens(text)
                for w in seq:
                    e = t.obj(w)
                    e.pay.fit.count += 1
                    poll(&work, ITEM_COST)
                for w in seq:
                    e = t.obj(w)
                    if e.pay.fit.last_doc != docno:
                        e.pay.fit.last_doc = docno
                        e.pay.fit.docs += 1
                    poll(&work, ITEM_COST)
            doc += 1
            poll(&work, ITEM_COST)
    finally:
        spans_free(&sp)
        free(sc.buf)
    counts, docs = t.fit_counts()
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
        poll(&work, ITEM_COST)
    return out


def ordered_copy(d, dict updates):
    """``type(d)(d)`` (an OrderedDict) with ``updates`` applied, built item by item so
    that Ctrl-C is seen meanwhile (OrderedDict insertions are slow: about a microsecond
    each on a busy machine)."""
    cdef Py_ssize_t work = 0
    new = type(d)()
    for k, v in d.items():
        new[k] = v
        poll(&work, ITEM_COST)
    for k, v in updates.items():
        new[k] = v
        poll(&work, ITEM_COST)
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
        poll(&work, 4)
    if hits < len(updates):  # some keys are new
        for k, v in updates.items():
            if k not in d:
                keys.append(k)
                values.append(v)
            poll(&work, 4)
    return keys, values


def index_doc_updates(word_docs, word_index):
    """``{word_index[w]: c for (w, c) of word_docs}`` (Keras' index_docs refresh);
    KeyError for a word without an index."""
    cdef dict out = {}
    cdef Py_ssize_t work = 0
    for w, c in list(word_docs.items()):
        out[word_index[w]] = c
        poll(&work, ITEM_COST)
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
            poll(&work, ITEM_COST)
        poll(&work, ITEM_COST)
    return local
