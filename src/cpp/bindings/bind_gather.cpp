// Bindings of the gather kernels (fe/gather.hpp): fastembed.ops.gather's native half.
// float16 / bfloat16 / quantized tables go to bind_lowp.cpp.
#include <vector>

#include "common.hpp"
#include "lowp.hpp"

#include "fe/gather.hpp"

namespace fe_py {
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
  Arr ids = ids_array(ids_h);
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

}  // namespace

void init_gather(py::module_& m) {
  m.def("gather", &gather, py::arg("table"), py::arg("ids"), py::arg("out") = py::none(),
        "out[...] = table[ids] (fastembed.ops.gather documents it; ids already normalized).");
}

}  // namespace fe_py
