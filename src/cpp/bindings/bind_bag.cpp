// Bindings for the bag kernels (fe/bag.hpp): embedding_bag forward and its backward.
// Everything is validated here, before any output is allocated; the kernels then only
// report an id that is out of range (or changed under us), which becomes an IndexError.
#include "common.hpp"
#include "lowp.hpp"

#include "fe/bag.hpp"  // instantiated once, in fe/bag.cpp (fe_kernels)


namespace fe_py {
namespace {

fe::BagMode parse_mode(py::handle mode_h) {
  if (py::isinstance<py::str>(mode_h)) {
    const std::string m = mode_h.cast<std::string>();
    if (m == "sum") return fe::BagMode::Sum;
    if (m == "mean") return fe::BagMode::Mean;
    if (m == "max") return fe::BagMode::Max;
  }
  throw py::value_error("mode must be 'sum', 'mean' or 'max', got " +
                        py::repr(mode_h).cast<std::string>());
}

// The validated inputs of one bag call.  Offsets are copied (the values checked are
// the values used, whatever another thread does to the caller's buffer).
struct BagArgs {
  py::object psw_o;
  Arr ids;
  std::vector<int64_t> offsets;
  fe::BagLayout lay;
  fe::BagMode mode = fe::BagMode::Sum;
  const char* psw = nullptr;
  bool mask = false;
};

BagArgs bag_args(const Arr& table, py::handle ids_h, py::handle offsets_h, py::handle mode_h,
                 py::handle psw_h, bool mask_zero) {
  BagArgs a;
  a.mode = parse_mode(mode_h);
  a.mask = mask_zero;
  a.ids = ids_array(ids_h);
  const Arr& ids = a.ids;
  a.lay.n = ids.size();
  if (offsets_h.is_none()) {
    if (ids.nd != 2)
      throw py::value_error("ids must be 2-D (bags, bag_size) when offsets is None, got shape " +
                            shape_str(ids) + " (1-D ids need offsets)");
    a.lay.nbags = ids.dim(0);
    a.lay.fixed = ids.dim(1);
  } else {
    if (ids.nd != 1)
      throw py::value_error("ids must be 1-D when offsets are given, got shape " +
                            shape_str(ids));
    Arr off = ids_array(offsets_h, "offsets");
    if (off.nd != 1)
      throw py::value_error("offsets must be 1-D, got shape " + shape_str(off));
    const int64_t nb = off.dim(0);
    a.offsets.resize(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b) a.offsets[b] = id_at(off, b);
    if (nb == 0 && a.lay.n > 0)
      throw py::value_error("offsets is empty but ids holds " + std::to_string(a.lay.n) +
                            " ids; offsets must start with 0");
    int kind = 0;
    const int64_t bad = fe::check_offsets(a.offsets.data(), nb, a.lay.n, &kind);
    if (bad >= 0) {
      const std::string at = "offsets[" + std::to_string(bad) + "]=" +
                             std::to_string(a.offsets[bad]);
      if (kind == fe::kOffsetFirst)
        throw py::value_error("offsets[0] must be 0, got " + at);
      if (kind == fe::kOffsetDecreasing)
        throw py::value_error("offsets must be non-decreasing: " + at + " < offsets[" +
                              std::to_string(bad - 1) + "]=" +
                              std::to_string(a.offsets[bad - 1]));
      throw py::value_error("offsets must be <= len(ids) = " + std::to_string(a.lay.n) +
                            ": " + at);
    }
    a.lay.nbags = nb;
    a.lay.offsets = a.offsets.data();
  }
  if (!psw_h.is_none()) {
    if (a.mode == fe::BagMode::Max)
      throw py::value_error("per_sample_weights are only supported for mode 'sum' and 'mean', "
                            "got mode 'max'");
    if (is_ndarray(psw_h) && view(psw_h).is_float() && view(psw_h).dt != table.dt)
      throw py::type_error("per_sample_weights must have the table's dtype " +
                           std::string(table.dt == DType::F32 ? "float32" : "float64") +
                           ", got " + dtype_str(psw_h));
    a.psw_o = usable_values(psw_h, table, "per_sample_weights");
    Arr p = view(a.psw_o);
    if (p.shape_vec() != ids.shape_vec())
      throw py::value_error("per_sample_weights must have the shape of ids " + shape_str(ids) +
                            ", got " + shape_str(p));
    a.psw = p.data;
  }
  return a;
}

// The outputs of one forward call: out (bags, dim) of dtype `dt` and, for max when asked,
// the argmax (bags, dim) int64 (else None).  Sizes are checked before anything is allocated.
struct BagOut {
  py::object out, argmax = py::none();
  char* out_p = nullptr;
  int64_t* am = nullptr;
};

BagOut bag_outputs(int64_t nb, int64_t dim, DType dt, bool want_argmax, fe::BagMode mode) {
  std::vector<py::ssize_t> oshape{static_cast<py::ssize_t>(nb), static_cast<py::ssize_t>(dim)};
  checked_output({nb, dim}, 8);  // out (itemsize <= 8) and argmax (int64)
  BagOut o;
  o.out = dt == DType::F32 ? py::object(py::array_t<float>(oshape))
                           : py::object(py::array_t<double>(oshape));
  o.out_p = view(o.out).data;
  if (want_argmax && mode == fe::BagMode::Max) {
    py::array_t<int64_t> am_arr(oshape);
    o.am = am_arr.mutable_data();
    o.argmax = std::move(am_arr);
  }
  return o;
}

// embedding_bag over a float16 / bfloat16 / quantized table: float32 weights and output.
py::tuple lowp_embedding_bag(const LowpArg& la, py::handle table_h, py::handle ids_h,
                             py::handle offsets_h, py::handle mode_h, py::handle psw_h,
                             bool mask_zero, bool want_argmax) {
  const fe::LowpTable& t = la.t;
  // Weights: float32, or the table's own half dtype (upcast exactly).
  py::object psw_o = py::reinterpret_borrow<py::object>(psw_h);
  if (is_ndarray(psw_h)) {
    const int pk = half_kind(psw_h);
    if (pk >= 0 && !la.quantized && pk == int(t.kind))
      psw_o = psw_h.attr("astype")("float32");
    else if (view(psw_h).kind == 'f' || pk >= 0 || item_size(psw_h) == 2) {
      if (view(psw_h).dt != DType::F32)
        throw py::type_error(std::string("per_sample_weights must be float32") +
                             (la.quantized ? "" : " or the table's dtype") + " for a " +
                             lowp_name(t.kind) + " table, got " + dtype_str(psw_h));
    }
  }
  Arr like;
  like.dt = DType::F32;
  BagArgs a = bag_args(like, ids_h, offsets_h, mode_h, psw_o, mask_zero);
  BagOut o = bag_outputs(a.lay.nbags, t.dim, DType::F32, want_argmax, a.mode);
  auto* op = reinterpret_cast<float*>(o.out_p);
  int64_t* am = o.am;
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    const auto* psw = reinterpret_cast<const float*>(a.psw);
    bad = a.ids.dt == DType::I32
              ? fe::lowp_bag_forward(t, reinterpret_cast<const int32_t*>(a.ids.data), a.lay,
                                     a.mode, psw, a.mask, op, am, intr)
              : fe::lowp_bag_forward(t, reinterpret_cast<const int64_t*>(a.ids.data), a.lay,
                                     a.mode, psw, a.mask, op, am, intr);
  }
  (void)table_h;
  if (bad == fe::kInterrupted) raise_interrupted(sig);
  if (bad >= 0) raise_bad_id(a.ids, bad, t.rows);
  return py::make_tuple(o.out, o.argmax);
}

py::tuple embedding_bag(py::handle table_h, py::handle ids_h, py::handle offsets_h,
                        py::handle mode_h, py::handle psw_h, bool mask_zero, bool want_argmax) {
  if (!is_ndarray(table_h) || view(table_h).dt == DType::Other) {
    LowpArg la = lowp_arg(table_h, "table");
    if (la.ok)
      return lowp_embedding_bag(la, table_h, ids_h, offsets_h, mode_h, psw_h, mask_zero,
                                want_argmax);
  }
  Arr table = readable_table(table_h, "table");
  BagArgs a = bag_args(table, ids_h, offsets_h, mode_h, psw_h, mask_zero);
  const int64_t rows = table.dim(0), dim = table.dim(1), nb = a.lay.nbags;
  const int64_t stride = rows > 1 ? table.strides[0] / table.itemsize() : dim;
  BagOut o = bag_outputs(nb, dim, table.dt, want_argmax, a.mode);
  char* op = o.out_p;
  int64_t* am = o.am;
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    auto go = [&](auto t, auto i) {
      using T = decltype(t);
      using I = decltype(i);
      return fe::bag_forward<T, I>(reinterpret_cast<const T*>(table.data), rows, dim, stride,
                                   reinterpret_cast<const I*>(a.ids.data), a.lay, a.mode,
                                   reinterpret_cast<const T*>(a.psw), a.mask,
                                   reinterpret_cast<T*>(op), am, intr);
    };
    if (table.dt == DType::F32)
      bad = a.ids.dt == DType::I32 ? go(float{}, int32_t{}) : go(float{}, int64_t{});
    else
      bad = a.ids.dt == DType::I32 ? go(double{}, int32_t{}) : go(double{}, int64_t{});
  }
  if (bad == fe::kInterrupted) raise_interrupted(sig);
  if (bad >= 0) raise_bad_id(a.ids, bad, rows);
  return py::make_tuple(o.out, o.argmax);
}

py::tuple embedding_bag_backward(py::handle grad_h, py::handle ids_h, py::handle offsets_h,
                                 py::handle mode_h, py::handle psw_h, bool mask_zero,
                                 py::handle argmax_h, int64_t rows) {
  if (rows < 0) throw py::value_error("rows must be >= 0, got " + std::to_string(rows));
  Arr g0 = float_table(grad_h, "grad_output");
  py::object grad_o = usable_values(grad_h, g0, "grad_output");
  Arr grad = view(grad_o);
  BagArgs a = bag_args(grad, ids_h, offsets_h, mode_h, psw_h, mask_zero);
  const int64_t dim = grad.dim(1);
  if (grad.dim(0) != a.lay.nbags)
    throw py::value_error("grad_output must have shape (bags, dim) = (" +
                          std::to_string(a.lay.nbags) + ", " + std::to_string(dim) +
                          "), got " + shape_str(grad));
  py::object am_o;
  const int64_t* am = nullptr;
  if (a.mode == fe::BagMode::Max) {
    if (!is_ndarray(argmax_h) || view(argmax_h).dt != DType::I64 ||
        !view(argmax_h).c_contiguous() || !view(argmax_h).aligned())
      throw py::type_error("argmax must be a C-contiguous int64 array (from the forward pass)");
    Arr m = view(argmax_h);
    if (m.nd != 2 || m.dim(0) != a.lay.nbags || m.dim(1) != dim)
      throw py::value_error("argmax must have shape " + shape_str(grad) + ", got " +
                            shape_str(m));
    am_o = py::reinterpret_borrow<py::object>(argmax_h);
    am = reinterpret_cast<const int64_t*>(m.data);
  }
  int64_t bad = -1;
  py::object uniq_o, vals_o;
  SignalPoll sig;
  const fe::Interrupt intr = sig.hook();
  auto run = [&](auto t) {
    using T = decltype(t);
    fe::BagGrad<T> g;
    {
      py::gil_scoped_release nogil;
      auto go = [&](auto i) {
        using I = decltype(i);
        return fe::bag_backward_plan<T, I>(dim, reinterpret_cast<const I*>(a.ids.data), a.lay,
                                           a.mode, reinterpret_cast<const T*>(a.psw), a.mask,
                                           am, rows, g, intr);
      };
      bad = a.ids.dt == DType::I32 ? go(int32_t{}) : go(int64_t{});
    }
    if (bad != -1) return;
    const py::ssize_t nu = static_cast<py::ssize_t>(g.plan.unique.size());
    checked_output({nu, dim}, sizeof(T));
    py::array_t<int64_t> uniq(nu);
    if (nu) std::memcpy(uniq.mutable_data(), g.plan.unique.data(), sizeof(int64_t) * nu);
    py::array_t<T> vals({nu, static_cast<py::ssize_t>(dim)});  // every element is written
    T* out = vals.mutable_data();
    bool done;
    {
      py::gil_scoped_release nogil;
      done = fe::bag_backward_sum<T>(g, reinterpret_cast<const T*>(grad.data), dim, a.mode,
                                     out, intr);
    }
    if (!done) bad = fe::kInterrupted;
    uniq_o = std::move(uniq);
    vals_o = std::move(vals);
  };
  if (grad.dt == DType::F32) run(float{});
  else run(double{});
  if (bad == fe::kInterrupted) raise_interrupted(sig);
  if (bad >= 0) {
    if (a.mode == fe::BagMode::Max) raise_bad_id(view(am_o), bad, rows, "argmax");
    raise_bad_id(a.ids, bad, rows);
  }
  return py::make_tuple(uniq_o, vals_o);
}

}  // namespace

void init_bag(py::module_& m) {
  m.def("embedding_bag", &embedding_bag, py::arg("table"), py::arg("ids"),
        py::arg("offsets") = py::none(), py::arg("mode") = "sum",
        py::arg("per_sample_weights") = py::none(), py::arg("mask_zero") = false,
        py::arg("want_argmax") = false,
        "Pooled lookup; see fastembed.ops.embedding_bag. Returns (out, argmax or None).");
  m.def("embedding_bag_backward", &embedding_bag_backward, py::arg("grad"), py::arg("ids"),
        py::arg("offsets"), py::arg("mode"), py::arg("per_sample_weights"),
        py::arg("mask_zero"), py::arg("argmax"), py::arg("rows"),
        "(indices, values): the coalesced table gradient of one embedding_bag call.");
}

}  // namespace fe_py
