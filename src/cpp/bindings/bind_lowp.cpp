// Bindings for float16 / bfloat16 / row-quantized tables (fe/lowp.hpp): gather and
// scatter_add on them (called from bind_gather.cpp / bind_scatter.cpp when the table is one of these), and the
// portable conversions exposed for the tests.
#include "lowp.hpp"

#include "fe/gather.hpp"

namespace fe_py {

py::object lowp_gather(py::handle table_h, py::handle ids_h, py::handle out_h) {
  LowpArg la = lowp_arg(table_h, "table");
  if (!la.ok) return py::object();
  const fe::LowpTable& t = la.t;
  Arr ids = ids_array(ids_h);
  std::vector<py::ssize_t> oshape = ids.shape_vec();
  oshape.push_back(static_cast<py::ssize_t>(t.dim));
  const std::vector<int64_t> want(oshape.begin(), oshape.end());
  const bool half = !la.quantized;
  checked_output(want, half ? 2 : 4);
  const bool given = !out_h.is_none();
  py::object out_o;
  if (given) {
    if (!is_ndarray(out_h))
      throw py::type_error("out must be a numpy array, got " + type_name(out_h));
    Arr o = view(out_h);
    if (half ? half_kind(out_h) != int(t.kind) : o.dt != DType::F32)
      throw py::type_error(std::string("out must have dtype ") +
                           (half ? dtype_str(table_h) : std::string("float32")) +
                           (half ? " (the table's)" : " (a quantized table dequantizes into float32)") +
                           ", got " + dtype_str(out_h));
    check_gather_out(o, want);
    const int64_t osz = half ? 2 : 4;
    if (half ? overlaps(o, osz, view(table_h), 2)
             : overlaps(o, osz, view(la.codes), 1))
      throw py::value_error("out must not overlap the table's memory");
    if (overlaps(o, osz, ids, ids.itemsize())) throw py::value_error("out must not overlap ids");
    out_o = py::reinterpret_borrow<py::object>(out_h);
  } else if (half) {
    py::tuple shp(oshape.size());
    for (size_t k = 0; k < oshape.size(); ++k) shp[k] = py::int_(oshape[k]);
    out_o = py::module_::import("numpy").attr("empty")(shp, table_h.attr("dtype"));
  } else {
    out_o = py::array_t<float>(oshape);
  }
  char* op = view(out_o).data;
  const int64_t n = ids.size();
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    auto go = [&](auto i) -> int64_t {
      using I = decltype(i);
      const I* ip = reinterpret_cast<const I*>(ids.data);
      if (given) {
        const int64_t b = fe::find_bad_id(ip, n, t.rows, intr);
        if (b != -1) return b;
      }
      if (half)
        return fe::gather<uint16_t, I>(static_cast<const uint16_t*>(t.data), t.rows, t.dim,
                                       t.stride, ip, n, reinterpret_cast<uint16_t*>(op), intr);
      return fe::lowp_gather_f32<I>(t, ip, n, reinterpret_cast<float*>(op), intr);
    };
    bad = ids.dt == DType::I32 ? go(int32_t{}) : go(int64_t{});
  }
  if (bad == fe::kInterrupted) raise_interrupted(sig);
  if (bad >= 0) raise_bad_id(ids, bad, t.rows);
  return out_o;
}

bool lowp_scatter_add(py::handle target_h, py::handle ids_h, py::handle values_h,
                      double scale) {
  if (!is_ndarray(target_h) && py::hasattr(target_h, "_fe_quantized_rows"))
    throw py::type_error("scatter_add cannot update a QuantizedTable: its codes are read-only "
                         "(dequantize() it into a float32 table to update it)");
  const int hk = half_kind(target_h);
  if (hk < 0) return false;
  LowpArg la = lowp_arg(target_h, "target");
  Arr target = view(target_h);
  check_writable(target, "target");
  Arr ids = ids_array(ids_h);
  if (!is_ndarray(values_h) || half_kind(values_h) != hk)
    throw py::type_error("values must have the target's dtype " + dtype_str(target_h) +
                         ", got " +
                         (is_ndarray(values_h) ? dtype_str(values_h) : type_name(values_h)));
  py::object values_o = py::reinterpret_borrow<py::object>(values_h);
  if (!view(values_o).c_contiguous() || !view(values_o).aligned())
    values_o = py::module_::import("numpy").attr("ascontiguousarray")(values_h);
  Arr values = view(values_o);
  std::vector<int64_t> want(ids.shape, ids.shape + ids.nd);
  want.push_back(la.t.dim);
  if (std::vector<int64_t>(values.shape, values.shape + values.nd) != want)
    throw py::value_error("values must have shape ids.shape + (dim,) = " + shape_str(want) +
                          ", got " + shape_str(values));
  if (overlaps(values, 2, target, 2))
    throw py::value_error("values must not overlap the target");
  if (overlaps(ids, ids.itemsize(), target, 2))
    throw py::value_error("ids must not overlap the target");
  int64_t bad;
  const float sc = static_cast<float>(scale);
  {
    py::gil_scoped_release nogil;
    const auto* vp = reinterpret_cast<const uint16_t*>(values.data);
    bad = ids.dt == DType::I32
              ? fe::half_scatter_add(la.t, reinterpret_cast<const int32_t*>(ids.data), ids.size(), vp, sc)
              : fe::half_scatter_add(la.t, reinterpret_cast<const int64_t*>(ids.data), ids.size(), vp, sc);
  }
  if (bad >= 0) raise_bad_id(ids, bad, la.t.rows);
  return true;
}

void init_lowp(py::module_& m) {
  // For the tests: the portable conversions, element by element.
  m.def("_half_to_float", [](py::array_t<uint16_t, py::array::c_style> src, bool bf) {
    py::array_t<float> out(src.size());
    fe::lowp_to_f32(bf ? fe::LowpKind::BF16 : fe::LowpKind::F16, src.data(), src.size(),
                    out.mutable_data());
    return out;
  });
  m.def("_float_to_half", [](py::array_t<float, py::array::c_style> src, bool bf) {
    py::array_t<uint16_t> out(src.size());
    fe::f32_to_lowp(bf ? fe::LowpKind::BF16 : fe::LowpKind::F16, src.data(), src.size(),
                    out.mutable_data());
    return out;
  });
  m.def("_lowp_simd", &fe::lowp_use_simd, "Whether the AVX2/F16C paths of the half and "
        "quantized kernels are used (FASTEMBED_CPU=baseline turns them off).");
}

}  // namespace fe_py
