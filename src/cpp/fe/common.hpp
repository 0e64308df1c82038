// Small helpers shared by the kernel headers.  No Python, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__) || defined(__clang__)
#define FE_RESTRICT __restrict__
#define FE_INLINE inline __attribute__((always_inline))
#else
#define FE_RESTRICT
#define FE_INLINE inline
#endif

namespace fe {

// Checked size arithmetic: every product of sizes (rows * dim, n * row_bytes, ...) that
// user-controlled shapes reach goes through these.  A stride-tricked or memory-mapped
// array can claim shapes whose products overflow int64, and signed overflow is undefined.
FE_INLINE bool mul_ok(int64_t a, int64_t b, int64_t* r) noexcept {
  return !__builtin_mul_overflow(a, b, r);
}
// a * b, or INT64_MAX when it overflows: for heuristics (grains, prefetch and streaming
// thresholds) where "huge" is the right answer.
FE_INLINE int64_t mul_sat(int64_t a, int64_t b) noexcept {
  int64_t r;
  return mul_ok(a, b, &r) ? r : INT64_MAX;
}

// One unsigned compare rejects negative ids and ids >= rows alike.
template <class I>
FE_INLINE bool id_ok(I id, int64_t rows) noexcept {
  return static_cast<uint64_t>(static_cast<int64_t>(id)) < static_cast<uint64_t>(rows);
}

// Reads ids[i] exactly once (another Python thread may be writing the buffer while the
// GIL is released): the value checked is the value used.
template <class I>
FE_INLINE int64_t load_once(const I* ids, int64_t i) noexcept {
  return static_cast<int64_t>(*static_cast<const volatile I*>(ids + i));
}

FE_INLINE void prefetch_read(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 1);
#else
  (void)p;
#endif
}

FE_INLINE void prefetch_write(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 1, 1);
#else
  (void)p;
#endif
}

// Deterministic owner of a table row (or output slot) among `parts` workers.  Rows are
// owned in blocks of 16 so that neighbouring rows share a worker, and blocks are spread
// by a multiplicative hash so that a frequency-sorted (Zipf) vocabulary, whose hot rows
// are all at the start, still splits evenly.
FE_INLINE int owner_of(int64_t row, int parts) noexcept {
  uint32_t h = static_cast<uint32_t>(static_cast<uint64_t>(row) >> 4) * 0x9E3779B1u;
  return static_cast<int>((static_cast<uint64_t>(h) * static_cast<uint32_t>(parts)) >> 32);
}

// Calls f.template operator()<FD>() with FD the compile-time row width when `dim` is one
// of the common widths (so the row copy or add is fully unrolled), else FD = 0.
template <class F>
auto dispatch_dim(int64_t dim, F&& f) {
  switch (dim) {
    case 1: return f(std::integral_constant<int64_t, 1>{});
    case 2: return f(std::integral_constant<int64_t, 2>{});
    case 4: return f(std::integral_constant<int64_t, 4>{});
    case 8: return f(std::integral_constant<int64_t, 8>{});
    case 16: return f(std::integral_constant<int64_t, 16>{});
    case 32: return f(std::integral_constant<int64_t, 32>{});
    case 64: return f(std::integral_constant<int64_t, 64>{});
    case 128: return f(std::integral_constant<int64_t, 128>{});
    default: return f(std::integral_constant<int64_t, 0>{});
  }
}


}  // namespace fe
