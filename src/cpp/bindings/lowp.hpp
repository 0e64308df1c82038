// Recognising float16 / bfloat16 tables and QuantizedTable objects in the bindings.
// The float32/float64 paths never get here: each op first checks its fast path, and only
// an ndarray of another dtype (or a non-array) is looked at by lowp_arg().
#pragma once

#include "common.hpp"
#include "fe/lowp.hpp"

namespace fe_py {

struct LowpArg {
  bool ok = false;
  bool quantized = false;
  fe::LowpTable t;
  py::object codes;  // keeps the QuantizedTable's array alive during the call
};

inline const char* lowp_name(fe::LowpKind k) {
  switch (k) {
    case fe::LowpKind::F16: return "float16";
    case fe::LowpKind::BF16: return "bfloat16";
    case fe::LowpKind::Q8: return "8-bit quantized";
    default: return "4-bit quantized";
  }
}

// F16 / BF16 for a native float16 / bfloat16 ndarray, else -1.  bfloat16 is ml_dtypes'
// dtype, recognised by name (fastembed never imports ml_dtypes itself).
inline int half_kind(py::handle h) {
  if (!is_ndarray(h)) return -1;
  auto* a = py::detail::array_proxy(h.ptr());
  auto* d = py::detail::array_descriptor_proxy(a->descr);
  constexpr int kNpyHalf = 23;  // NPY_HALF
  if (d->type_num == kNpyHalf) return d->byteorder == '>' ? -1 : int(fe::LowpKind::F16);
  if (d->type_num >= 256) {  // a user dtype: ml_dtypes registers bfloat16
    if (py::str(h.attr("dtype").attr("name")).cast<std::string>() == "bfloat16")
      return int(fe::LowpKind::BF16);
  }
  return -1;
}

// Describes `h` when it is a float16/bfloat16 2-D table or a fastembed QuantizedTable;
// ok == false for anything else (the caller then raises its usual errors).  Throws
// ValueError for such a table of the wrong shape or layout.
inline LowpArg lowp_arg(py::handle h, const char* what) {
  LowpArg r;
  const int hk = half_kind(h);
  if (hk >= 0) {
    Arr t = view(h);
    if (t.nd != 2)
      throw py::value_error(std::string(what) + " must be 2-D (rows, dim), got shape " +
                            shape_str(t));
    check_readable_rows(t, 2, h, what);
    r.ok = true;
    r.t.kind = static_cast<fe::LowpKind>(hk);
    r.t.data = t.data;
    r.t.rows = t.dim(0);
    r.t.dim = t.dim(1);
    r.t.stride = t.dim(0) > 1 ? t.strides[0] / 2 : t.dim(1);
    return r;
  }
  if (is_ndarray(h) || !py::hasattr(h, "_fe_quantized_rows")) return r;
  const int bits = h.attr("bits").cast<int>();
  py::object data = h.attr("data");
  const int64_t dim = h.attr("shape").cast<py::tuple>()[1].cast<int64_t>();
  const int64_t cb = bits == 8 ? dim : (dim + 1) / 2;
  if (!is_ndarray(data) || (bits != 8 && bits != 4))
    throw py::value_error(std::string(what) + " is a malformed QuantizedTable");
  Arr c = view(data);
  if (c.nd != 2 || c.kind != 'u' || item_size(data) != 1 || c.dim(1) != cb + 8 ||
      !c.c_contiguous())
    throw py::value_error(std::string(what) + " is a malformed QuantizedTable (data must be a "
                          "C-contiguous (rows, " + std::to_string(cb + 8) + ") uint8 array)");
  r.ok = true;
  r.quantized = true;
  r.t.kind = bits == 8 ? fe::LowpKind::Q8 : fe::LowpKind::Q4;
  r.t.data = c.data;
  r.t.rows = c.dim(0);
  r.t.dim = dim;
  r.t.stride = cb + 8;
  r.codes = std::move(data);
  return r;
}

// The op-level entry points for these tables (bind_lowp.cpp); each returns a null object
// (or false) when `table` is not one of them.
py::object lowp_gather(py::handle table_h, py::handle ids_h, py::handle out_h);
bool lowp_scatter_add(py::handle target_h, py::handle ids_h, py::handle values_h, double scale);

}  // namespace fe_py
