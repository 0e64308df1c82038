// Bindings of the scatter-add and coalesce kernels (fe/scatter.hpp): the native half of
// fastembed.ops.scatter_add and fastembed.ops.coalesce.  float16 / bfloat16 targets go to
// bind_lowp.cpp.
#include <algorithm>
#include <vector>

#include "common.hpp"
#include "lowp.hpp"

#include "fe/scatter.hpp"

namespace fe_py {
namespace {

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
  Arr ids = ids_array(ids_h);
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
  Arr ids = ids_array(ids_h);
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

void init_scatter(py::module_& m) {
  m.def("scatter_add", &scatter_add, py::arg("target"), py::arg("ids"), py::arg("values"),
        py::arg("scale") = 1.0,
        "target[ids[i]] += scale * values[i] in place (fastembed.ops.scatter_add documents it).");
  m.def("coalesce", &coalesce, py::arg("ids"), py::arg("values"),
        "(unique_ids, summed_values) (fastembed.ops.coalesce documents it).");
  m.def("_coalesce_scratch_bytes", [] {
    return static_cast<int64_t>(fe::coalesce_scratch_held() + thread_plan().held());
  }, "Bytes of coalesce scratch the calling thread keeps between calls (for tests).");
}

}  // namespace fe_py
