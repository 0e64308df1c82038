// Bindings for the fused optimizer kernels (fe/optim.hpp).
//
// An update runs in two steps so that fastembed.optimizers can validate every
// (gradient, variable) pair of an apply_gradients call before it writes anything:
//   optim_prepare(table, indices, values) -> SparseRows
//       checks the table (float, 2-D, writeable, contiguous), the values (dtype, shape),
//       copies and range-checks the indices, and sums duplicate indices (native
//       coalesce); the result owns its ids, so later changes to the caller's arrays
//       cannot make the update write out of bounds.
//   optim_check_dense(var, grad) -> grad as a contiguous array of var's dtype
//   optim_sparse(rows, table, slots, hyper, all_rows) / optim_dense(var, grad, slots, hyper)
//       re-check the cheap things (shapes, flags) and run one native pass, GIL released.
//       slots: dict slot name -> array (the names of opt_slot_names(hyper.kind));
//       hyper: an OptHyper (bound struct: the method and its hyperparameters by name).
#include <string>
#include <vector>

#include "common.hpp"
#include "fe/optim.hpp"
#include "fe/scatter.hpp"

namespace fe_py {
namespace {

struct SparseRows {
  fe::big_vector<int64_t> ids;  // strictly increasing, in [0, rows)
  fe::big_vector<float> vf;  // summed rows when the input had duplicates / was unsorted
  fe::big_vector<double> vd;
  py::object keep;           // the caller's values array, when used as is
  const void* vals = nullptr;
  int64_t rows = 0, dim = 0;
  DType dt = DType::F32;
  bool coalesced_here = false;
};

// Float values of the table's dtype, C-contiguous (a copy only for read-only inputs).
py::object float_input(py::handle h, const Arr& like, py::handle like_h, const char* name) {
  if (is_ndarray(h)) {
    Arr a = view(h);
    if (!a.is_float())
      throw py::type_error(std::string(name) + " must be a float array of dtype " +
                           dtype_str(like_h) + ", got dtype " + dtype_str(h));
    if (a.dt != like.dt)
      throw py::type_error(std::string(name) + " must have the variable's dtype " +
                           dtype_str(like_h) + ", got " + dtype_str(h));
  }
  return usable_values(h, like, name);
}

SparseRows prepare(py::handle table_h, py::handle ids_h, py::handle values_h) {
  Arr t = writable_table(table_h, "table");
  Arr ids = ids_array(ids_h);
  if (ids.nd != 1)
    throw py::value_error("indices must be 1-D, got shape " + shape_str(ids));
  py::object values_o = float_input(values_h, t, table_h, "values");
  Arr v = view(values_o);
  const int64_t k = ids.dim(0), rows = t.dim(0), dim = t.dim(1);
  if (v.nd != 2 || v.dim(0) != k || v.dim(1) != dim)
    throw py::value_error("values must have shape (len(indices), dim) = " +
                          shape_str(std::vector<int64_t>{k, dim}) + ", got " + shape_str(v));
  if (overlaps(v, t)) throw py::value_error("values must not overlap the table");
  SparseRows r;
  r.rows = rows;
  r.dim = dim;
  r.dt = t.dt;
  r.ids.resize(static_cast<size_t>(k));
  int64_t bad;
  bool sorted = true;
  {
    py::gil_scoped_release nogil;
    bad = ids.dt == DType::I32
              ? fe::optim_copy_ids(reinterpret_cast<const int32_t*>(ids.data), k, rows,
                                   r.ids.data(), &sorted)
              : fe::optim_copy_ids(reinterpret_cast<const int64_t*>(ids.data), k, rows,
                                   r.ids.data(), &sorted);
    if (bad < 0 && !sorted) {
      // Duplicates are summed before the (non-linear) update: the native coalesce.
      fe::CoalescePlan plan;
      fe::coalesce_plan(r.ids.data(), k, plan);
      const size_t n = plan.unique.size() * static_cast<size_t>(dim);
      if (t.dt == DType::F32) {
        r.vf.assign(n, 0.0f);
        fe::coalesce_sum(plan, reinterpret_cast<const float*>(v.data), dim, r.vf.data());
        r.vals = r.vf.data();
      } else {
        r.vd.assign(n, 0.0);
        fe::coalesce_sum(plan, reinterpret_cast<const double*>(v.data), dim, r.vd.data());
        r.vals = r.vd.data();
      }
      r.ids = std::move(plan.unique);
      r.coalesced_here = true;
    }
  }
  if (bad >= 0) raise_bad_id(ids, bad, rows, "indices");
  if (!r.coalesced_here) {
    r.keep = values_o;
    r.vals = v.data;
  }
  return r;
}

// The slot arrays a method needs, looked up by name in `slots` (a dict name -> array; the
// names are fe::opt_slot_name's): same dtype and size as the variable, writeable,
// contiguous.  Every pair among the variable, the gradient (`grad`, when it is a caller's
// array) and the slots is checked for overlapping memory spans: the update reads and
// writes them element by element, so any overlap would corrupt them.
void slot_ptrs(const fe::OptHyper& h, const Arr& var, const py::dict& slots, char** s0,
               char** s1, const Arr* grad = nullptr) {
  const int need = fe::opt_num_slots(h.kind);
  char** out[2] = {s0, s1};
  Arr seen[2];
  std::string names[2];
  for (int i = 0; i < 2; ++i) {
    *out[i] = nullptr;
    if (i >= need) continue;
    names[i] = fe::opt_slot_name(h.kind, i);
    const std::string name = "slot '" + names[i] + "'";
    py::object a = slots.contains(names[i]) ? py::object(slots[names[i].c_str()]) : py::none();
    if (a.is_none() || !is_ndarray(a))
      throw py::value_error(name + " is missing (the optimizer needs " + std::to_string(need) +
                            " slot arrays)");
    Arr s = view(a);
    if (s.dt != var.dt || s.size() != var.size())
      throw py::value_error(name + " must have the variable's dtype and size");
    if (!s.writeable() || !s.c_contiguous() || !s.aligned())
      throw py::value_error(name + " must be a writeable C-contiguous array");
    if (overlaps(s, var)) throw py::value_error(name + " must not overlap the variable");
    if (grad && overlaps(s, *grad)) throw py::value_error(name + " must not overlap the gradient");
    if (i == 1 && overlaps(s, seen[0]))
      throw py::value_error(name + " must not overlap slot '" + names[0] + "'");
    seen[i] = s;
    *out[i] = s.data;
  }
}

// The fields a kernel branches on, checked once before any write.
void check_hyper(const fe::OptHyper& h) {
  const bool torch_kind = static_cast<int>(h.kind) >= static_cast<int>(fe::OptKind::kTorchSGD);
  const int max_mode = h.kind == fe::OptKind::kTorchAdam ? 2 : (torch_kind ? 1 : 0);
  if (h.wd_mode < 0 || h.wd_mode > max_mode)
    throw py::value_error("weight decay mode " + std::to_string(h.wd_mode) +
                          " is not one this method has (0.." + std::to_string(max_mode) + ")");
}

void apply_sparse(const SparseRows& r, py::handle table_h, const py::dict& slots,
                  const fe::OptHyper& h, bool all_rows) {
  check_hyper(h);
  Arr t = writable_table(table_h, "table");
  if (t.dt != r.dt || t.dim(0) != r.rows || t.dim(1) != r.dim)
    throw py::value_error("the table changed shape or dtype since the gradient was prepared");
  char *s0, *s1;
  // The caller's values array, when the update reads it directly (prepare checked it
  // against the table; the slots are checked here).
  Arr kept;
  if (!r.coalesced_here) {
    kept = view(r.keep);
    if (overlaps(kept, t)) throw py::value_error("values must not overlap the table");
  }
  slot_ptrs(h, t, slots, &s0, &s1, r.coalesced_here ? nullptr : &kept);
  const int64_t k = static_cast<int64_t>(r.ids.size());
  py::gil_scoped_release nogil;
  auto go = [&](auto tag) {
    using T = decltype(tag);
    T* w = reinterpret_cast<T*>(t.data);
    const T* g = static_cast<const T*>(r.vals);
    if (all_rows)
      fe::optim_all_rows<T>(h, w, reinterpret_cast<T*>(s0), reinterpret_cast<T*>(s1), r.rows,
                            r.dim, r.ids.data(), k, g);
    else
      fe::optim_rows<T>(h, w, reinterpret_cast<T*>(s0), reinterpret_cast<T*>(s1), r.dim,
                        r.ids.data(), k, g);
  };
  if (t.dt == DType::F32) go(float{});
  else go(double{});
}

py::object check_dense(py::handle var_h, py::handle grad_h) {
  Arr var = writable_array(var_h, "variable");
  py::object g_o = float_input(grad_h, var, var_h, "gradient");
  Arr g = view(g_o);
  if (std::vector<int64_t>(g.shape, g.shape + g.nd) !=
      std::vector<int64_t>(var.shape, var.shape + var.nd))
    throw py::value_error("gradient must have the variable's shape " + shape_str(var) +
                          ", got " + shape_str(g));
  if (overlaps(g, var)) throw py::value_error("gradient must not overlap the variable");
  return g_o;
}

void apply_dense(py::handle var_h, py::handle grad_h, const py::dict& slots,
                 const fe::OptHyper& h) {
  check_hyper(h);
  py::object g_o = check_dense(var_h, grad_h);
  Arr var = view(var_h);
  Arr g = view(g_o);
  char *s0, *s1;
  slot_ptrs(h, var, slots, &s0, &s1, &g);
  const int64_t n = var.size();
  py::gil_scoped_release nogil;
  if (var.dt == DType::F32)
    fe::optim_dense<float>(h, reinterpret_cast<float*>(var.data), reinterpret_cast<float*>(s0),
                           reinterpret_cast<float*>(s1), n,
                           reinterpret_cast<const float*>(g.data));
  else
    fe::optim_dense<double>(h, reinterpret_cast<double*>(var.data),
                            reinterpret_cast<double*>(s0), reinterpret_cast<double*>(s1), n,
                            reinterpret_cast<const double*>(g.data));
}

}  // namespace

void init_optim(py::module_& m) {
  // The methods and their hyperparameters, defined once (fe/optim.hpp): a new method is
  // one .value line, a new hyperparameter one .def_readwrite line.
  py::enum_<fe::OptKind>(m, "OptKind", "The update formula of an optimizer (fe/optim.hpp).")
      .value("SGD", fe::OptKind::kSGD)
      .value("MOMENTUM", fe::OptKind::kMomentum)
      .value("NESTEROV", fe::OptKind::kNesterov)
      .value("ADAGRAD", fe::OptKind::kAdagrad)
      .value("ADAM", fe::OptKind::kAdam)
      .value("TORCH_SGD", fe::OptKind::kTorchSGD)
      .value("TORCH_MOMENTUM", fe::OptKind::kTorchMomentum)
      .value("TORCH_NESTEROV", fe::OptKind::kTorchNesterov)
      .value("TORCH_ADAGRAD", fe::OptKind::kTorchAdagrad)
      .value("TORCH_ADAM", fe::OptKind::kTorchAdam);
  py::class_<fe::OptHyper>(m, "OptHyper", "The hyperparameters of one update (fe/optim.hpp).")
      .def(py::init<>())
      .def_readwrite("kind", &fe::OptHyper::kind)
      .def_readwrite("lr", &fe::OptHyper::lr)
      .def_readwrite("momentum", &fe::OptHyper::momentum)
      .def_readwrite("beta1", &fe::OptHyper::beta1)
      .def_readwrite("beta2", &fe::OptHyper::beta2)
      .def_readwrite("eps", &fe::OptHyper::eps)
      .def_readwrite("step_size", &fe::OptHyper::step_size)
      .def_readwrite("wd_mode", &fe::OptHyper::wd_mode)
      .def_readwrite("weight_decay", &fe::OptHyper::weight_decay)
      .def_readwrite("decay", &fe::OptHyper::decay)
      .def_readwrite("dampening", &fe::OptHyper::dampening)
      .def_readwrite("init_buf", &fe::OptHyper::init_buf)
      .def_readwrite("bias2_sqrt", &fe::OptHyper::bias2_sqrt);
  m.def("opt_slot_names", [](fe::OptKind k) {
    py::tuple names(fe::opt_num_slots(k));
    for (int i = 0; i < fe::opt_num_slots(k); ++i) names[i] = py::str(fe::opt_slot_name(k, i));
    return names;
  }, py::arg("kind"), "The names of the slot arrays a method reads and writes, in order.");
  py::class_<SparseRows>(m, "SparseRows",
                         "A validated, coalesced sparse gradient (internal to fastembed.optimizers)")
      .def_property_readonly("size", [](const SparseRows& r) {
        return static_cast<int64_t>(r.ids.size());
      })
      .def_property_readonly("coalesced_here", [](const SparseRows& r) { return r.coalesced_here; });
  m.def("optim_prepare", &prepare, py::arg("table"), py::arg("indices"), py::arg("values"));
  m.def("optim_sparse", &apply_sparse, py::arg("rows"), py::arg("table"), py::arg("slots"),
        py::arg("hyper"), py::arg("all_rows"));
  m.def("optim_check_dense", &check_dense, py::arg("variable"), py::arg("grad"));
  m.def("optim_dense", &apply_dense, py::arg("variable"), py::arg("grad"), py::arg("slots"),
        py::arg("hyper"));
}

}  // namespace fe_py
