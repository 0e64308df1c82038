// Early stop for long kernels.
//
// A kernel that can run for more than a fraction of a second takes an `Interrupt` and
// calls poll() between chunks of its work (a chunk: at most a few milliseconds), from the
// thread that called the kernel, never from pool workers.  poll() returns true once the
// caller wants the call to end (the Python bindings: a pending Ctrl-C); the kernel then
// stops as soon as it can and reports that it was interrupted through its own status.
//
// Contract for kernels that honour it: an interrupted call has changed nothing the
// caller owns except a caller-provided output buffer, which may be partly written.
// Kernels that update state in place (scatter-add, optimizer steps) do not take an
// Interrupt: they are bounded by memory bandwidth and always run to the end, so a
// table is never left half updated.
//
// The core knows nothing of Python: what poll() does is the caller's business.  The
// default Interrupt never fires.
#pragma once

#include <cstdint>

#include "fe/tuning.hpp"  // kPollBytes: the work between two polls

namespace fe {

// Returned by kernels that report a position (-1 for success, >= 0 for a bad id) when
// they stopped early because poll() said so.
constexpr int64_t kInterrupted = -2;

struct Interrupt {
  using Fn = bool (*)(void* ctx);
  Fn fn = nullptr;
  void* ctx = nullptr;

  bool poll() const { return fn != nullptr && fn(ctx); }
};

}  // namespace fe
