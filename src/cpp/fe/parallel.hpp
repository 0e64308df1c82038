// fastembed native thread pool.
//
// A small std::thread pool of our own, shared by every kernel (no OMP runtime: two of
// them beside torch, and their hang after fork, hurt users).
//
//   parallel_for(n, grain, fn)
//     Splits [0, n) into `parts` contiguous chunks, parts = min(threads, ceil(n / grain)),
//     and calls fn(begin, end, part) once per chunk; the calling thread runs chunk 0.
//     Runs inline (one call, part 0) when n < 2 * grain, when one thread is set, or when
//     another caller is using the pool at that moment (so concurrent Python threads never
//     wait on each other).  Kernels must not depend on `parts` for their results:
//     every kernel here is bit-for-bit identical for any thread count.
//     The first exception thrown by fn is rethrown in the caller after all chunks end.
//
//   owner_parts(n_rows, grain)
//     The number of parts parallel_for would use; kernels that partition *rows of a
//     table* by owner use it to pick their partition up front.
//
// Waiting: a worker polls for new work for 200 us after each task, and a caller polls
// for its workers for as long, before either sleeps on a condition variable; a thread
// woken from sleep starts tens of microseconds late, which small calls would feel.
//
// Fork safety: a pthread_atfork child handler forgets the parent's workers (they do not
// exist in the child) and resets the locks; the next parallel call starts new workers.
#pragma once

#include <cstdint>
#include <functional>

namespace fe {

// The cores this process may run on (sched_getaffinity), at least 1.
int available_cores() noexcept;

// Threads used by kernels, including the caller. Default: available_cores().
int get_num_threads() noexcept;
// n >= 1; values above 256 are clamped.
void set_num_threads(int n);

using RangeFn = std::function<void(int64_t begin, int64_t end, int part)>;

// Number of chunks parallel_for(n, grain, ...) will use if the pool is free.
int plan_parts(int64_t n, int64_t grain) noexcept;

// Runs fn over [0, n) in `parts` chunks (parts <= plan_parts(n, grain)); returns the number
// of parts actually used.  Chunk p is [p*n/parts, (p+1)*n/parts).
int parallel_for(int64_t n, int64_t grain, const RangeFn& fn);

// Runs fn over [0, n) in exactly `parts` chunks (chunk p = [p*n/parts, (p+1)*n/parts),
// empty chunks skipped), on the pool or, if it is busy, inline in order.  Callers that
// keep per-part results size them with the same `parts` they pass here: the thread count
// may change between a plan_parts() call and the run.
void parallel_chunks(int64_t n, int parts, const RangeFn& fn);

// Same, with a fixed number of parts (each part still runs on one thread; if the pool is
// busy all parts run inline, in order).  Used by owner-computes kernels that split rows.
void parallel_parts(int parts, const std::function<void(int part)>& fn);

}  // namespace fe
