// Definitions and explicit instantiations of the gather kernels (contracts in gather.hpp):
// find_bad_id and gather, for (float, double, 16-bit) x (int32_t, int64_t).
#include "fe/gather.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "fe/common.hpp"
#include "fe/parallel.hpp"
#include "fe/tuning.hpp"

namespace fe {
namespace {

template <int64_t RB>
FE_INLINE void copy_row(void* FE_RESTRICT dst, const void* FE_RESTRICT src, int64_t bytes,
                        bool stream) {
  const int64_t nb = RB > 0 ? RB : bytes;
#if defined(__SSE2__)
  if (stream) {
    auto* d = static_cast<__m128i*>(dst);
    auto* s = static_cast<const __m128i*>(src);
    for (int64_t k = 0; k < nb / 16; ++k) _mm_stream_si128(d + k, _mm_loadu_si128(s + k));
    return;
  }
#else
  (void)stream;
#endif
  std::memcpy(dst, src, static_cast<size_t>(nb));
}

FE_INLINE void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

template <class T, class I, int64_t FD, bool PF, bool NT>
int64_t gather_range(const T* FE_RESTRICT table, int64_t rows, int64_t dim_rt, int64_t stride,
                     const I* ids, int64_t b, int64_t e, T* FE_RESTRICT out) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  for (int64_t i = b; i < e; ++i) {
    if (PF && i + kAhead < e) {
      const int64_t f = static_cast<int64_t>(ids[i + kAhead]);
      if (id_ok(f, rows)) prefetch_read(table + f * stride);
    }
    const int64_t id = load_once(ids, i);
    if (!id_ok(id, rows)) {
      if (NT) stream_fence();
      return i;
    }
    copy_row<FD * static_cast<int64_t>(sizeof(T))>(out + i * dim, table + id * stride,
                                                    dim * static_cast<int64_t>(sizeof(T)), NT);
  }
  if (NT) stream_fence();
  return -1;
}

// Position of the first id outside [0, rows) in ids[b, e), or -1.  A block is checked
// without branches or compares (which the baseline x86-64 vector set lacks for 64-bit
// lanes) so that the loop vectorizes: with rm1 = rows - 1, an id v in [0, rows) leaves the
// top bit of both v and rm1 - v clear, any other id sets it in one of them (unsigned
// arithmetic, rows <= 2^63 - 1).  Only a block that fails is rescanned id by id.
template <class I>
int64_t bad_id_range(const I* ids, int64_t b, int64_t e, int64_t rows) noexcept {
  const uint64_t rm1 = static_cast<uint64_t>(rows) - 1;
  constexpr int64_t kBlock = 1024;
  for (int64_t s = b; s < e; s += kBlock) {
    const int64_t t = s + kBlock < e ? s + kBlock : e;
    uint64_t acc = 0;
    for (int64_t i = s; i < t; ++i) {
      const uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(ids[i]));
      acc |= v | (rm1 - v);
    }
    if (acc >> 63) {
      for (int64_t i = s; i < t; ++i)
        if (!id_ok(load_once(ids, i), rows)) return i;
      // Changed under us between the two reads: keep scanning, the caller re-checks at use.
    }
  }
  return -1;
}

}  // namespace

template <class I>
int64_t find_bad_id(const I* ids, int64_t n, int64_t rows, const Interrupt& intr) {
  if (n <= 0) return -1;
  return polled_pieces(n, kPollBytes / static_cast<int64_t>(sizeof(I)), intr,
                       [&](int64_t s, int64_t m) {
                         return first_hit(m, plan_parts(m, kIdGrain), [&](int64_t b, int64_t e) {
                           return bad_id_range(ids, s + b, s + e, rows);
                         });
                       });
}

template <class T, class I>
int64_t gather(const T* table, int64_t rows, int64_t dim, int64_t row_stride, const I* ids,
               int64_t n, T* out, const Interrupt& intr) {
  if (n <= 0) return -1;
  if (dim == 0) return find_bad_id(ids, n, rows, intr);
  const int64_t row_bytes = mul_sat(dim, static_cast<int64_t>(sizeof(T)));
  const bool pf = mul_sat(mul_sat(rows, row_stride), static_cast<int64_t>(sizeof(T))) >
                  kPrefetchTableBytes;
  const bool nt = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 &&
                  mul_sat(n, row_bytes) >= kStreamOutBytes && !std::getenv("FASTEMBED_NO_STREAM");
  const int64_t grain = grain_rows(row_bytes);
  // Ids per piece between two polls (each piece is split among the workers as a whole
  // call would be; pieces change no result, every row is copied independently).
  const int64_t piece = std::max<int64_t>(
      2 * grain, kPollBytes / std::max<int64_t>(1, mul_sat(row_bytes, 2) + static_cast<int64_t>(sizeof(I))));
  return dispatch_dim(RowWidths{}, dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    auto range = [&](int64_t b, int64_t e) {
      if (nt)
        return pf ? gather_range<T, I, FD, true, true>(table, rows, dim, row_stride, ids, b, e, out)
                  : gather_range<T, I, FD, false, true>(table, rows, dim, row_stride, ids, b, e, out);
      return pf ? gather_range<T, I, FD, true, false>(table, rows, dim, row_stride, ids, b, e, out)
                : gather_range<T, I, FD, false, false>(table, rows, dim, row_stride, ids, b, e, out);
    };
    return polled_pieces(n, piece, intr, [&](int64_t s, int64_t m) {
      return first_hit(m, plan_parts(m, grain),
                       [&](int64_t b, int64_t e) { return range(s + b, s + e); });
    });
  });
}

#define FE_INST_I(I) \
  template int64_t find_bad_id<I>(const I*, int64_t, int64_t, const Interrupt&);
#define FE_INST_TI(T, I)                                                                    \
  template int64_t gather<T, I>(const T*, int64_t, int64_t, int64_t, const I*, int64_t, T*, \
                                const Interrupt&);

FE_FOR_IDS(FE_INST_I)
FE_FOR_FLOATS_IDS(FE_INST_TI)
// float16 / bfloat16 tables: gather is a copy of 16-bit rows (their arithmetic is in lowp.cpp).
FE_INST_TI(uint16_t, int32_t)
FE_INST_TI(uint16_t, int64_t)

}  // namespace fe
