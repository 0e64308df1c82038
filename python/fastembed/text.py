"""Keras-compatible text tokenization: ``Tokenizer``, ``tokenizer_from_json`` and
``text_to_word_sequence``.

The behaviour is that of ``keras_preprocessing`` 1.1.2 (the tf-keras legacy
Tokenizer, with its ``analyzer`` argument), output for output; the per-token work
runs in the Cython modules ``fastembed._textscan`` (the scanner), ``_textfit`` and
``_textencode``.  Two extensions, off by default:
``order="appearance"`` numbers words by first appearance instead of by count, and
``index_from`` moves the first index (Keras: 1).
"""
from __future__ import annotations

import json
import warnings
from collections import Counter, OrderedDict, defaultdict
from operator import itemgetter
from typing import (Any, Callable, Collection, Dict, Hashable, Iterable, Iterator, List,
                    Optional, Tuple, Union)

import numpy as np
import numpy.typing as npt

from . import _textencode, _textfit, _textscan
from ._interrupts import deferred

__all__ = ["Tokenizer", "tokenizer_from_json", "text_to_word_sequence"]

#: A token: a word of a text, or an item of a pre-tokenized list (any hashable).
Token = Hashable
#: An id, as ``word_index`` gives it or a sequence holds it.
Id = Union[int, "np.integer[Any]"]
#: What ``fit_on_texts`` / ``texts_to_sequences`` take per item: a text, or a list of
#: tokens taken as already split.
TextItem = Union[str, List[Token]]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

# Largest word_counts update applied in place when a fit commits (longer ones build a
# new OrderedDict first): ~0.1 s of OrderedDict insertions on a busy machine.
_INPLACE_MAX = 1 << 16

_ORDERS = ("frequency", "appearance")


# Texts longer than this are split piece by piece, so that Ctrl-C is seen between pieces
# (each piece's lower/translate/split is one uninterruptible C call of ~50 ms).
_PIECE_CHARS: int = _textscan.PIECE_CHARS


def text_to_word_sequence(text: str, filters: Union[str, Iterable[str]] = DEFAULT_FILTERS,
                          lower: bool = True, split: str = " ") -> List[str]:
    """Split a text into a list of words, as Keras does.

    Parameters
    ----------
    text : str
    filters : str or iterable of characters
        Characters replaced by ``split`` before splitting (default: ASCII
        punctuation except the apostrophe, plus tab and newline).
    lower : bool
        Lower-case the text first.
    split : str
        Separator.

    Returns
    -------
    list of str
        The non-empty pieces.
    """
    return _textscan.text_to_word_sequence(text, filters, lower, split, _PIECE_CHARS)


def _check_num_words(num_words: Any) -> Optional[int]:
    # Keras stores any value and fails at the first comparison (texts_to_sequences:
    # "'>=' not supported") or in np.zeros (sequences_to_matrix); refuse that here.
    if num_words is None:
        return None
    if isinstance(num_words, bool) or not isinstance(num_words, (int, np.integer)):
        hint = " (pass int(num_words))" if isinstance(num_words, (float, np.floating, str)) \
            else ""
        raise TypeError(f"num_words must be an int or None, got {type(num_words).__name__} "
                        f"{num_words!r}{hint}")
    if num_words < 0:
        raise ValueError(f"num_words must be >= 0 (0 or None: keep every word), "
                         f"got {num_words}")
    return int(num_words)


def _check_document_count(document_count: Any) -> None:
    if isinstance(document_count, bool) or not isinstance(document_count, (int, np.integer)):
        raise TypeError(f"document_count must be an int, got "
                        f"{type(document_count).__name__} {document_count!r}")
    if document_count < 0:
        raise ValueError(f"document_count must be >= 0, got {document_count}")


def _check_splitting(filters: Any, split: Any, char_level: Any, analyzer: Any) -> None:
    """What text_to_word_sequence will do with ``filters``/``split`` at the first text,
    done now: Keras only fails there (or on every text)."""
    if char_level:
        return  # neither filters, split nor the analyzer is used
    if analyzer is not None:
        if not callable(analyzer):
            raise TypeError(f"analyzer must be a callable (str -> list of tokens) or "
                            f"None, got {type(analyzer).__name__} {analyzer!r}")
        return
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a string (or None: split on whitespace), got "
                        f"{type(split).__name__} {split!r}")
    if split == "":
        raise ValueError("split must not be empty (str.split: empty separator)")
    if isinstance(filters, str):
        return
    try:
        it = iter(filters)
    except TypeError:
        raise TypeError(f"filters must be a string of characters to remove (or an "
                        f"iterable of one-character strings), got "
                        f"{type(filters).__name__} {filters!r}") from None
    if it is filters:
        return  # an iterator: Keras reads it at the first text only; leave it unread
    try:
        str.maketrans({c: split for c in filters})
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"filters must be a string of characters to remove (or an "
                        f"iterable of one-character strings), got {filters!r}: "
                        f"{exc}") from None


class Tokenizer:
    """Text tokenization utility with the Keras ``Tokenizer`` API and results.

    Parameters
    ----------
    num_words : int, optional
        Keep only ids ``< num_words`` when encoding (``word_index`` stays full).
    filters : str
        Characters treated as separators.
    lower : bool
        Lower-case texts (and tokens of pre-tokenized lists).
    split : str
        Word separator.
    char_level : bool
        Every character is a token (``filters`` and ``split`` are ignored).
    oov_token : str, optional
        Token given the first index and used for unknown words.
    analyzer : callable, optional
        ``str -> list of tokens`` replacing the built-in splitting (no lower-casing
        or filtering then); not serialized.
    document_count : int
        Starting number of documents.
    order : {"frequency", "appearance"}
        Number words by descending count (Keras; ties by first appearance) or by
        first appearance.
    index_from : int
        First index given (Keras: 1; 0 is then left for padding).  The
        ``oov_token`` takes it and words follow.
    """

    word_counts: "OrderedDict[Token, int]"
    word_docs: "defaultdict[Token, int]"
    index_docs: "defaultdict[Id, int]"
    word_index: Dict[Token, int]
    index_word: Dict[int, Token]
    num_words: Optional[int]
    document_count: int
    oov_token: Optional[Token]
    analyzer: Optional[Callable[[str], Iterable[Token]]]
    order: str
    index_from: int

    def __init__(self, num_words: Optional[int] = None,
                 filters: Union[str, Iterable[str]] = DEFAULT_FILTERS, lower: bool = True,
                 split: str = " ", char_level: bool = False,
                 oov_token: Optional[Token] = None,
                 analyzer: Optional[Callable[[str], Iterable[Token]]] = None,
                 document_count: int = 0, *, order: str = "frequency", index_from: int = 1,
                 **kwargs: Any) -> None:
        if "nb_words" in kwargs:
            warnings.warn("The `nb_words` argument in `Tokenizer` has been renamed "
                          "`num_words`.")
            num_words = kwargs.pop("nb_words")
        if kwargs:
            raise TypeError("Unrecognized keyword arguments: " + str(kwargs))
        if not isinstance(order, str) or order not in _ORDERS:
            raise ValueError(f"order must be 'frequency' or 'appearance', got {order!r}")
        if isinstance(index_from, bool) or not isinstance(index_from, (int, np.integer)):
            raise TypeError(f"index_from must be an int, got {type(index_from).__name__}")
        if index_from < 0:
            raise ValueError(f"index_from must be >= 0, got {index_from}")
        num_words = _check_num_words(num_words)
        _check_document_count(document_count)
        _check_splitting(filters, split, char_level, analyzer)
        try:
            hash(oov_token)
        except TypeError:
            raise TypeError(f"oov_token must be a string (or None), got unhashable "
                            f"{type(oov_token).__name__} {oov_token!r}") from None

        self.word_counts = OrderedDict()
        self.word_docs = defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs = defaultdict(int)
        self.word_index = {}
        self.index_word = {}
        self.analyzer = analyzer
        self.order = order
        self.index_from = int(index_from)

    # ------------------------------------------------------------------ helpers
    def _rule(self) -> _textscan.TokenRule:
        """Keras' per-item tokenization for the current settings (and the native
        scanner when it reproduces it)."""
        return _textscan.TokenRule(self.filters, self.lower, self.split, self.char_level,
                                   self.analyzer)

    def _ranked_index(self, vocab: List[Token], counts: List[int]
                      ) -> Tuple[Dict[Token, int], Dict[int, Token]]:
        """``(word_index, index_word)`` (new dicts) for the words ``vocab`` with the
        counts ``counts``, listed in word_counts order."""
        if self.order == "frequency":
            arr = None
            if set(map(type, counts)) <= {int}:
                try:
                    arr = np.array(counts, dtype=np.int64)
                except OverflowError:
                    pass
            if arr is not None and not (arr.size and arr.min() == np.iinfo(np.int64).min):
                # numpy's stable sort (radix for int64) gives the order of Python's
                # stable sorted(reverse=True) on the counts, several times faster on a
                # large vocabulary, where a Ctrl-C would otherwise wait for the sort.
                order = np.argsort(-arr, kind="stable")
                keys = np.empty(len(vocab), dtype=object)
                keys[:] = vocab
                vocab = keys[order].tolist()
            else:
                ranked = sorted(zip(vocab, counts), key=itemgetter(1), reverse=True)
                vocab = list(map(itemgetter(0), ranked))
        else:
            vocab = list(vocab)
        if self.oov_token is not None:
            vocab.insert(0, self.oov_token)
        start = self.index_from
        word_index = dict(zip(vocab, range(start, start + len(vocab))))
        index_word = dict(zip(word_index.values(), word_index.keys()))
        return word_index, index_word

    def _encoder(self) -> _textencode.Encoder:
        return _textencode.Encoder(self.word_index, self.num_words, self.oov_token,
                                   self._rule())

    # ------------------------------------------------------------------ fitting
    def fit_on_texts(self, texts: Iterable[TextItem]) -> None:
        """Update the vocabulary from texts.

        Parameters
        ----------
        texts : iterable
            Strings, or lists of tokens (taken as already split), or a mix; a
            generator works.  A bare string is iterated character by character, as
            in Keras.

        Notes
        -----
        Counts accumulate over calls and ``word_index`` is re-ranked after every
        call.  All or nothing: if an item fails (e.g. a non-string) or Ctrl-C
        interrupts the call, nothing is updated; a Ctrl-C that comes while the results
        are being written is held until they are complete, then raised.
        """
        n, words, counts, docs = _textfit.fit_texts(texts, self._rule())
        # All or nothing, Ctrl-C included: everything is computed first (reading the
        # tokenizer, never writing it; interruptible, and any failure leaves it as it
        # was), then committed in one short block that a SIGINT cannot split.
        count_up = _textfit.count_updates(self.word_counts, words, counts)
        docs_up = _textfit.count_updates(self.word_docs, words, docs)
        if len(count_up) <= _INPLACE_MAX or type(self.word_counts) is not OrderedDict:
            word_counts = None  # updated in place in the commit: short enough
        else:
            # OrderedDict insertions are slow: a big update would hold Ctrl-C back for
            # seconds in the commit.  Build the new dict outside it instead.
            word_counts = _textfit.ordered_copy(self.word_counts, count_up)
        vocab, values = _textfit.merged_items(self.word_counts, count_up)
        word_index, index_word = self._ranked_index(vocab, values)
        del vocab, values
        docs_view = dict(self.word_docs)
        docs_view.update(docs_up)
        index_docs_up = _textfit.index_doc_updates(docs_view, word_index)
        del docs_view
        document_count = self.document_count + n if n else self.document_count
        with deferred():
            if word_counts is None:
                self.word_counts.update(count_up)
            else:
                self.word_counts = word_counts
            self.word_docs.update(docs_up)
            self.word_index = word_index
            self.index_word = index_word
            self.index_docs.update(index_docs_up)
            self.document_count = document_count

    def fit_on_sequences(self, sequences: Collection[Iterable[Id]]) -> None:
        """Update document frequencies (``index_docs``) from id sequences.

        Parameters
        ----------
        sequences : sized iterable of iterables of ids

        Notes
        -----
        All or nothing, as ``fit_on_texts``.
        """
        n = len(sequences)
        local = _textfit.count_sequences(sequences)
        index_docs_up = _textfit.count_updates(self.index_docs, list(local),
                                               list(local.values()))
        document_count = self.document_count + n
        with deferred():
            self.index_docs.update(index_docs_up)
            self.document_count = document_count

    # ----------------------------------------------------------------- encoding
    def texts_to_sequences(self, texts: Iterable[TextItem]) -> List[List[int]]:
        """Encode texts as lists of word indices.

        Parameters
        ----------
        texts : iterable of str or of lists of tokens

        Returns
        -------
        list of list of int
            Unknown words are dropped, or mapped to the ``oov_token`` index;
            indices ``>= num_words`` likewise.
        """
        return self._encoder().encode_many(texts)

    def texts_to_sequences_generator(self, texts: Iterable[TextItem]
                                     ) -> Iterator[List[int]]:
        """Lazily encode texts, one list of indices per text (see
        ``texts_to_sequences``)."""
        enc = self._encoder()
        for text in texts:
            yield enc.encode_one(text)

    def sequences_to_texts(self, sequences: Iterable[Iterable[Id]]) -> List[str]:
        """Decode id sequences into space-joined texts.

        Parameters
        ----------
        sequences : iterable of iterables of ids

        Returns
        -------
        list of str
            Unknown ids (0 included) and ids ``>= num_words`` become the
            ``oov_token`` when it is set, else are dropped.
        """
        return _textencode.sequences_to_texts(sequences, self.index_word, self.num_words,
                                              self.oov_token,
                                              self.word_index.get(self.oov_token))

    def sequences_to_texts_generator(self, sequences: Iterable[Iterable[Id]]
                                     ) -> Iterator[str]:
        """Lazily decode id sequences (see ``sequences_to_texts``)."""
        oov_index = self.word_index.get(self.oov_token)
        for seq in sequences:
            yield _textencode.sequences_to_texts((seq,), self.index_word, self.num_words,
                                                 self.oov_token, oov_index)[0]

    # ----------------------------------------------------------------- matrices
    def texts_to_matrix(self, texts: Iterable[TextItem], mode: str = "binary"
                        ) -> npt.NDArray[np.float64]:
        """``sequences_to_matrix(texts_to_sequences(texts), mode)``."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Collection[Iterable[Id]], mode: str = "binary"
                            ) -> npt.NDArray[np.float64]:
        """Vectorize id sequences into a float64 matrix.

        Parameters
        ----------
        sequences : sized iterable of lists of ids
        mode : {"binary", "count", "tfidf", "freq"}

        Returns
        -------
        numpy.ndarray
            Shape ``(len(sequences), width)``, width ``num_words`` or, unset, the
            largest index + 1 (``len(word_index) + 1`` in Keras' numbering).

        Raises
        ------
        ValueError
            No width is known, tfidf before any fit, or an unknown mode (raised,
            as in Keras, when the first value would be written).
        """
        if not self.num_words:
            if self.word_index:
                width = len(self.word_index) + self.index_from
            else:
                raise ValueError("Specify a dimension (`num_words` argument), "
                                 "or fit on some text data first.")
        else:
            width = self.num_words
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Fit the Tokenizer on some data before using tfidf mode.")

        x = np.zeros((len(sequences), width))
        try:
            cwidth = int(width)
        except (TypeError, ValueError):  # pragma: no cover - np.zeros refused it
            cwidth = -1
        if cwidth == width and cwidth >= 0:
            if _textencode.sequences_to_matrix(sequences, x, cwidth, mode,
                                               self.document_count, self.index_docs):
                return x
            x = np.zeros((len(sequences), width))
        return self._sequences_to_matrix_reference(sequences, x, width, mode)

    def _sequences_to_matrix_reference(self, sequences: Collection[Any],
                                       x: npt.NDArray[np.float64], width: int, mode: str
                                       ) -> npt.NDArray[np.float64]:
        """Keras' loop, for inputs the native loop does not reproduce (numpy
        rows, non-int ids, ids below ``-width``)."""
        for i, seq in enumerate(sequences):
            if not seq:
                continue
            counts: "defaultdict[Id, int]" = defaultdict(int)
            for j in seq:
                if j >= width:
                    continue
                counts[j] += 1
            for j, c in list(counts.items()):
                if mode == "count":
                    x[i][j] = c
                elif mode == "freq":
                    x[i][j] = c / len(seq)
                elif mode == "binary":
                    x[i][j] = 1
                elif mode == "tfidf":
                    tf = 1 + np.log(c)
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i][j] = tf * idf
                else:
                    raise ValueError("Unknown vectorization mode:", mode)
        return x

    # ------------------------------------------------------------ serialization
    def get_config(self) -> Dict[str, Any]:
        """The configuration as a dict with Keras' keys (the five dictionaries as
        JSON strings); ``order`` / ``index_from`` are added only when they are not
        the defaults."""
        config = {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }
        if self.order != "frequency":
            config["order"] = self.order
        if self.index_from != 1:
            config["index_from"] = self.index_from
        return config

    def to_json(self, **kwargs: Any) -> str:
        """JSON string of ``{"class_name": "Tokenizer", "config": get_config()}``;
        ``kwargs`` go to ``json.dumps``.  Loadable by Keras' ``tokenizer_from_json``
        when ``order`` and ``index_from`` are the defaults."""
        return json.dumps({"class_name": self.__class__.__name__,
                           "config": self.get_config()}, **kwargs)


_JSON_DICTS = ("word_counts", "word_docs", "index_docs", "index_word", "word_index")
_ID_LIMIT = 2**63


def _json_field(config: Dict[str, Any], name: str) -> Dict[Any, Any]:
    """The decoded dict of one of the five double-encoded fields."""
    if name not in config:
        raise ValueError(f"tokenizer JSON: the config has no {name!r} field")
    raw = config.pop(name)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"tokenizer JSON: field {name!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"tokenizer JSON: field {name!r} must hold a JSON object, "
                         f"got {type(raw).__name__}")
    return raw


def _count(value: Any, field: str, key: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _ID_LIMIT:
        raise ValueError(f"tokenizer JSON: {field}[{key!r}] must be a non-negative integer, "
                         f"got {value!r}")
    return value


def _int_key(key: Any, field: str) -> int:
    try:
        k = int(key)
    except (TypeError, ValueError):
        raise ValueError(f"tokenizer JSON: {field} keys must be integers, got {key!r}") from None
    if not 0 <= k < _ID_LIMIT:
        raise ValueError(f"tokenizer JSON: {field} key {key!r} is out of range")
    return k


def _check_scalars(config: Dict[str, Any]) -> None:
    def opt_int(name: str) -> None:
        v = config.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"tokenizer JSON: {name!r} must be a non-negative integer or "
                             f"null, got {v!r}")
    opt_int("num_words")
    if "document_count" in config:
        _count(config["document_count"], "config", "document_count")
    for name in ("lower", "char_level"):
        if name in config and not isinstance(config[name], bool):
            raise ValueError(f"tokenizer JSON: {name!r} must be true or false, "
                             f"got {config[name]!r}")
    if "split" in config and not isinstance(config["split"], str):
        raise ValueError(f"tokenizer JSON: 'split' must be a string, got {config['split']!r}")
    if "oov_token" in config and config["oov_token"] is not None \
            and not isinstance(config["oov_token"], str):
        raise ValueError(f"tokenizer JSON: 'oov_token' must be a string or null, "
                         f"got {config['oov_token']!r}")
    f = config.get("filters", DEFAULT_FILTERS)
    if not (isinstance(f, str) or (isinstance(f, list) and all(isinstance(c, str) for c in f))):
        raise ValueError(f"tokenizer JSON: 'filters' must be a string (or a list of "
                         f"strings), got {f!r}")
    if config.get("analyzer") is not None:
        raise ValueError("tokenizer JSON: 'analyzer' cannot be restored from JSON "
                         "(a callable is not serialized)")
    config.pop("analyzer", None)


def tokenizer_from_json(json_string: Union[str, bytes, bytearray]) -> Tokenizer:
    """Rebuild a ``Tokenizer`` from ``to_json`` output (ours or Keras').

    Unlike Keras, the loaded tokenizer can be fitted further: ``word_counts`` is an
    ``OrderedDict`` and ``word_docs`` / ``index_docs`` are ``defaultdict(int)``.  The
    document is validated: malformed JSON, a missing field or a bad value raises
    ``ValueError`` naming it; an unknown constructor key raises ``TypeError`` (as the
    constructor does).

    Parameters
    ----------
    json_string : str

    Returns
    -------
    Tokenizer
    """
    if isinstance(json_string, (bytes, bytearray)):
        json_string = bytes(json_string).decode("utf-8")
    if not isinstance(json_string, str):
        raise TypeError(f"tokenizer_from_json expects a JSON string, got "
                        f"{type(json_string).__name__}")
    try:
        doc = json.loads(json_string)
    except RecursionError:
        raise ValueError("tokenizer JSON is nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise ValueError("not a tokenizer JSON document: expected an object with a "
                         "'config' object (the output of Tokenizer.to_json)")
    if doc.get("class_name", "Tokenizer") != "Tokenizer":
        raise ValueError(f"not a tokenizer JSON document: class_name is "
                         f"{doc.get('class_name')!r}")
    config = dict(doc["config"])
    try:
        word_counts = _json_field(config, "word_counts")
        word_docs = _json_field(config, "word_docs")
        index_docs = _json_field(config, "index_docs")
        index_word = _json_field(config, "index_word")
        word_index = _json_field(config, "word_index")
    except RecursionError:
        raise ValueError("tokenizer JSON is nested too deeply") from None
    for w, c in word_counts.items():
        _count(c, "word_counts", w)
    for w, c in word_docs.items():
        _count(c, "word_docs", w)
    for w, i in word_index.items():
        _count(i, "word_index", w)
    index_docs = {_int_key(k, "index_docs"): _count(v, "index_docs", k)
                  for k, v in index_docs.items()}
    index_word = {_int_key(k, "index_word"): v for k, v in index_word.items()}
    for k, v in index_word.items():
        if not isinstance(v, str):
            raise ValueError(f"tokenizer JSON: index_word[{k}] must be a string, got {v!r}")
    _check_scalars(config)
    for w in word_docs:
        if w not in word_counts:
            # Keras counts a word in word_docs only in the fit that counts it in
            # word_counts; the next fit_on_texts needs the word's index for index_docs.
            raise ValueError(f"tokenizer JSON: word_docs names {w!r}, which word_counts "
                             f"does not have")
    if len(set(word_index.values())) != len(word_index):
        dup = next(i for i, n in Counter(word_index.values()).items() if n > 1)
        raise ValueError(f"tokenizer JSON: word_index gives id {dup} to more than one word")
    if index_word != {v: k for k, v in word_index.items()}:
        # Keras derives index_word from word_index; a document where they disagree would
        # send lookups to ids that do not exist.
        raise ValueError("tokenizer JSON: index_word is not the inverse of word_index")
    oov = config.get("oov_token")
    if oov is not None and word_index and oov not in word_index:
        # Keras forces the OOV token into word_index when it fits; a fitted document
        # without it cannot come from Tokenizer.to_json.
        raise ValueError(f"tokenizer JSON: oov_token {oov!r} is not in word_index")

    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = OrderedDict(word_counts)
    tokenizer.word_docs = defaultdict(int, word_docs)
    tokenizer.index_docs = defaultdict(int, index_docs)
    tokenizer.word_index = word_index
    tokenizer.index_word = index_word
    return tokenizer
