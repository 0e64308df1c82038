// fastembed native thread pool.
//
// A small std::thread pool of our own, shared by every kernel (no OMP runtime: two of
// them beside torch, and their hang after fork, hurt users).
//
//   parallel_for(n, grain, fn)
//     Splits [0, n) into `parts` contiguous chunks, parts = plan_parts(n, grain) =
//     min(threads, floor(n / grain)), and calls fn(begin, end, part) once per chunk; the
//     calling thread runs chunk 0.  Runs inline (one call, part 0) when n < 2 * grain,
//     when one thread is set, or when another caller is using the pool at that moment (so
//     concurrent Python threads never wait on each other).  Kernels must not depend on
//     `parts` for their results: every kernel here is bit-for-bit identical for any
//     thread count.  The first exception thrown by fn is rethrown in the caller after all
//     chunks end.
//
//   Kernels that partition *rows of a table* by owner pick their number of parts up front
//   with plan_parts and run them with parallel_parts.
//
//   first_hit(m, parts, range) and polled_pieces(n, piece, intr, fn): the two loops that
//     every kernel reporting "the first bad position" shares (see below).
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
#include <vector>

#include "fe/interrupt.hpp"

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

// Runs range(b, e) -> int64 over [0, m) in `parts` chunks (inline when parts == 1) and
// returns the first result >= 0 in chunk order, or -1.  Chunks are in position order, so
// for kernels whose range returns the first bad position of its chunk (or -1) this is
// the smallest bad position of [0, m), whatever the thread count.
template <class Range>
int64_t first_hit(int64_t m, int parts, Range&& range) {
  if (parts <= 1) {
    const int64_t f = range(int64_t(0), m);
    return f >= 0 ? f : -1;
  }
  std::vector<int64_t> first(static_cast<size_t>(parts), -1);
  parallel_chunks(m, parts, [&](int64_t b, int64_t e, int p) { first[p] = range(b, e); });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

// Runs fn(s, m) -> int64 over the pieces [s, s + m) of [0, n) of `piece` positions each,
// in order, polling intr between pieces; returns the first result >= 0, kInterrupted when
// intr asked to stop, or -1.
template <class Fn>
int64_t polled_pieces(int64_t n, int64_t piece, const Interrupt& intr, Fn&& fn) {
  for (int64_t s = 0; s < n; s += piece) {
    if (s > 0 && intr.poll()) return kInterrupted;
    const int64_t f = fn(s, n - s < piece ? n - s : piece);
    if (f >= 0) return f;
  }
  return -1;
}

// The end of the piece of work that starts at b0: the smallest b1 in (b0, nb] with
// cost(b1) >= units, else nb.  cost(b1), the work of [b0, b1), must increase with b1.
template <class Cost>
int64_t piece_end(int64_t b0, int64_t nb, int64_t units, Cost&& cost) {
  int64_t lo = b0 + 1, hi = nb;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cost(mid) >= units) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

}  // namespace fe
