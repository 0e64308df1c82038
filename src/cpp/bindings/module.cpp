// fastembed._core: the one pybind11 module.  Each bind_<family>.cpp file binds one kernel
// family (it validates, converts, releases the GIL and maps kernel results to Python
// errors); this file only registers them.  Calls go one way: Python (fastembed.*) ->
// these bindings -> the kernels in fe/; nothing here imports the Python package.
#include "common.hpp"

namespace fe_py {
void init_parallel(py::module_& m);
void init_gather(py::module_& m);
void init_scatter(py::module_& m);
void init_bag(py::module_& m);
void init_optim(py::module_& m);
void init_vectors(py::module_& m);
void init_lowp(py::module_& m);
}  // namespace fe_py

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastembed native kernels (internal; use fastembed.ops)";
  fe_py::init_parallel(m);
  fe_py::init_gather(m);
  fe_py::init_scatter(m);
  fe_py::init_bag(m);
  fe_py::init_optim(m);
  fe_py::init_vectors(m);
  fe_py::init_lowp(m);
}
