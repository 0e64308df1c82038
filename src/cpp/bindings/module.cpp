// fastembed._core: the one pybind11 module.  Each bind_*.cpp file registers one kernel
// family; this file registers the thread pool and the gather / scatter-add / coalesce ops.
// Bindings validate, take pointers, release the GIL, and map kernel results to errors.
#include "common.hpp"
#include "lowp.hpp"

#include "fe/gather.hpp"
#include "fe/parallel.hpp"
#include "fe/scatter.hpp"

namespace fe_py {

py::object ids_normalizer() {
  static py::object* f = new py::object(py::module_::import("fastembed._ids").attr("as_ids"));
  return *f;
}

py::object values_normalizer() {
  static py::object* f =
      new py::object(py::module_::import("fastembed._ids").attr("as_values"));
  return *f;
}

void init_bag(py::module_& m);
void init_optim(py::module_& m);
void init_vectors(py::module_& m);
void init_lowp(py::module_& m);

namespace {

template <class T, class I>
int64_t run_gather(const Arr& table, const Arr& ids, T* out, bool validate_first,
                   const fe::Interrupt& intr) {
  const T* tp = reinterpret_cast<const T*>(table.data);
  const I* ip = reinterpret_cast<const I*>(ids.data);
  const int64_t rows = table.dim(0), dim = table.dim(1);
  const int64_t stride = rows > 1 ? table.strides[0] / static_cast<int64_t>(sizeof(T)) : dim;
  const int64_t n = ids.size();
  py::gil_scoped_release nogil;
  if (validate_first) {
    int64_t bad = fe::find_bad_id(ip, n, rows, intr);
    if (bad != -1) return bad;
  }
  return fe::gather(tp, rows, dim, stride, ip, n, out, intr);
}


py::object gather(py::handle table_h, py::handle ids_h, py::handle out_h) {
  if (!is_ndarray(table_h) || view(table_h).dt == DType::Other) {
    py::object r = lowp_gather(table_h, ids_h, out_h);  // float16, bfloat16, quantized
    if (r) return r;
  }
  Arr table = readable_table(table_h, "table");
  py::object ids_o = usable_ids(ids_h);
  Arr ids = view(ids_o);
  std::vector<py::ssize_t> oshape = ids.shape_vec();
  oshape.push_back(table.dim(1));
  checked_rows_output(ids, table.dim(1), table.itemsize());

  py::object out_o;
  bool given = !out_h.is_none();
  if (given) {
    if (!is_ndarray(out_h))
      throw py::type_error("out must be a numpy array, got " + type_name(out_h));
    Arr o = view(out_h);
    if (o.dt != table.dt)
      throw py::type_error("out must have the table's dtype " + dtype_str(table_h) + ", got " +
                           dtype_str(out_h));
    check_gather_out(o, std::vector<int64_t>(oshape.begin(), oshape.end()));
    if (overlaps(o, table))
      throw py::value_error("out must not overlap the table's memory (it lies within the span "
                            "of the table's rows, e.g. a view into the same buffer)");
    if (overlaps(o, ids)) throw py::value_error("out must not overlap ids");
    out_o = py::reinterpret_borrow<py::object>(out_h);
  } else {
    out_o = table.dt == DType::F32 ? py::object(py::array_t<float>(oshape))
                                   : py::object(py::array_t<double>(oshape));
  }
  char* out_p = view(out_o).data;
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  int64_t bad;
  if (table.dt == DType::F32) {
    auto* op = reinterpret_cast<float*>(out_p);
    bad = ids.dt == DType::I32 ? run_gather<float, int32_t>(table, ids, op, given, intr)
                               : run_gather<float, int64_t>(table, ids, op, given, intr);
  } else {
    auto* op = reinterpret_cast<double*>(out_p);
    bad = ids.dt == DType::I32 ? run_gather<double, int32_t>(table, ids, op, given, intr)
                               : run_gather<double, int64_t>(table, ids, op, given, intr);
  }
  if (bad == fe::kInterrupted) raise_interrupted(sig);
  if (bad >= 0) raise_bad_id(ids, bad, table.dim(0));
  return out_o;
}

// Checks values against ids.shape + (dim,) exactly (no broadcasting, no reshaping).
void check_values_shape(const Arr& values, const Arr& ids, int64_t dim, const char* what) {
  std::vector<int64_t> want(ids.shape, ids.shape + ids.nd);
  want.push_back(dim);
  if (std::vector<int64_t>(values.shape, values.shape + values.nd) != want)
    throw py::value_error(std::string(what) + " must have shape ids.shape + (dim,) = " +
                          shape_str(want) + ", got " + shape_str(values));
}

void scatter_add(py::handle target_h, py::handle ids_h, py::handle values_h, double scale) {
  if ((!is_ndarray(target_h) || view(target_h).dt == DType::Other) &&
      lowp_scatter_add(target_h, ids_h, values_h, scale))
    return;
  Arr target = writable_table(target_h, "target");
  py::object ids_o = usable_ids(ids_h);
  Arr ids = view(ids_o);
  if (is_ndarray(values_h) && view(values_h).is_float() && view(values_h).dt != target.dt)
    throw py::type_error("values must have the target's dtype " + dtype_str(target_h) +
                         ", got " + dtype_str(values_h));
  py::object values_o = usable_values(values_h, target, "values");
  Arr values = view(values_o);
  check_values_shape(values, ids, target.dim(1), "values");
  if (overlaps(values, target)) throw py::value_error("values must not overlap the target");
  if (overlaps(ids, target)) throw py::value_error("ids must not overlap the target");
  const int64_t rows = target.dim(0), dim = target.dim(1), n = ids.size();
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    auto go = [&](auto t, auto i) {
      using T = decltype(t);
      using I = decltype(i);
      return fe::scatter_add<T, I>(reinterpret_cast<T*>(target.data), rows, dim,
                                   reinterpret_cast<const I*>(ids.data), n,
                                   reinterpret_cast<const T*>(values.data), static_cast<T>(scale));
    };
    if (target.dt == DType::F32)
      bad = ids.dt == DType::I32 ? go(float{}, int32_t{}) : go(float{}, int64_t{});
    else
      bad = ids.dt == DType::I32 ? go(double{}, int32_t{}) : go(double{}, int64_t{});
  }
  if (bad >= 0) raise_bad_id(ids, bad, rows);
}

// A zero-filled (rows, dim) array whose data starts on a 64-byte cache line (numpy's own
// large allocations start 16 bytes past one): rows of whole cache lines then never share
// a line, which the kernels' column split relies on (measured: 25% faster summing).  For
// large outputs it is a view of a numpy uint8 buffer; numpy owns the memory.
py::object zeros_aligned(py::ssize_t rows, py::ssize_t dim, DType dt) {
  const char* name = dt == DType::F32 ? "float32" : "float64";
  const py::ssize_t item = dt == DType::F32 ? 4 : 8;
  const py::ssize_t nbytes = checked_output(std::vector<int64_t>{rows, dim}, item) * item;
  if (nbytes > PY_SSIZE_T_MAX - 64)
    throw py::value_error("output of shape " + shape_str(std::vector<int64_t>{rows, dim}) + " is too large");
  py::module_ np = py::module_::import("numpy");
  if (nbytes < (py::ssize_t(1) << 20)) return np.attr("zeros")(py::make_tuple(rows, dim), name);
  py::object buf = np.attr("zeros")(nbytes + 64, "uint8");
  const auto addr = reinterpret_cast<uintptr_t>(view(buf).data);
  const py::ssize_t off = static_cast<py::ssize_t>((64 - addr % 64) % 64);
  return buf[py::slice(off, off + nbytes, 1)].attr("view")(name).attr("reshape")(rows, dim);
}

fe::CoalescePlan& thread_plan() {
  static thread_local fe::CoalescePlan plan;
  return plan;
}

py::tuple coalesce(py::handle ids_h, py::handle values_h) {
  py::object ids_o = usable_ids(ids_h);
  Arr ids = view(ids_o);
  if (!is_ndarray(values_h) || !view(values_h).is_float())
    throw py::type_error("values must be a float32 or float64 numpy array, got " +
                         (is_ndarray(values_h) ? "dtype " + dtype_str(values_h)
                                               : type_name(values_h)));
  Arr v0 = view(values_h);
  if (v0.nd != ids.nd + 1)
    throw py::value_error("values must have shape ids.shape + (dim,), got " + shape_str(v0) +
                          " for ids of shape " + shape_str(ids));
  py::object values_o = usable_values(values_h, v0, "values");
  Arr values = view(values_o);
  const int64_t dim = values.dim(values.nd - 1);
  check_values_shape(values, ids, dim, "values");
  // Kept by this thread between calls (fresh large vectors cost page faults every call),
  // up to half of fe::kKeepScratchBytes; the kernel's own scratch takes the other half.
  fe::CoalescePlan& plan = thread_plan();
  struct TrimAtExit {
    fe::CoalescePlan& p;
    ~TrimAtExit() { p.trim(fe::kKeepScratchBytes / 2); }
  } trim_at_exit{plan};
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  int64_t neg;
  {
    py::gil_scoped_release nogil;
    neg = ids.dt == DType::I32
              ? fe::coalesce_plan(reinterpret_cast<const int32_t*>(ids.data), ids.size(), plan, intr)
              : fe::coalesce_plan(reinterpret_cast<const int64_t*>(ids.data), ids.size(), plan, intr);
  }
  if (neg == fe::kInterrupted) raise_interrupted(sig);
  if (neg >= 0)
    throw py::index_error("ids" + index_str(ids, neg) + " = " + std::to_string(id_at(ids, neg)) +
                          " is negative; ids must be >= 0");
  const py::ssize_t u = static_cast<py::ssize_t>(plan.unique.size());
  py::array_t<int64_t> uniq(u);
  std::copy(plan.unique.begin(), plan.unique.end(), uniq.mutable_data());
  py::object out = zeros_aligned(u, dim, values.dt);
  char* op = view(out).data;
  bool done;
  {
    py::gil_scoped_release nogil;
    if (values.dt == DType::F32)
      done = fe::coalesce_sum(plan, reinterpret_cast<const float*>(values.data), dim,
                              reinterpret_cast<float*>(op), intr);
    else
      done = fe::coalesce_sum(plan, reinterpret_cast<const double*>(values.data), dim,
                              reinterpret_cast<double*>(op), intr);
  }
  if (!done) raise_interrupted(sig);
  return py::make_tuple(uniq, out);
}

}  // namespace
}  // namespace fe_py

PYBIND11_MODULE(_core, m) {
  using namespace fe_py;
  m.doc() = "fastembed native kernels (internal; use fastembed.ops)";
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
    py::gil_scoped_release nogil;
    fe::set_num_threads(n);
  }, py::arg("n"), R"doc(Set the number of threads the native kernels use (including the caller).

Results never depend on it: every kernel is bit-for-bit identical for any thread count.
The default is the number of cores this process may run on (os.sched_getaffinity).)doc");
  m.def("get_num_threads", &fe::get_num_threads,
        "The number of threads the native kernels use (see set_num_threads).");
  m.def("available_cores", &fe::available_cores,
        "The cores this process may run on (sched_getaffinity).");
  m.def("gather", &gather, py::arg("table"), py::arg("ids"), py::arg("out") = py::none(),
        R"doc(Look up rows: ``out[...] = table[ids]`` (the forward pass of an embedding).

Parameters
----------
table : ndarray, float32 or float64, shape (rows, dim)
    Rows must be contiguous; a row-strided view or a read-only / memory-mapped table
    is fine (it is only read).
ids : array-like of int, any shape (0-d, empty and non-contiguous included)
    int32 and int64 are used directly, other integer widths are converted.  Float,
    bool and string ids raise TypeError.  Every id must lie in [0, rows): negative ids
    never wrap.
out : ndarray, optional
    C-contiguous array of shape ``ids.shape + (dim,)`` and the table's dtype.  Its memory
    must not overlap the table's (the whole span from the first to the last row, gaps of
    a strided table included) nor the ids'.

Returns
-------
ndarray of shape ``ids.shape + (dim,)`` (``out`` when given).

Raises
------
IndexError
    For the first id outside [0, rows), naming it and its position; ``out`` is then
    left untouched.
TypeError, ValueError
    For a wrong dtype, shape or memory layout, or an output too large for 64-bit sizes,
    saying what was expected.
KeyboardInterrupt
    Ctrl-C stops a long gather within about a second.  A given ``out`` may then be
    partly written (the table and ids never are).
)doc");
  m.def("scatter_add", &scatter_add, py::arg("target"), py::arg("ids"), py::arg("values"),
        py::arg("scale") = 1.0,
        R"doc(In place: ``target[ids[i]] += scale * values[i]`` for every position, duplicates summed.

The backward pass of a lookup.  Equal bit for bit to
``np.add.at(target, ids, scale * values)``, for any thread count.

Parameters
----------
target : ndarray, float32 or float64, shape (rows, dim)
    Updated in place, so it must be writeable, C-contiguous and aligned (never
    silently copied).
ids : array-like of int, any shape
    Every id must lie in [0, rows).
values : ndarray of shape exactly ``ids.shape + (dim,)`` and the target's dtype
    No broadcasting or reshaping.
scale : float

Raises
------
IndexError
    For the first bad id (with its position); nothing has been written.
TypeError, ValueError
    For wrong dtypes, shapes, a read-only / non-contiguous target, or values or ids
    whose memory overlaps the target's.

Notes
-----
Ctrl-C does not stop a scatter_add midway: the update runs to its end (a table is never
left half updated) and KeyboardInterrupt is raised right after it.
)doc");
  m.def("coalesce", &coalesce, py::arg("ids"), py::arg("values"),
        R"doc(Sum the rows of duplicate ids: returns ``(unique_ids, summed_values)``.

``unique_ids`` is the sorted unique int64 ids, ``summed_values[k]`` the sum (in index
order, starting from 0.0) of ``values[i]`` over the positions i with ``ids[i] ==
unique_ids[k]``; equal bit for bit to ``np.unique`` + ``np.add.at`` on zeros.

Parameters
----------
ids : array-like of int, any shape; ids must be >= 0
values : ndarray float32 or float64 of shape ``ids.shape + (dim,)``

Raises
------
IndexError
    For a negative id, naming it and its position.
KeyboardInterrupt
    Ctrl-C stops a long coalesce within about a second (nothing is returned).

Notes
-----
The calling thread keeps up to 16 MiB of scratch between calls (no page faults for
batches up to ~0.4M ids); larger scratch is returned to the OS when the call ends.
)doc");
  m.def("_coalesce_scratch_bytes", [] {
    return static_cast<int64_t>(fe::coalesce_scratch_held() + thread_plan().held());
  }, "Bytes of coalesce scratch the calling thread keeps between calls (for tests).");
  init_bag(m);
  init_optim(m);
  init_vectors(m);
  init_lowp(m);
}
