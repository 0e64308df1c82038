// Bindings for the bag kernels (filled in by the issue that adds them).
#include "common.hpp"

namespace fe_py {
void init_bag(py::module_& m) { (void)m; }
}  // namespace fe_py
