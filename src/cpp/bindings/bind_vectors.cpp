// Bindings for the pretrained-vector loader (fe/vectors.hpp) and the embedding-matrix
// builder.  The file is read and parsed with the GIL released; the words list, the
// word -> row dict (which also drops duplicate words, keeping the first) and the
// vectors array are built afterwards.
#include <algorithm>
#include <utility>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "fe/parallel.hpp"
#include "fe/vectors.hpp"

namespace fe_py {

namespace {

// What load_vectors returns: the parsed file, by name.
struct LoadedVectors {
  py::list words;       // in file order, duplicates dropped (the first is kept)
  py::dict index;       // word -> row of `vectors`
  py::object vectors;   // (len(words), dim) array of the asked dtype
  int64_t dim = 0;
  int64_t n_duplicates = 0;   // words dropped because they were seen before
  std::string format;         // the format read ("glove", "word2vec", ...)
  int64_t header_count = -1;  // the count a header announced, or -1
};


using fe::vec::ErrKind;
using fe::vec::Format;

const char* format_name(Format f) {
  switch (f) {
    case Format::Glove: return "glove";
    case Format::Word2VecText: return "word2vec";
    case Format::Word2VecBinary: return "word2vec_binary";
    case Format::FastText: return "fasttext";
    default: return "auto";
  }
}

Format parse_format(const std::string& s) {
  if (s == "auto") return Format::Auto;
  if (s == "glove") return Format::Glove;
  if (s == "word2vec") return Format::Word2VecText;
  if (s == "word2vec_binary") return Format::Word2VecBinary;
  if (s == "fasttext") return Format::FastText;
  throw py::value_error("format must be one of 'auto', 'glove', 'word2vec', "
                        "'word2vec_binary', 'fasttext', got '" + s + "'");
}

std::string show_token(const std::string& t) {
  // The token may hold invalid UTF-8: show it as Python's repr of the decoded bytes.
  py::object s = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(t.data(), static_cast<Py_ssize_t>(t.size()), "backslashreplace"));
  if (!s) throw py::error_already_set();
  return py::repr(s).cast<std::string>();
}

[[noreturn]] void raise_parse_error(const std::string& name, const fe::vec::ParseError& e,
                                    Format fmt, int64_t dim) {
  std::string where = name + ", ";
  if (e.line >= 0) where += "line " + std::to_string(e.line);
  else where += "byte offset " + std::to_string(e.offset);
  std::string msg;
  switch (e.kind) {
    case ErrKind::Io:
      errno = e.io_errno;
      PyErr_SetFromErrnoWithFilename(PyExc_OSError, name.c_str());
      throw py::error_already_set();
    case ErrKind::Empty:
      msg = name + ": the file holds no vectors (it is empty)";
      break;
    case ErrKind::BadHeader:
      msg = where + ": expected a header line 'count dim' (two integers, dim >= 1) for the " +
            std::string(format_name(fmt)) + " format, got " + show_token(e.token);
      break;
    case ErrKind::HeaderTooBig:
      msg = where + ": the header announces " + std::to_string(e.expected) + " vectors of " +
            std::to_string(e.found) + " dims, which cannot fit in the " +
            std::to_string(e.offset) + " bytes that follow it (is the header wrong, or the "
            "file truncated?)";
      break;
    case ErrKind::NoValues:
      msg = where + ": expected 'word v1 ... vD', got a line with no values: " +
            show_token(e.token);
      break;
    case ErrKind::Ragged:
      msg = where + ": ragged row: expected " + std::to_string(e.expected) +
            " values after the word, found " + std::to_string(e.found);
      break;
    case ErrKind::BadNumber:
      msg = where + ": value " + std::to_string(e.found + 1) + " is not a number: " +
            show_token(e.token);
      break;
    case ErrKind::NonFinite:
      if (e.line >= 0)
        msg = where + ": value " + std::to_string(e.found + 1) + " is not finite (or out of "
              "range for the dtype): " + show_token(e.token);
      else
        msg = where + ": value " + std::to_string(e.found + 1) + " of the vector for " +
              show_token(e.token) + " is not finite (nan or inf)";
      break;
    case ErrKind::EmptyWord:
      msg = where + ": a vector without a word";
      break;
    case ErrKind::BadUtf8:
      if (e.line >= 0)
        msg = where + ": the word is not valid UTF-8 (bad byte at position " +
              std::to_string(e.offset) + " of the word)";
      else
        msg = where + ": the word is not valid UTF-8";
      break;
    case ErrKind::Truncated:
      msg = where + ": the file is truncated: " +
            (e.found < 0 ? std::string("a word without the space that ends it")
                         : "a vector needs " + std::to_string(e.expected) + " bytes, only " +
                               std::to_string(e.found) + " remain") +
            " (" + std::to_string(dim) + " float32 values per vector)";
      break;
    case ErrKind::Shrunk:
      msg = where + ": the file shrank while it was read: it held " + std::to_string(e.expected) +
            " bytes when it was opened, but ended after " + std::to_string(e.found) +
            " (was it truncated or rewritten by another process?)";
      break;
    case ErrKind::LineTooLong:
      msg = where + ": a line longer than " + std::to_string(e.expected) + " bytes (64 MiB), "
            "the longest this reader takes: this is not a text vectors file (binary data, "
            "or a file without line ends?)";
      break;
    case ErrKind::WordTooLong:
      msg = where + ": no space ends the word within " + std::to_string(e.expected) +
            " bytes (1 MiB), the longest word this reader takes: this is not a word2vec "
            "binary file";
      break;
    case ErrKind::DimTooBig:
      msg = where + (fmt == Format::Glove
                         ? ": the first line holds " + std::to_string(e.found) + " values"
                         : ": the header announces vectors of " + std::to_string(e.found) +
                               " dims") +
            ", more than the " + std::to_string(fe::vec::kMaxDim) + " this reader accepts";
      break;
    case ErrKind::TooBig:
      msg = where + ": the vectors announced by the file do not fit in 64-bit sizes";
      break;
    case ErrKind::Interrupted:
      PyErr_SetNone(PyExc_KeyboardInterrupt);
      throw py::error_already_set();
    case ErrKind::TooFew:
      msg = where + ": the header announces " + std::to_string(e.expected) +
            " vectors, but the file holds only " + std::to_string(e.found);
      break;
    default:
      msg = name + ": unreadable vectors file";
  }
  throw py::value_error(msg);
}

template <class T>
LoadedVectors finish(fe::vec::VectorsResult<T>& r) {
  // Millions of words take a while to decode: Ctrl-C is checked along the way.
  const int64_t n = r.rows, D = r.dim;
  // Words and index; the dict keeps the first row of a duplicated word.
  py::list words(0);
  // Presized: no rehashing while 400k words go in.
  py::dict index = py::reinterpret_steal<py::dict>(_PyDict_NewPresized(static_cast<Py_ssize_t>(n)));
  if (!index) throw py::error_already_set();
  std::vector<uint8_t> keep(static_cast<size_t>(n), 1);
  int64_t kept = 0;
  const char* wb = r.words.data();
  for (int64_t i = 0; i < n; ++i) {
    if ((i & 0xFFFF) == 0xFFFF && PyErr_CheckSignals() != 0) throw py::error_already_set();
    const int64_t b = i ? r.word_end[i - 1] : 0;
    PyObject* w = PyUnicode_DecodeUTF8(wb + b, static_cast<Py_ssize_t>(r.word_end[i] - b),
                                       "strict");
    if (!w) throw py::error_already_set();
    py::object word = py::reinterpret_steal<py::object>(w);
    py::object row = py::int_(kept);
    PyObject* got = PyDict_SetDefault(index.ptr(), word.ptr(), row.ptr());
    if (!got) throw py::error_already_set();
    if (got != row.ptr()) {
      keep[i] = 0;
      continue;
    }
    if (PyList_Append(words.ptr(), word.ptr()) < 0) throw py::error_already_set();
    ++kept;
  }
  std::string().swap(r.words);
  std::vector<int64_t>().swap(r.word_end);
  if (kept < n) {
    // Drop the duplicates' rows in place, keeping the order (offsets below n * D, the
    // size of the parsed buffer).
    py::gil_scoped_release nogil;
    T* v = r.values.data();
    int64_t o = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!keep[i]) continue;
      if (o != i) std::memmove(v + o * D, v + i * D, static_cast<size_t>(D) * sizeof(T));
      ++o;
    }
    r.values.resize(static_cast<size_t>(kept * D));
  }
  // The parsed buffer becomes the array's memory: no copy of the values.
  auto* owner = new fe::vec::ValueVec<T>(std::move(r.values));
  py::capsule cap(owner, [](void* p) { delete static_cast<fe::vec::ValueVec<T>*>(p); });
  const py::ssize_t isz = static_cast<py::ssize_t>(sizeof(T));
  py::array_t<T> arr(std::vector<py::ssize_t>{static_cast<py::ssize_t>(kept),
                                              static_cast<py::ssize_t>(D)},
                     std::vector<py::ssize_t>{static_cast<py::ssize_t>(D) * isz, isz},
                     owner->empty() ? nullptr : owner->data(), cap);
  LoadedVectors out;
  out.words = std::move(words);
  out.index = std::move(index);
  out.vectors = std::move(arr);
  out.dim = D;
  out.n_duplicates = n - kept;
  out.format = format_name(r.format);
  out.header_count = r.header_count;
  return out;
}

template <class T>
LoadedVectors run_load(const fe::vec::VecSource& src, const std::string& name, Format fmt,
                   int64_t limit, SignalPoll& sig) {
  fe::vec::VectorsResult<T> r;
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = fe::vec::load_vectors<T>(src, fmt, limit, r);
  }
  if (!ok) {
    if (r.error.kind == ErrKind::Interrupted) sig.raise_if_set();
    raise_parse_error(name, r.error, r.format == Format::Auto ? fmt : r.format, r.dim);
  }
  return finish(r);
}

// load_vectors(source, name, format, dtype, limit, size_hint, block_size) -> LoadedVectors.  `source` is an int file
// descriptor, read from its current position up to size_hint bytes (its size when it
// was opened; -1: to the end, for pipes and devices), or a contiguous bytes-like object
// holding the whole file, parsed in place (memory the caller owns and keeps unchanged:
// not a mapping of a file that may shrink).  Ctrl-C raises KeyboardInterrupt within
// ~0.1 s, also while a pipe has no data.
LoadedVectors load_vectors(py::handle source, const std::string& name, const std::string& format,
                       const std::string& dtype, int64_t limit, int64_t size_hint,
                       int64_t block_size) {
  const Format fmt = parse_format(format);
  if (dtype != "float32" && dtype != "float64")
    throw py::type_error("dtype must be float32 or float64, got " + dtype);
  fe::vec::VecSource src;
  py::buffer_info info;
  if (py::isinstance<py::int_>(source)) {
    src.fd = source.cast<int>();
    if (src.fd < 0) throw py::value_error("load_vectors: bad file descriptor");
    src.size = size_hint < 0 ? -1 : size_hint;
  } else {
    info = py::reinterpret_borrow<py::buffer>(source).request();
    if (info.ndim > 1 || (info.ndim == 1 && info.strides[0] != info.itemsize))
      throw py::value_error("load_vectors: the source buffer must be contiguous");
    src.data = static_cast<const char*>(info.ptr);
    src.size = static_cast<int64_t>(info.size * info.itemsize);
  }
  if (block_size > 0) src.block = block_size;
  SignalPoll sig;
  src.intr = sig.hook();
  if (dtype == "float32") return run_load<float>(src, name, fmt, limit, sig);
  return run_load<double>(src, name, fmt, limit, sig);
}

// Walks word_index in order and calls found(i, j) for every word kept (index i < cutoff)
// that `index` has (j = index[word]); words kept but missing from `index` are counted.
// Raises TypeError for a non-integer index and IndexError for a kept index outside
// [0, rows), before any found() call can have written anything the caller keeps (callers
// collect the pairs and write afterwards).  Returns (found, missing).
template <class Found>
std::pair<int64_t, int64_t> walk_word_index(const py::dict& word_index, const py::dict& index,
                                            int64_t rows, int64_t cutoff, Found&& found) {
  int64_t n_found = 0, missing = 0;
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(word_index.ptr(), &pos, &key, &value)) {
    if (PyBool_Check(value) || !PyIndex_Check(value))
      throw py::type_error("word_index values must be integers, got " +
                           type_name(value) + " for " + py::repr(key).cast<std::string>());
    py::object iv = py::reinterpret_steal<py::object>(PyNumber_Index(value));
    if (!iv) throw py::error_already_set();
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(iv.ptr(), &overflow);
    if (i == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow > 0 || (overflow == 0 && i >= cutoff)) continue;
    if (overflow < 0 || i < 0 || i >= rows)
      throw py::index_error("word_index[" + py::repr(key).cast<std::string>() + "] = " +
                            py::str(iv).cast<std::string>() +
                            " is out of range for an embedding matrix of " +
                            std::to_string(rows) + " rows (valid indices: 0.." +
                            std::to_string(rows - 1) + ")");
    PyObject* r = PyDict_GetItemWithError(index.ptr(), key);
    if (!r) {
      if (PyErr_Occurred()) throw py::error_already_set();
      ++missing;
      continue;
    }
    ++n_found;
    found(static_cast<int64_t>(i), r);
  }
  return {n_found, missing};
}

// fill_embedding_matrix(word_index, index, vectors, out, cutoff): for each (word, i) of
// word_index in order: skipped when i >= cutoff; IndexError when i is outside [0, rows)
// (rows = len(out)); when `index` has the word, out[i] = vectors[index[word]] (a later
// word with the same i overwrites, as the Keras loop does).  Nothing is written before
// every word has been checked.
void fill_embedding_matrix(const py::dict& word_index, const py::dict& index,
                           py::handle vectors_h, py::handle out_h, int64_t cutoff) {
  Arr vec = float_table(vectors_h, "vectors");
  Arr out = writable_table(out_h, "out");
  const int64_t D = vec.dim(1), rows = out.dim(0), nvec = vec.dim(0);
  if (!vec.c_contiguous() || vec.dt != out.dt || out.dim(1) != D)
    throw py::value_error("fill_embedding_matrix: vectors and out do not match");
  std::vector<std::pair<int64_t, int64_t>> pairs;
  walk_word_index(word_index, index, rows, cutoff, [&](int64_t i, PyObject* r) {
    const long long j = PyLong_AsLongLong(r);
    if (j == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (j < 0 || j >= nvec) throw py::value_error("fill_embedding_matrix: bad vectors index");
    pairs.emplace_back(i, j);
  });
  if (pairs.empty()) return;
  // i < rows and j < nvec index rows of existing arrays of D * isz bytes each, so these
  // offsets are inside allocations and cannot overflow.
  py::gil_scoped_release nogil;
  const int64_t isz = vec.itemsize();
  for (const auto& p : pairs)
    std::memcpy(out.data + p.first * D * isz, vec.data + p.second * D * isz,
                static_cast<size_t>(D * isz));
}

// embedding_coverage(word_index, index, rows, cutoff) -> (found, missing): the words kept
// (index < cutoff) that `index` has and lacks, with the checks of fill_embedding_matrix.
std::pair<int64_t, int64_t> embedding_coverage(const py::dict& word_index, const py::dict& index,
                                               int64_t rows, int64_t cutoff) {
  return walk_word_index(word_index, index, rows, cutoff, [](int64_t, PyObject*) {});
}

}  // namespace

void init_vectors(py::module_& m) {
  py::class_<LoadedVectors>(m, "LoadedVectors", "A parsed vectors file (see load_vectors).")
      .def_readonly("words", &LoadedVectors::words)
      .def_readonly("index", &LoadedVectors::index)
      .def_readonly("vectors", &LoadedVectors::vectors)
      .def_readonly("dim", &LoadedVectors::dim)
      .def_readonly("n_duplicates", &LoadedVectors::n_duplicates)
      .def_readonly("format", &LoadedVectors::format)
      .def_readonly("header_count", &LoadedVectors::header_count);
  m.def("load_vectors", &load_vectors, py::arg("source"), py::arg("name"), py::arg("format"),
        py::arg("dtype"), py::arg("limit"), py::arg("size_hint") = -1,
        py::arg("block_size") = 0);
  m.def("fill_embedding_matrix", &fill_embedding_matrix, py::arg("word_index"),
        py::arg("index"), py::arg("vectors"), py::arg("out"), py::arg("cutoff"));
  m.def("embedding_coverage", &embedding_coverage, py::arg("word_index"), py::arg("index"),
        py::arg("rows"), py::arg("cutoff"));
}

}  // namespace fe_py
