// Bindings for the optim kernels (filled in by the issue that adds them).
#include "common.hpp"

namespace fe_py {
void init_optim(py::module_& m) { (void)m; }
}  // namespace fe_py
