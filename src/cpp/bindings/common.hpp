// Helpers for the pybind11 boundary: read numpy array headers without building dtype
// objects (a typed py::array_t argument costs ~0.5 us per call), check dtype / shape /
// flags by hand, and format the error messages.  Only the bindings include this.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "fe/interrupt.hpp"

namespace fe_py {

namespace py = pybind11;

enum class DType { F32, F64, I32, I64, Other };

// A borrowed view of a numpy array's header.
struct Arr {
  PyObject* obj = nullptr;
  char* data = nullptr;
  int nd = 0;
  const Py_ssize_t* shape = nullptr;
  const Py_ssize_t* strides = nullptr;
  int flags = 0;
  char kind = 0;
  char byteorder = '=';
  DType dt = DType::Other;

  int64_t dim(int i) const { return static_cast<int64_t>(shape[i]); }
  int64_t size() const {
    int64_t s = 1;
    for (int i = 0; i < nd; ++i) s *= shape[i];
    return s;
  }
  int64_t itemsize() const { return (dt == DType::F32 || dt == DType::I32) ? 4 : 8; }
  bool c_contiguous() const { return flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_; }
  bool writeable() const { return flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_; }
  bool aligned() const { return flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_; }
  bool native() const { return byteorder != '>' && byteorder != '<' ? true : byteorder == '<'; }
  bool is_float() const { return dt == DType::F32 || dt == DType::F64; }
  bool is_index() const { return dt == DType::I32 || dt == DType::I64; }
  std::vector<py::ssize_t> shape_vec() const { return {shape, shape + nd}; }
};

inline bool is_ndarray(py::handle h) { return py::isinstance<py::array>(h); }

// Reads the header of an ndarray (the caller checked is_ndarray).
inline Arr view(py::handle h) {
  auto* a = py::detail::array_proxy(h.ptr());
  auto* d = py::detail::array_descriptor_proxy(a->descr);
  Arr r;
  r.obj = h.ptr();
  r.data = a->data;
  r.nd = a->nd;
  r.shape = a->dimensions;
  r.strides = a->strides;
  r.flags = a->flags;
  r.kind = d->kind;
  r.byteorder = d->byteorder;
  using api = py::detail::npy_api;
  const int t = d->type_num;
  const bool native = r.native();
  if (native) {
    if (t == api::NPY_FLOAT_) r.dt = DType::F32;
    else if (t == api::NPY_DOUBLE_) r.dt = DType::F64;
    else if (t == api::NPY_INT_ || (t == api::NPY_LONG_ && sizeof(long) == 4)) r.dt = DType::I32;
    else if ((t == api::NPY_LONG_ && sizeof(long) == 8) || t == api::NPY_LONGLONG_) r.dt = DType::I64;
  }
  return r;
}

inline std::string dtype_str(py::handle arr) {
  return py::str(arr.attr("dtype")).cast<std::string>();
}

// The item size of any ndarray (Arr::itemsize knows only the kernels' dtypes).
inline int64_t item_size(py::handle arr) {
  return static_cast<int64_t>(py::reinterpret_borrow<py::array>(arr).itemsize());
}

inline std::string type_name(py::handle h) {
  return py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>();
}

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  if (s.size() == 1) r += ",";
  return r + ")";
}

inline std::string shape_str(const Arr& a) {
  return shape_str(std::vector<int64_t>(a.shape, a.shape + a.nd));
}

// "[1, 3]" for flat position 7 of an id array of shape (2, 4); "" for 0-d ids.
inline std::string index_str(const Arr& ids, int64_t pos) {
  if (ids.nd == 0) return "";
  std::vector<int64_t> idx(ids.nd);
  for (int i = ids.nd - 1; i >= 0; --i) {
    const int64_t d = ids.dim(i);
    idx[i] = d > 0 ? pos % d : 0;
    pos = d > 0 ? pos / d : 0;
  }
  std::string r = "[";
  for (int i = 0; i < ids.nd; ++i) {
    if (i) r += ", ";
    r += std::to_string(idx[i]);
  }
  return r + "]";
}

// Value at flat position `pos` of a C-contiguous int32/int64 array.
inline int64_t id_at(const Arr& ids, int64_t pos) {
  return ids.dt == DType::I32 ? reinterpret_cast<const int32_t*>(ids.data)[pos]
                              : reinterpret_cast<const int64_t*>(ids.data)[pos];
}

[[noreturn]] inline void raise_bad_id(const Arr& ids, int64_t pos, int64_t rows,
                                      const char* name = "ids") {
  const int64_t v = id_at(ids, pos);
  std::string msg = std::string(name) + index_str(ids, pos) + " = " + std::to_string(v) +
                    " is out of range for a table of " + std::to_string(rows) + " rows";
  msg += rows > 0 ? " (valid ids: 0.." + std::to_string(rows - 1) + ")" : " (the table is empty)";
  throw py::index_error(msg);
}

// Checks that `h` is a native float32/float64 ndarray (any shape); `what` names it.
inline Arr float_array(py::handle h, const char* what) {
  if (!is_ndarray(h))
    throw py::type_error(std::string(what) + " must be a numpy array of float32 or float64, got " +
                         type_name(h));
  Arr t = view(h);
  if (!t.is_float() && t.kind == 'f' && !t.native())
    throw py::type_error(std::string(what) + " must be a native-endian float32 or float64 "
                         "array, got dtype " + dtype_str(h) + " (byte-swapped); convert it "
                         "with .astype(a.dtype.newbyteorder('='))");
  if (!t.is_float())
    throw py::type_error(std::string(what) + " must be a float32 or float64 array, got dtype " +
                         dtype_str(h));
  return t;
}

// Same, and 2-D (rows, dim).
inline Arr float_table(py::handle h, const char* what) {
  Arr t = float_array(h, what);
  if (t.nd != 2)
    throw py::value_error(std::string(what) + " must be 2-D (rows, dim), got shape " + shape_str(t));
  return t;
}

// A 2-D table that is only read (gather, bags): rows may be strided, but each row must
// be contiguous and aligned.  isz: the item size.
inline void check_readable_rows(const Arr& t, int64_t isz, py::handle h, const char* what) {
  const bool empty = t.dim(0) == 0 || t.dim(1) == 0;
  const bool rows_ok = empty || t.strides[1] == isz || t.dim(1) <= 1;
  const bool stride_ok = empty || t.dim(0) <= 1 ||
                         (t.strides[0] % isz == 0 && t.strides[0] >= t.dim(1) * isz);
  if (!rows_ok || !stride_ok || !t.aligned())
    throw py::value_error(std::string(what) + " rows must be contiguous and aligned (got strides " +
                          shape_str(std::vector<int64_t>(t.strides, t.strides + 2)) +
                          " for dtype " + dtype_str(h) + "); pass np.ascontiguousarray(" +
                          what + ")");
}
inline Arr readable_table(py::handle h, const char* what) {
  Arr t = float_table(h, what);
  check_readable_rows(t, t.itemsize(), h, what);
  return t;
}

// An array that will be written in place: never copied, so it must be usable as is.
inline void check_writable(const Arr& t, const char* what) {
  if (!t.writeable())
    throw py::value_error(std::string(what) +
                          " is read-only (e.g. a memory map opened with mode 'r'); in-place "
                          "updates need a writeable array");
  if (!t.c_contiguous() || !t.aligned())
    throw py::value_error(std::string(what) +
                          " must be a C-contiguous, aligned array to be updated in place (got a "
                          "strided or misaligned view; a copy would be updated instead). Use "
                          "np.ascontiguousarray and keep the result.");
}

// A float array of any shape, or a 2-D table, written in place.
inline Arr writable_array(py::handle h, const char* what) {
  Arr t = float_array(h, what);
  check_writable(t, what);
  return t;
}
inline Arr writable_table(py::handle h, const char* what) {
  Arr t = float_table(h, what);
  check_writable(t, what);
  return t;
}

// The bytes an array's elements can occupy: [lo, hi) from the lowest to the highest
// element its shape and strides reach (negative strides included), whether or not the
// bytes in between belong to it.  Comparing these spans, not start pointers and sizes, is
// what catches `out` placed between the rows of a row-strided table (issue 15).
struct Span {
  __int128 lo = 0, hi = 0;
  bool empty = true;
};

inline Span span_of(const Arr& a, int64_t itemsize) {
  Span s;
  const auto base = static_cast<__int128>(reinterpret_cast<uintptr_t>(a.data));
  __int128 lo = 0, hi = 0;
  for (int i = 0; i < a.nd; ++i) {
    if (a.shape[i] == 0) return s;
    const __int128 ext = static_cast<__int128>(a.shape[i] - 1) * a.strides[i];
    if (ext < 0) lo += ext;
    else hi += ext;
  }
  s.lo = base + lo;
  s.hi = base + hi + itemsize;
  s.empty = false;
  return s;
}

// Whether two arrays' memory spans intersect (conservative: two interleaved views that
// share no element still count; numpy's may_share_memory does the same).  ia, ib: the
// item sizes, for dtypes Arr::itemsize does not know (16-bit and 8-bit tables).
inline bool overlaps(const Arr& a, int64_t ia, const Arr& b, int64_t ib) {
  const Span x = span_of(a, ia), y = span_of(b, ib);
  return !x.empty && !y.empty && x.lo < y.hi && y.lo < x.hi;
}
inline bool overlaps(const Arr& a, const Arr& b) {
  return overlaps(a, a.itemsize(), b, b.itemsize());
}

// A caller-given gather output: exactly `want`, writeable, C-contiguous and aligned (it
// is written in place, never copied).
inline void check_gather_out(const Arr& o, const std::vector<int64_t>& want) {
  if (std::vector<int64_t>(o.shape, o.shape + o.nd) != want)
    throw py::value_error("out must have shape ids.shape + (dim,) = " + shape_str(want) +
                          ", got " + shape_str(o));
  if (!o.writeable()) throw py::value_error("out is read-only");
  if (!o.c_contiguous() || !o.aligned())
    throw py::value_error("out must be C-contiguous and aligned");
}

// Checks that an output of `shape` with items of `itemsize` bytes has an element count
// and a byte count that fit in a signed 64-bit size (numpy's limit too), before anything
// is allocated; returns the element count.  Shapes come from user arrays that may be
// stride tricks or sparse memory maps claiming huge sizes.
inline int64_t checked_output(const std::vector<int64_t>& shape, int64_t itemsize,
                              const char* what = "output") {
  int64_t n = 1, bytes = 0;
  bool ok = true;
  for (int64_t d : shape) ok = ok && d >= 0 && !__builtin_mul_overflow(n, d, &n);
  ok = ok && !__builtin_mul_overflow(n, itemsize, &bytes);
  if (!ok)
    throw py::value_error(std::string(what) + " of shape " + shape_str(shape) +
                          " is too large: its size in bytes does not fit in 64 bits");
  return n;
}

// The same check for ids.shape + (dim,), without building a shape on the way.
inline void checked_rows_output(const Arr& ids, int64_t dim, int64_t itemsize) {
  int64_t n, bytes;
  if (__builtin_mul_overflow(ids.size(), dim, &n) ||
      __builtin_mul_overflow(n, itemsize, &bytes)) {
    std::vector<int64_t> s(ids.shape, ids.shape + ids.nd);
    s.push_back(dim);
    checked_output(s, itemsize);
  }
}

// Ctrl-C for native calls that run with the GIL released.  Create it with the GIL held,
// pass hook() to a kernel that takes an fe::Interrupt, and call raise_if_set() once the
// GIL is back.  poll(), called by the kernel between chunks from the calling thread, takes
// the GIL at most every `period` and runs PyErr_CheckSignals(): Python's SIGINT handler
// raises KeyboardInterrupt there, which stays set in this thread until raise_if_set()
// throws it.  From any other thread poll() only reports what the calling thread saw.
// Only the main thread runs Python signal handlers, so calls from other threads are never
// interrupted (as in pure Python).
class SignalPoll {
 public:
  // No clock read here: small calls, never polled, pay nothing for it.  The first poll
  // (after a kernel's first piece of work, tens of ms into a long call) checks at once.
  explicit SignalPoll(std::chrono::milliseconds period = std::chrono::milliseconds(50))
      : period_(period), owner_(std::this_thread::get_id()), next_() {}
  SignalPoll(const SignalPoll&) = delete;
  SignalPoll& operator=(const SignalPoll&) = delete;

  fe::Interrupt hook() { return fe::Interrupt{&SignalPoll::thunk, this}; }

  bool poll() {
    if (stop_.load(std::memory_order_relaxed)) return true;
    if (std::this_thread::get_id() != owner_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + period_;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) stop_.store(true, std::memory_order_relaxed);
    return stop_.load(std::memory_order_relaxed);
  }

  // Checks now, with the GIL held (between chunks run by the binding itself).
  void check_now() {
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }

  bool stopped() const { return stop_.load(std::memory_order_relaxed); }

  // With the GIL held: throws the pending KeyboardInterrupt (or whatever the handler raised).
  void raise_if_set() {
    if (stopped()) throw py::error_already_set();
  }

 private:
  static bool thunk(void* self) { return static_cast<SignalPoll*>(self)->poll(); }

  std::chrono::milliseconds period_;
  std::thread::id owner_;
  std::chrono::steady_clock::time_point next_;
  std::atomic<bool> stop_{false};
};

// After a kernel reported fe::kInterrupted: raises the pending KeyboardInterrupt.
[[noreturn]] inline void raise_interrupted(SignalPoll& sig) {
  sig.raise_if_set();
  throw std::runtime_error("a native call stopped early without a pending signal");
}

// The ids of a call: a C-contiguous native int32/int64 ndarray, as fastembed._ids.as_ids
// makes them.  The Python layer normalizes every id argument before it calls a binding
// (one place for the rules: widths converted, floats, bools and strings refused); this
// only refuses what would otherwise be misread.
inline Arr ids_array(py::handle ids, const char* name = "ids") {
  if (is_ndarray(ids)) {
    Arr a = view(ids);
    if (a.is_index() && a.c_contiguous()) return a;
  }
  throw py::type_error(std::string(name) + " must be a C-contiguous int32 or int64 numpy array "
                       "(fastembed._ids.as_ids normalizes them), got " +
                       (is_ndarray(ids) ? "dtype " + dtype_str(ids) : type_name(ids)));
}

// A float input that is only read, as a C-contiguous array of the dtype of `like`:
// `values` itself when it is one, else a contiguous (or byte-order) copy.  Another dtype
// is refused, never cast.  Array-likes (lists) are converted by the Python layer first
// (fastembed._ids.as_values), which explains a ragged list.
inline py::object usable_values(py::handle values, const Arr& like, const char* name) {
  const char* want = like.dt == DType::F32 ? "float32" : "float64";
  if (!is_ndarray(values))
    throw py::type_error(std::string(name) + " must be a numpy array of dtype " + want +
                         ", got " + type_name(values));
  Arr a = view(values);
  if (a.dt == like.dt && a.c_contiguous() && a.aligned())
    return py::reinterpret_borrow<py::object>(values);
  if (a.kind != 'f')
    throw py::type_error(std::string(name) + " must be a float array, got dtype " +
                         dtype_str(values));
  if (a.dt != like.dt && !(a.dt == DType::Other && item_size(values) == like.itemsize()))
    throw py::type_error(std::string(name) + " must have dtype " + want + ", got " +
                         dtype_str(values));
  return py::module_::import("numpy").attr("ascontiguousarray")(values, want);
}

}  // namespace fe_py
