// Small helpers shared by the kernels.  No Python, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "fe/tuning.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define FE_RESTRICT __restrict__
#define FE_INLINE inline __attribute__((always_inline))
#else
#define FE_RESTRICT
#define FE_INLINE inline
#endif

// The supported instantiations, for the families' explicit instantiation lists:
// FE_FOR_IDS(M) expands M(I) for each id type, FE_FOR_FLOATS_IDS(M) M(T, I) for each float
// table type and id type.
#define FE_FOR_IDS(M) M(int32_t) M(int64_t)
#define FE_FOR_FLOATS_IDS(M) M(float, int32_t) M(float, int64_t) M(double, int32_t) M(double, int64_t)

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

#if defined(__GNUC__) || defined(__clang__)
#define FE_PREFETCH(p, rw) __builtin_prefetch((p), (rw), 1)
#else
#define FE_PREFETCH(p, rw) ((void)(p))
#endif
FE_INLINE void prefetch_read(const void* p) noexcept { FE_PREFETCH(p, 0); }
FE_INLINE void prefetch_write(const void* p) noexcept { FE_PREFETCH(p, 1); }

// Deterministic owner of a table row (or output slot) among `parts` workers.  Rows are
// owned in blocks of 16 so that neighbouring rows share a worker, and blocks are spread
// by a multiplicative hash so that a frequency-sorted (Zipf) vocabulary, whose hot rows
// are all at the start, still splits evenly.
FE_INLINE int owner_of(int64_t row, int parts) noexcept {
  uint32_t h = static_cast<uint32_t>(static_cast<uint64_t>(row) >> 4) * 0x9E3779B1u;
  return static_cast<int>((static_cast<uint64_t>(h) * static_cast<uint32_t>(parts)) >> 32);
}

// Rows per chunk of a row-copying or row-adding loop: kGrainBytes of rows.
FE_INLINE int64_t grain_rows(int64_t row_bytes) noexcept {
  return row_bytes < kGrainBytes ? kGrainBytes / (row_bytes > 0 ? row_bytes : 1) : 1;
}

// Prefetches for reading every cache line of the `bytes` bytes at `row`.  Rows need not
// start on a line (strided and quantized rows), so the line of the last byte is fetched too.
FE_INLINE void prefetch_row(const void* row, int64_t bytes) noexcept {
  const char* p = static_cast<const char*>(row);
  for (int64_t o = 0; o < bytes; o += 64) prefetch_read(p + o);
  if (bytes > 0) prefetch_read(p + bytes - 1);
}

// Calls f(std::integral_constant<int64_t, FD>{}) with FD = dim when dim is one of the
// widths W (RowWidths, BagWidths: tuning.hpp), so that the row loop is fully unrolled,
// and else with FD = 0 (the run-time loop).  f returns the same non-void type for every FD.
template <int64_t... W, class F>
auto dispatch_dim(Widths<W...>, int64_t dim, F&& f) {
  using R = decltype(f(std::integral_constant<int64_t, 0>{}));
  R r{};
  const bool hit = ((dim == W && (r = f(std::integral_constant<int64_t, W>{}), true)) || ...);
  return hit ? r : f(std::integral_constant<int64_t, 0>{});
}

// The row-copy / row-add widths (RowWidths).
template <class F>
auto dispatch_dim(int64_t dim, F&& f) {
  return dispatch_dim(RowWidths{}, dim, static_cast<F&&>(f));
}

// Whether the kernels may take their run-time-selected SIMD paths: FASTEMBED_CPU=baseline
// forces the baseline build of every loop, so that tests can cover both (they give the
// same bits).  The caller adds its own CPU feature check.
inline bool simd_allowed() noexcept {
  const char* env = std::getenv("FASTEMBED_CPU");
  return !(env && std::strcmp(env, "baseline") == 0);
}

}  // namespace fe
