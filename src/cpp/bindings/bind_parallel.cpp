// Bindings of the thread pool (fe/parallel.hpp): fastembed.set_num_threads and friends.
#include <string>

#include "common.hpp"

#include "fe/parallel.hpp"

namespace fe_py {

void init_parallel(py::module_& m) {
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
    py::gil_scoped_release nogil;
    fe::set_num_threads(n);
  }, py::arg("n"), R"doc(Set the number of threads the native kernels use (including the caller).

Results never depend on it: every kernel is bit-for-bit identical for any thread count.
The default is the number of cores this process may run on (os.sched_getaffinity).)doc");
  m.def("get_num_threads", &fe::get_num_threads,
        "The number of threads the native kernels use (see set_num_threads).");
  m.def("available_cores", &fe::available_cores,
        "The cores this process may run on (sched_getaffinity).");
}

}  // namespace fe_py
