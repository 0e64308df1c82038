// Bindings for the vectors kernels (filled in by the issue that adds them).
#include "common.hpp"

namespace fe_py {
void init_vectors(py::module_& m) { (void)m; }
}  // namespace fe_py
